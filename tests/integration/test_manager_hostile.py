"""sandpitd under hostile input: malformed and oversized requests, slow
clients, odd paths.  Each gets a clear answer or a closed connection; the
daemon keeps serving."""
import socket
import time

from harness import Manager, Suite


def raw(m, payload, timeout=5):
    s = socket.create_connection(("127.0.0.1", m.port), timeout=timeout)
    try:
        s.sendall(payload)
        data = b""
        while True:
            try:
                d = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not d:
                break
            data += d
        return data
    finally:
        s.close()


def test_malformed(t):
    m = Manager()
    try:
        cases = [
            (b"\x00\x01\x02garbage\r\n\r\n", "binary garbage"),
            (b"GET\r\n\r\n", "a request line without a target"),
            (b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", "an unknown HTTP version"),
            (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200000 + b"\r\n\r\n", "a 200 KB header"),
            (b"GET /v1/sandboxes HTTP/1.1\r\n" + b"X-H: v\r\n" * 5000 + b"\r\n", "5000 headers"),
            (b"POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", "a bad Content-Length"),
            (b"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", "an encoded traversal"),
            (b"GET /health HTTP/1.1\r\nHost: 1-a-b.localhost\r\n\r\n", "a preview-looking host for nothing"),
            (b"GET /health HTTP/1.1\r\nHost: 99999999-a-b.localhost\r\n\r\n", "a preview host with a huge port"),
        ]
        for payload, what in cases:
            data = raw(m, payload)
            ok = data == b"" or data.startswith(b"HTTP/1.")
            t.check("%s: an answer or a closed connection (%r)" % (what, data[:40]), ok)
            t.eq("  sandpitd still answers", m.get("/health", auth=False).status, 200)
        auth = "Authorization: Bearer %s\r\n" % m.TOKEN
        data = raw(m, ("POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\n%sContent-Type: application/json\r\n"
                       "Content-Length: 3000000\r\n\r\n" % auth).encode() + b"{" * 3000000)
        t.check("a 3 MB body to a JSON route is 413", data.startswith(b"HTTP/1.1 413"), data[:100])
        r = m.req("POST", "/v1/sandboxes", raw=b"[" * 100000 + b"]" * 100000,
                  headers={"Content-Type": "application/json"})
        t.check("deeply nested JSON is a 400", r.status == 400, r)
        for path in ["/v1/sandboxes/../../etc/passwd", "/v1/sandboxes/%00/api/ping",
                     "/v1/sandboxes/a%2Fb/api/ping", "/v1/sandboxes/" + "x" * 5000]:
            r = m.get(path)
            t.check("%s... is refused cleanly (%d)" % (path[:40], r.status), r.status in (400, 404, 414), r)
    finally:
        m.cleanup()


def test_slow_clients(t):
    m = Manager()
    try:
        socks = []
        for _ in range(300):
            s = socket.create_connection(("127.0.0.1", m.port), timeout=5)
            s.sendall(b"GET /health HTTP/1.1\r\nHo")  # never finished
            socks.append(s)
        # sandpitd has no idle timeout: a server that waited on them would
        # never answer, so the bound is the request's own timeout, not a time
        t0 = time.time()
        r = m.get("/health", auth=False, timeout=30)
        t.eq("300 slow clients do not stop others (%.3f s)" % (time.time() - t0), r.status, 200)
        r = m.exec("slow-1", "echo fine")
        t.eq("  nor forwarding", r.json["stdout"], "fine\n")
        for s in socks:
            s.close()
        # clients that vanish mid-request
        for _ in range(50):
            s = socket.create_connection(("127.0.0.1", m.port), timeout=5)
            s.sendall(("POST /v1/sandboxes/slow-1/api/execute HTTP/1.1\r\nAuthorization: Bearer %s\r\n"
                       "Content-Length: 100\r\n\r\n{\"comm" % m.TOKEN).encode())
            s.close()
        time.sleep(0.3)
        r = m.exec("slow-1", "echo still")
        t.eq("clients that vanish mid-body leave it serving", r.json["stdout"], "still\n")
    finally:
        m.cleanup()


if __name__ == "__main__":
    Suite("sandpitd hostile input").run([test_malformed, test_slow_clients])
