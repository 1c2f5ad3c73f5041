"""Preview URLs over HTTP: tokens, routing by Host, keep-alive, bodies,
streams, upgrades, forwarded headers, persistence, isolation."""
import json
import socket
import time

from harness import Manager, Suite

SERVER = r'''
import json, sys, time, socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def send(self, code, body, ctype="application/json"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        if self.path == "/headers":
            self.send(200, json.dumps({k.lower(): v for k, v in self.headers.items()}).encode())
        elif self.path == "/sse":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(3):
                data = ("data: tick %d\n\n" % i).encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
                time.sleep(0.4)
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/raw" and self.headers.get("Upgrade") == "echo":
            self.send_response(101)
            self.send_header("Upgrade", "echo")
            self.send_header("Connection", "Upgrade")
            self.end_headers()
            self.wfile.flush()
            s = self.connection
            while True:
                d = s.recv(65536)
                if not d: break
                s.sendall(d.upper())
            self.close_connection = True
        else:
            self.send(200, ("page " + self.path).encode(), "text/plain")
    def do_POST(self):
        if self.headers.get("Transfer-Encoding") == "chunked":
            body = b""
            while True:
                n = int(self.rfile.readline().strip(), 16)
                if n == 0:
                    self.rfile.readline()
                    break
                body += self.rfile.read(n)
                self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send(200, b"got %d bytes, sha-ish %d" % (len(body), sum(body) % 100000), "text/plain")

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
'''


def start_server(m, sid, port):
    m.post("/v1/sandboxes/%s/api/write" % sid, {"path": "server.py", "content": SERVER})
    m.post("/v1/sandboxes/%s/api/process/start" % sid,
           {"command": "exec python3 server.py %d" % port, "processId": "srv-%d" % port, "port": port,
            "autoRestart": True})
    deadline = time.time() + 10
    while time.time() < deadline:
        p = m.get("/v1/sandboxes/%s/api/process/srv-%d" % (sid, port)).json["process"]
        if p["ready"]:
            return True
        time.sleep(0.1)
    return False


def raw_request(m, host, payload, read_until=None, timeout=10):
    s = socket.create_connection(("127.0.0.1", m.port), timeout=timeout)
    s.sendall(payload.replace(b"HOST", host.encode()))
    data = b""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            d = s.recv(65536)
        except socket.timeout:
            break
        if not d:
            break
        data += d
        if read_until and read_until(data):
            break
    s.close()
    return data


