"""Headless Chromium driven over the Chrome DevTools Protocol, with nothing
but the Python standard library: a minimal WebSocket client (RFC 6455,
client side) and a page session that can navigate, evaluate, wait for a
condition and take screenshots on the same page, so a test can tell a hot
reload (same page, new content) from a fresh load.

    b = Chromium()                    # starts chromium, finds its DevTools port
    page = b.new_page()               # a tab, attached over its own WebSocket
    page.navigate("http://...")       # waits for the load event
    page.evaluate("document.title")
    page.wait_for("document.body.innerText.includes('x')", timeout=10)
    page.screenshot("out.png")
    b.close()

Chromium runs as root here, so it needs --no-sandbox; every run gets a
fresh profile directory."""

import base64
import http.client
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import urllib.parse


def find_chromium():
    for name in (os.environ.get("SANDPIT_CHROMIUM"), "/usr/bin/chromium",
                 "/usr/bin/chromium-browser", "/usr/bin/google-chrome"):
        if name and os.access(name, os.X_OK):
            return name
    return shutil.which("chromium")


# ---------------------------------------------------------------- WebSocket --

class WebSocketClosed(Exception):
    pass


class WebSocket:
    """Client side of RFC 6455: text messages, masked frames, ping/pong,
    fragmented messages; enough for the DevTools protocol."""

    def __init__(self, url, timeout=30):
        u = urllib.parse.urlsplit(url)
        if u.scheme != "ws":
            raise ValueError("only ws:// URLs: %s" % url)
        self.sock = socket.create_connection((u.hostname, u.port or 80), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        path = u.path + ("?" + u.query if u.query else "")
        req = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n") % (path, u.hostname, u.port or 80, key)
        self.sock.sendall(req.encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise WebSocketClosed("closed during the handshake")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" ":
            raise WebSocketClosed("handshake refused: %r" % head[:200])

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise WebSocketClosed("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send_frame(self, opcode, payload):
        head = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def send(self, text):
        self._send_frame(0x1, text.encode())

    def recv(self, timeout=None):
        """One complete text or binary message; raises socket.timeout."""
        self.sock.settimeout(timeout)
        parts = []
        while True:
            b0, b1 = self._read(2)
            fin, opcode = b0 & 0x80, b0 & 0x0F
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
            if opcode == 0x8:
                raise WebSocketClosed("close frame")
            if opcode == 0x9:
                self._send_frame(0xA, payload)
                continue
            if opcode == 0xA:
                continue
            parts.append(payload)
            if fin:
                return b"".join(parts).decode("utf-8", "replace")

    def close(self):
        try:
            self._send_frame(0x8, b"")
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass


# ----------------------------------------------------------------- DevTools --

class CDPError(Exception):
    pass


class Page:
    """One tab over its own DevTools WebSocket.  Events are kept in
    self.events (method, params) in arrival order; console messages and
    exceptions are also collected as text in self.console."""

    def __init__(self, ws_url):
        self.ws = WebSocket(ws_url)
        self.next_id = 0
        self.events = []
        self.console = []
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call("Log.enable")
        self.call("Network.enable")

    def _note(self, msg):
        method, params = msg.get("method"), msg.get("params", {})
        self.events.append((method, params))
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            self.console.append("console.%s: %s" % (params.get("type"), text))
        elif method == "Runtime.exceptionThrown":
            d = params.get("exceptionDetails", {})
            self.console.append("exception: %s %s" % (
                d.get("text", ""), d.get("exception", {}).get("description", "")))
        elif method == "Log.entryAdded":
            e = params.get("entry", {})
            self.console.append("log.%s: %s %s" % (e.get("level"), e.get("text"), e.get("url", "")))
        elif method == "Network.webSocketCreated":
            self.console.append("websocket created: %s" % params.get("url"))
        elif method == "Network.webSocketClosed":
            self.console.append("websocket closed")
        elif method == "Network.webSocketFrameError":
            self.console.append("websocket error: %s" % params.get("errorMessage"))

    def pump(self, timeout):
        """Read events for up to `timeout` seconds."""
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            if left <= 0:
                return
            try:
                msg = json.loads(self.ws.recv(timeout=left))
            except socket.timeout:
                return
            if "method" in msg:
                self._note(msg)

    def call(self, method, params=None, timeout=30):
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params or {}}))
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise CDPError("%s: no answer in %.0f s" % (method, timeout))
            msg = json.loads(self.ws.recv(timeout=left))
            if msg.get("id") == mid:
                if "error" in msg:
                    raise CDPError("%s: %s" % (method, msg["error"]))
                return msg.get("result", {})
            if "method" in msg:
                self._note(msg)

    def navigate(self, url, timeout=30):
        """Load url and wait for its load event; returns Page.navigate's result
        (errorText is set when the navigation itself failed)."""
        mark = len(self.events)
        res = self.call("Page.navigate", {"url": url}, timeout=timeout)
        if res.get("errorText"):
            return res
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(m == "Page.loadEventFired" for m, _ in self.events[mark:]):
                return res
            self.pump(0.1)
        raise CDPError("no load event for %s in %.0f s" % (url, timeout))

    def evaluate(self, expression, timeout=30):
        res = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                             "awaitPromise": True}, timeout=timeout)
        if "exceptionDetails" in res:
            d = res["exceptionDetails"]
            raise CDPError("evaluate %r: %s %s" % (expression, d.get("text"),
                                                   d.get("exception", {}).get("description", "")))
        return res.get("result", {}).get("value")

    def wait_for(self, expression, timeout=10, interval=0.1):
        """Evaluate until it is truthy; returns the last value.  Evaluation
        errors (for example while the page is navigating) count as falsy."""
        deadline = time.time() + timeout
        last = None
        while True:
            try:
                last = self.evaluate(expression, timeout=max(1, deadline - time.time()))
            except CDPError:
                last = None
            if last or time.time() >= deadline:
                return last
            self.pump(interval)

    def navigations(self, since=0):
        """Main-frame navigations recorded from event index `since`."""
        return [p["frame"]["url"] for m, p in self.events[since:]
                if m == "Page.frameNavigated" and not p["frame"].get("parentId")]

    def screenshot(self, path, width=1024, height=700):
        self.call("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path

    def close(self):
        self.ws.close()


class Chromium:
    """Debian's chromium, headless, with the DevTools protocol on a free
    loopback port (read back from DevToolsActivePort)."""

    FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--no-default-browser-check",
             "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-extensions", "--disable-dev-shm-usage",
             "--no-proxy-server", "--mute-audio", "--hide-scrollbars",
             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0"]

    def __init__(self, binary=None, timeout=30):
        self.binary = binary or find_chromium()
        if not self.binary:
            raise RuntimeError("chromium is not installed (apt-get install chromium)")
        self.profile = tempfile.mkdtemp(prefix="sp-chromium-")
        self.logpath = os.path.join(self.profile, "chromium.log")
        self.log = open(self.logpath, "wb")
        self.proc = subprocess.Popen(
            [self.binary, *self.FLAGS, "--user-data-dir=" + self.profile,
             "--window-size=1024,700", "about:blank"],
            stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL,
            start_new_session=True)
        self.port = None
        portfile = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("chromium exited with %d: %s" % (
                    self.proc.returncode, self.logtext()[-2000:]))
            try:
                with open(portfile) as f:
                    first = f.readline().strip()
                if first:
                    self.port = int(first)
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        if not self.port:
            self.close()
            raise RuntimeError("chromium did not open its DevTools port: " + self.logtext()[-2000:])
        self.pages = []

    def logtext(self):
        try:
            with open(self.logpath, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def version(self):
        return self._http("GET", "/json/version").get("Browser", "?")

    def _http(self, method, path):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            c.request(method, path)
            r = c.getresponse()
            body = r.read()
            if r.status != 200:
                raise RuntimeError("DevTools %s %s -> %d %r" % (method, path, r.status, body[:200]))
            return json.loads(body)
        finally:
            c.close()

    def new_page(self):
        t = self._http("PUT", "/json/new?about:blank")
        p = Page(t["webSocketDebuggerUrl"])
        self.pages.append(p)
        return p

    def close(self):
        for p in getattr(self, "pages", []):
            p.close()
        if self.proc.poll() is None:
            # its own session: the renderer and zygote processes go too
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except OSError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except OSError:
                    pass
                self.proc.wait()
        else:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)
