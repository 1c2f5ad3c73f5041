"""sandpitd's SIGTERM: new connections are refused, what is in flight gets
the grace period and is then answered (503 MANAGER_STOPPING) or closed,
a second signal cuts the grace short, sandpitd exits 0 in time, and its
instances keep running for the next sandpitd to adopt."""
import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time

from harness import BIN, Manager, Suite
from test_previews import start_server

# what the contract allows past the grace, and slack for a loaded machine
AFTER_GRACE = 1.0
SLACK = 0.5
ONE_INSTANCE = ['class_name = "Sandbox"\nbackend = "local"\nmax_instances = 1\n']


def api_payload(m, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else b""
    head = "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n" % (
        method, path, m.port, m.TOKEN)
    if body is not None:
        head += "Content-Type: application/json\r\nContent-Length: %d\r\n" % len(data)
    return head.encode() + b"\r\n" + data


class Client(threading.Thread):
    """One request on its own connection; every byte is kept until the
    connection closes, and when it closed."""

    def __init__(self, m, payload):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", m.port), timeout=60)
        self.payload = payload
        self.data = b""
        self.closed_at = None
        self.start()

    def run(self):
        self.sock.sendall(self.payload)
        try:
            while True:
                d = self.sock.recv(65536)
                if not d:
                    break
                self.data += d
        except OSError:
            pass
        self.closed_at = time.time()
        self.sock.close()

    def wait_for(self, needle, timeout=15):
        deadline = time.time() + timeout
        while needle not in self.data and time.time() < deadline and self.closed_at is None:
            time.sleep(0.02)
        return needle in self.data

    def status(self):
        return int(self.data.split(b" ", 2)[1]) if self.data.startswith(b"HTTP/1.") else None

    def head(self):
        return self.data.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()

    def body_json(self):
        try:
            return json.loads(self.data.split(b"\r\n\r\n", 1)[1])
        except (IndexError, ValueError):
            return None

    def ended_cleanly(self):
        """A chunked response that reached its last chunk."""
        return self.data.endswith(b"\r\n0\r\n\r\n")


def recv_until(sock, needle, timeout=10):
    sock.settimeout(timeout)
    data = b""
    while needle not in data:
        d = sock.recv(65536)
        if not d:
            break
        data += d
    return data


def read_to_close(sock, timeout=15):
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            d = sock.recv(65536)
            if not d:
                break
            data += d
    except OSError:
        pass
    return data, time.time()


def refused(m):
    try:
        socket.create_connection(("127.0.0.1", m.port), timeout=2).close()
        return False
    except ConnectionRefusedError:
        return True


def sigterm(m):
    t0 = time.time()
    m.proc.send_signal(signal.SIGTERM)
    return t0


def exited(m, t0, timeout=30):
    try:
        rc = m.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return None, timeout
    return rc, time.time() - t0


def test_shutdown_with_work_in_flight(t):
    grace = 2
    m = Manager(pools=ONE_INSTANCE, extra="shutdown_grace = %d\n" % grace)
    try:
        t.check("the sandbox's dev server starts", start_server(m, "web-1", 8000))
        tok = m.post("/v1/sandboxes/web-1/ports", {"port": 8000}).json["token"]
        host = "8000-web-1-%s.localhost:%d" % (tok, m.port)
        m.post("/v1/sandboxes/logs-1/api/process/start",
               {"command": "while true; do echo tick; sleep 0.2; done", "processId": "ticker"})
        pids = sorted(m.instance_pids())

        # in flight: a foreground command, a streamed one, a log follower
        fg = Client(m, api_payload(m, "POST", "/v1/sandboxes/fg-1/api/execute", {"command": "sleep 30"}))
        st = Client(m, api_payload(m, "POST", "/v1/sandboxes/st-1/api/execute/stream",
                                   {"command": "echo started; sleep 30"}))
        lg = Client(m, api_payload(m, "GET", "/v1/sandboxes/logs-1/api/logs?process=ticker&follow=1"))
        t.check("the streamed command has started", st.wait_for(b"started"))
        t.check("the log follower gets lines", lg.wait_for(b"tick"))
        # open previews: a kept-alive connection and an upgraded one
        keep = socket.create_connection(("127.0.0.1", m.port), timeout=10)
        keep.sendall(b"GET /before HTTP/1.1\r\nHost: %s\r\n\r\n" % host.encode())
        first = recv_until(keep, b"page /before")
        t.check("a kept-alive preview connection is open", b"page /before" in first, first[:200])
        up = socket.create_connection(("127.0.0.1", m.port), timeout=10)
        up.sendall(b"GET /raw HTTP/1.1\r\nHost: %s\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n"
                   % host.encode())
        t.check("an upgraded preview connection is open",
                recv_until(up, b"\r\n\r\n").startswith(b"HTTP/1.1 101"))
        # an API connection kept alive between requests
        idle = m.conn(10)
        idle.request("GET", "/v1/version", headers=m.headers())
        r = idle.getresponse()
        r.read()
        t.eq("an idle kept-alive API connection is open", r.status, 200)
        time.sleep(0.3)  # the foreground command is at the monitor by now

        t0 = sigterm(m)
        time.sleep(0.3)
        t.check("during the grace new connections are refused", refused(m))
        idle.request("GET", "/v1/version", headers=m.headers())
        r = idle.getresponse()
        body = json.loads(r.read())
        t.eq("  a new request on an open connection is 503 MANAGER_STOPPING",
             (r.status, body["code"]), (503, "MANAGER_STOPPING"))
        t.check("  with Retry-After, and the connection closed",
                r.getheader("Retry-After") == "2" and r.getheader("Connection") == "close",
                r.getheaders())
        idle.close()
        keep.sendall(b"GET /during HTTP/1.1\r\nHost: %s\r\n\r\n" % host.encode())
        during = recv_until(keep, b"page /during")
        t.check("  previews are carried on meanwhile", b"page /during" in during, during[:200])
        up.sendall(b"still here")
        t.eq("  upgraded ones too", recv_until(up, b"HERE"), b"STILL HERE")

        rc, took = exited(m, t0)
        print("  figure: SIGTERM to exit with work in flight: %.2f s (grace %d s)" % (took, grace))
        t.eq("sandpitd exits 0", rc, 0)
        t.check("  after the grace, within a second of it (%.2f s)" % took,
                grace - 0.1 <= took <= grace + AFTER_GRACE + SLACK)
        for c in (fg, st, lg):
            c.join(5)
        t.eq("the foreground command is answered 503", fg.status(), 503)
        t.eq("  with code MANAGER_STOPPING", (fg.body_json() or {}).get("code"), "MANAGER_STOPPING")
        t.check("  at the end of the grace (%.2f s)" % (fg.closed_at - t0),
                grace - 0.1 <= fg.closed_at - t0 <= grace + AFTER_GRACE)
        t.check("the streamed command's response is closed mid-stream",
                st.status() == 200 and st.closed_at is not None and not st.ended_cleanly() and
                b'"complete"' not in st.data, st.data[-300:])
        t.check("the log follower's response is closed mid-stream",
                lg.status() == 200 and lg.closed_at is not None and not lg.ended_cleanly(),
                lg.data[-300:])
        rest, keep_closed = read_to_close(keep)
        t.check("the kept-alive preview connection is closed (%.2f s)" % (keep_closed - t0),
                rest == b"" and keep_closed - t0 <= grace + AFTER_GRACE + SLACK, rest[:200])
        rest, up_closed = read_to_close(up)
        t.check("the upgraded preview connection is closed", rest == b"", rest[:200])
        keep.close()
        up.close()

        alive = [p for p in pids if os.path.exists("/proc/%d" % p)]
        t.check("the instance keeps running after sandpitd exits", pids and alive == pids, (pids, alive))
        m.start()
        r = m.exec("fg-1", "echo back")
        t.eq("the next sandpitd runs commands on it", (r.status, r.json.get("stdout")), (200, "back\n"))
        t.eq("  adopted, not started anew", sorted(m.instance_pids()), pids)
        r = m.get("/v1/sandboxes/logs-1/api/process/ticker")
        t.eq("  its processes kept running", r.json["process"]["status"], "running")
        s = socket.create_connection(("127.0.0.1", m.port), timeout=10)
        s.sendall(b"GET /again HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % host.encode())
        data, _ = read_to_close(s)
        s.close()
        t.check("  and its preview URL works again", b"page /again" in data, data[:200])
    finally:
        m.cleanup()


def test_second_signal_skips_grace(t):
    m = Manager(pools=ONE_INSTANCE, extra='shutdown_grace = "30s"\n')
    try:
        m.exec("fg-2", "true")
        fg = Client(m, api_payload(m, "POST", "/v1/sandboxes/fg-2/api/execute", {"command": "sleep 30"}))
        time.sleep(0.3)
        t0 = sigterm(m)
        time.sleep(0.5)
        m.proc.send_signal(signal.SIGINT)
        rc, took = exited(m, t0)
        print("  figure: SIGTERM, SIGINT 0.5 s later, exit: %.2f s (grace 30 s)" % took)
        t.eq("a second signal: sandpitd exits 0", rc, 0)
        t.check("  without waiting out the grace (%.2f s)" % took, took <= 0.5 + AFTER_GRACE + SLACK)
        fg.join(5)
        t.eq("  the command in flight is answered 503 MANAGER_STOPPING",
             (fg.status(), (fg.body_json() or {}).get("code")), (503, "MANAGER_STOPPING"))
    finally:
        m.cleanup()


def test_stalled_upload(t):
    grace = 1
    m = Manager(pools=ONE_INSTANCE, extra="shutdown_grace = %d\n" % grace)
    try:
        m.exec("up-1", "true")
        pids = sorted(m.instance_pids())
        s = socket.create_connection(("127.0.0.1", m.port), timeout=10)
        head = api_payload(m, "POST", "/v1/sandboxes/up-1/api/write", {"path": "f", "content": ""})
        s.sendall(head.split(b"Content-Length")[0] + b"Content-Length: 1000000\r\n\r\n" + b"x" * 1000)
        time.sleep(0.3)
        t0 = sigterm(m)
        rc, took = exited(m, t0)
        print("  figure: SIGTERM to exit with an upload that stalls: %.2f s (grace %d s)" % (took, grace))
        t.eq("a client that stalls mid-upload: sandpitd exits 0", rc, 0)
        t.check("  within a second of the grace all the same (%.2f s)" % took,
                took <= grace + AFTER_GRACE + SLACK)
        rest, _ = read_to_close(s)
        t.check("  its connection is closed", not rest.startswith(b"HTTP/1.1 2"), rest[:200])
        s.close()
        t.eq("  the instance keeps running", [p for p in pids if os.path.exists("/proc/%d" % p)], pids)
    finally:
        m.cleanup()


def test_nothing_in_flight(t):
    m = Manager(pools=ONE_INSTANCE)  # the default grace, 5 s
    try:
        t.check("the sandbox's dev server starts", start_server(m, "web-3", 8000))
        tok = m.post("/v1/sandboxes/web-3/ports", {"port": 8000}).json["token"]
        keep = socket.create_connection(("127.0.0.1", m.port), timeout=10)
        keep.sendall(b"GET /x HTTP/1.1\r\nHost: 8000-web-3-%s.localhost\r\n\r\n" % tok.encode())
        t.check("a kept-alive preview connection is open", b"page /x" in recv_until(keep, b"page /x"))
        t0 = sigterm(m)
        rc, took = exited(m, t0)
        print("  figure: SIGTERM to exit with nothing in flight but a preview: %.2f s" % took)
        t.eq("with no request in flight sandpitd exits 0", rc, 0)
        t.check("  at once: an open preview does not hold it (%.2f s)" % took, took <= AFTER_GRACE)
        rest, _ = read_to_close(keep)
        t.eq("  the preview connection is closed", rest, b"")
        keep.close()
    finally:
        m.cleanup()


def test_config_key(t):
    m = Manager(pools=ONE_INSTANCE, extra='shutdown_grace = "3s"\n')
    try:
        p = subprocess.run([os.path.join(BIN, "sandpitd"), "--check-config", m.config],
                           capture_output=True, text=True, timeout=30)
        t.eq("--check-config shows shutdown_grace", json.loads(p.stdout).get("shutdown_grace_s"), 3)
        with open(m.config) as f:
            text = f.read().replace('shutdown_grace = "3s"', 'shutdown_grace = "soon"')
        bad = m.config + ".bad"
        with open(bad, "w") as f:
            f.write(text)
        p = subprocess.run([os.path.join(BIN, "sandpitd"), "--check-config", bad],
                           capture_output=True, text=True, timeout=30)
        t.check("a bad shutdown_grace is refused, naming the key",
                p.returncode == 2 and "key 'shutdown_grace' must be a duration" in p.stderr,
                (p.returncode, p.stderr))
    finally:
        m.cleanup()


if __name__ == "__main__":
    Suite("sandpitd shutdown").run([test_shutdown_with_work_in_flight, test_second_signal_skips_grace,
                                     test_stalled_upload, test_nothing_in_flight, test_config_key])