def test_previews(t):
    with Manager() as m:
        t.check("the sandbox's server starts", start_server(m, "web-1", 8000))
        r = m.post("/v1/sandboxes/web-1/ports", {"port": 8000, "name": "dev"})
        t.eq("expose is 201", r.status, 201)
        tok = r.json["token"]
        t.check("a 16-character [a-z0-9] token", len(tok) == 16 and tok.isalnum() and tok.islower(), tok)
        t.eq("the URL", r.json["url"], "http://8000-web-1-%s.localhost:%d/" % (tok, m.port))
        host = "8000-web-1-%s.localhost:%d" % (tok, m.port)
        r = m.post("/v1/sandboxes/web-1/ports", {"port": 8001, "token": "mine_1"})
        t.eq("a custom token", (r.status, r.json.get("token")), (201, "mine_1"))
        r = m.post("/v1/sandboxes/web-1/ports", {"port": 8002, "token": "mine_1"})
        t.eq("a token used twice in one sandbox is 409", r.status, 409)
        for port, code in [(80, "INVALID_PORT"), (70000, "INVALID_REQUEST"), (m.port, "INVALID_PORT")]:
            r = m.post("/v1/sandboxes/web-1/ports", {"port": port})
            t.eq("port %d is refused" % port, (r.status, r.json["code"]), (400, code))
        r = m.post("/v1/sandboxes/web-1/ports", {"port": 8003, "token": "Bad-Token"})
        t.eq("a bad custom token is 400", r.status, 400)
        r = m.post("/v1/sandboxes/Upper/ports", {"port": 8003})
        t.eq("a sandbox id that is not lowercase cannot have previews", r.status, 400)
        r = m.get("/v1/sandboxes/web-1/ports")
        t.eq("list ports", sorted(p["port"] for p in r.json["ports"]), [8000, 8001])

        # keep-alive: two requests on one connection
        data = raw_request(m, host, b"GET /a HTTP/1.1\r\nHost: HOST\r\n\r\nGET /b HTTP/1.1\r\nHost: HOST\r\n\r\n",
                           read_until=lambda d: d.count(b"page /") >= 2)
        t.check("two requests on one kept-alive connection", b"page /a" in data and b"page /b" in data, data[:300])
        # bodies, sized and chunked
        body = b"x" * 300000
        data = raw_request(m, host, b"POST /up HTTP/1.1\r\nHost: HOST\r\nContent-Length: %d\r\n\r\n" % len(body) + body,
                           read_until=lambda d: b"got" in d)
        t.check("a sized body passes", b"got 300000 bytes" in data, data[-200:])
        chunked = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        data = raw_request(m, host, b"POST /up HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked +
                           b"GET /after HTTP/1.1\r\nHost: HOST\r\n\r\n",
                           read_until=lambda d: b"page /after" in d)
        t.check("a chunked body passes, and the next request after it",
                b"got 11 bytes" in data and b"page /after" in data, data[-300:])
        # forwarded headers set, client copies stripped
        data = raw_request(m, host, b"GET /headers HTTP/1.1\r\nHost: HOST\r\nX-Forwarded-For: 6.6.6.6\r\n"
                           b"X-Sandpit-Sandbox: other\r\nX-Forwarded-Host: evil\r\nConnection: close\r\n\r\n")
        hdrs = json.loads(data.split(b"\r\n\r\n", 1)[1])
        t.eq("X-Forwarded-For is the client's address", hdrs.get("x-forwarded-for"), "127.0.0.1")
        t.eq("X-Forwarded-Host is the preview host", hdrs.get("x-forwarded-host"), host)
        t.eq("X-Forwarded-Proto", hdrs.get("x-forwarded-proto"), "http")
        t.check("client copies of internal headers are gone", "x-sandpit-sandbox" not in hdrs, hdrs)
        # a stream arrives as it is produced
        t0 = time.time()
        times = []

        def until(d):
            times.append(time.time() - t0)
            return b"tick 2" in d
        data = raw_request(m, host, b"GET /sse HTTP/1.1\r\nHost: HOST\r\n\r\n", read_until=until)
        t.check("server-sent events pass as a stream", b"tick 0" in data and b"tick 2" in data, data[:300])
        t.check("  not held to the end (first bytes in %.2f s)" % times[0], times[0] < 0.7)
        # an upgrade becomes a byte stream
        s = socket.create_connection(("127.0.0.1", m.port), timeout=10)
        s.sendall(b"GET /raw HTTP/1.1\r\nHost: %s\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n" % host.encode())
        head = s.recv(4096)
        s.sendall(b"ping through the tunnel")
        echoed = b""
        while b"TUNNEL" not in echoed:
            d = s.recv(4096)
            if not d:
                break
            echoed += d
        s.close()
        t.check("an Upgrade switches to a byte stream", head.startswith(b"HTTP/1.1 101") and
                echoed == b"PING THROUGH THE TUNNEL", (head[:60], echoed))
        # wrong token, unexposed port
        for bad in ["8000-web-1-wrongtoken00000.localhost", "8005-web-1-%s.localhost" % tok,
                    "8000-nobody-%s.localhost" % tok]:
            data = raw_request(m, bad, b"GET / HTTP/1.1\r\nHost: HOST\r\n\r\n")
            t.check("%s is 404 INVALID_TOKEN" % bad.split(".")[0],
                    data.startswith(b"HTTP/1.1 404") and b"INVALID_TOKEN" in data, data[:200])
        # the API itself still answers on the same port
        t.eq("API requests still work on the same listener", m.get("/v1/version").status, 200)
        # server down: 502 page that retries; back after a restart
        m.delete("/v1/sandboxes/web-1/api/process/srv-8000?signal=KILL")
        time.sleep(0.3)
        data = raw_request(m, host, b"GET / HTTP/1.1\r\nHost: HOST\r\n\r\n")
        t.check("a server that is down gives a 502 page", data.startswith(b"HTTP/1.1 502") and
                b"not answering" in data and b"refresh" in data, data[:300])
        start_server(m, "web-1", 8000)
        data = raw_request(m, host, b"GET /back HTTP/1.1\r\nHost: HOST\r\nConnection: close\r\n\r\n")
        t.check("the same URL works again once the server is back", b"page /back" in data, data[:200])
        # survives sandpitd's crash and an instance restart
        m.kill9()
        m.start()
        data = raw_request(m, host, b"GET /x HTTP/1.1\r\nHost: HOST\r\nConnection: close\r\n\r\n")
        t.check("the URL survives a kill -9 of sandpitd", b"page /x" in data, data[:200])
        slot = m.get("/v1/sandboxes/web-1").json["slot"]
        m.post("/v1/instances/%d/restart" % slot)
        start_server(m, "web-1", 8000)
        data = raw_request(m, host, b"GET /y HTTP/1.1\r\nHost: HOST\r\nConnection: close\r\n\r\n")
        t.check("and a restart of the instance", b"page /y" in data, data[:200])
        r = m.delete("/v1/sandboxes/web-1/ports/8000")
        t.eq("unexpose", r.status, 200)
        data = raw_request(m, host, b"GET / HTTP/1.1\r\nHost: HOST\r\n\r\n")
        t.check("an unexposed port is 404", data.startswith(b"HTTP/1.1 404"), data[:100])
        r = m.delete("/v1/sandboxes/web-1/ports/8000")
        t.eq("unexposing it again is 404", r.status, 404)


def test_isolation(t):
    if not t.needs_root("preview isolation", "needs root for per-sandbox users"):
        return
    with Manager(pools=['class_name = "Sandbox"\nbackend = "local"\nmax_instances = 1\n']) as m:
        start_server(m, "owner", 8100)
        r = m.post("/v1/sandboxes/thief/ports", {"port": 8100, "token": "steal"})
        t.eq("another sandbox may expose the number", r.status, 201)
        data = raw_request(m, "8100-thief-steal.localhost", b"GET / HTTP/1.1\r\nHost: HOST\r\n\r\n")
        t.check("but cannot reach a server of another sandbox through it",
                data.startswith(b"HTTP/1.1 502"), data[:120])
        r = m.delete("/v1/sandboxes/owner")
        t.eq("deleting a sandbox", r.status, 200)
        r = m.get("/v1/sandboxes/thief/ports")
        t.eq("  keeps other sandboxes' ports", len(r.json["ports"]), 1)


if __name__ == "__main__":
    Suite("previews").run([test_previews, test_isolation])
