"""Integration test harness: starts the real daemons on temporary sockets,
ports and directories, and talks HTTP to them over those sockets.

Every suite ends with the line "N passed, N failed" (", N skipped" when
some were skipped), so a run that executed nothing is visible."""

import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

BIN = os.environ.get("SANDPIT_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "bin")
ROOT = os.environ.get("SANDPIT_ROOT") or os.path.join(
    os.path.dirname(__file__), "..", "..")


# Sanitizer reports found in daemons' logs; every suite fails on them.
SANITIZER_FINDINGS = []
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "ERROR: UndefinedBehaviorSanitizer")


def scan_log(path, what):
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return
    for mark in SANITIZER_MARKS:
        i = text.find(mark)
        if i >= 0:
            SANITIZER_FINDINGS.append("%s: %s" % (what, text[max(0, i - 200):i + 3000]))
            return


def wait_answering(proc, name, answered, logtext, timeout):
    """Wait until answered() is true of a daemon just started; raise with
    the end of its log if it exits or stays silent."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("%s exited with %d: %s" % (name, proc.returncode,
                                                          logtext()[-2000:]))
        try:
            if answered():
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError("%s did not answer: %s" % (name, logtext()[-2000:]))


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


class Response:
    def __init__(self, status, headers, body, raw=b""):
        self.status = status
        self.headers = headers
        self.body = body
        self.raw = raw
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return "<%d %s>" % (self.status, self.body[:300])


def request(conn, method, path, body=None, headers=None, raw=None):
    hdrs = dict(headers or {})
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    conn.request(method, path, body=data, headers=hdrs)
    r = conn.getresponse()
    out = r.read()
    return Response(r.status, dict(r.getheaders()), out.decode("utf-8", "replace"), out)


def local_instance_pids(data):
    """The pids of the local instances recorded under data/instances that
    still run: the same process, its start time as instance.id says."""
    pids = []
    root = os.path.join(data, "instances")
    for d in os.listdir(root) if os.path.isdir(root) else []:
        try:
            with open(os.path.join(root, d, "instance.id")) as f:
                kind, pid, start = f.read().split()[0].split(":")[:3]
            with open("/proc/%s/stat" % pid) as f:
                running = int(f.read().rsplit(")", 1)[1].split()[19])
            if kind == "local" and running == int(start):
                pids.append(int(pid))
        except (OSError, ValueError, IndexError):
            pass
    return pids


def rss_kb(pid):
    """The resident set of process pid, in KiB (VmRSS)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def stop_process(proc, timeout=15):
    """SIGTERM, then SIGKILL after timeout seconds; its exit status."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def can_lower_oom_score():
    """Whether this machine lets root lower an OOM score (CAP_SYS_RESOURCE):
    sandpitd shields itself and its instances only then."""
    return subprocess.run(["sh", "-c", "echo -900 > /proc/self/oom_score_adj"],
                          stderr=subprocess.DEVNULL).returncode == 0


class Client:
    """A daemon the tests run (self.proc), and HTTP to it: conn() and the
    defaults come from the subclass.  In `with Monitor() as m:` its
    cleanup() runs when the block ends, however it ends."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()
        return False

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def stop(self):
        return stop_process(self.proc) if self.proc else None

    TIMEOUT = 30
    LOG = None  # the daemon's log file, in self.tmp

    def headers(self, headers=None, auth=True):
        return dict(headers or {})

    def req(self, method, path, body=None, headers=None, raw=None, auth=True, timeout=None):
        c = self.conn(timeout or self.TIMEOUT)
        try:
            return request(c, method, path, body, self.headers(headers, auth), raw)
        finally:
            c.close()

    def get(self, path, **kw):
        return self.req("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.req("POST", path, body if body is not None else {}, **kw)

    def delete(self, path, **kw):
        return self.req("DELETE", path, **kw)

    def logtext(self):
        with open(os.path.join(self.tmp, self.LOG), "rb") as f:
            return f.read().decode("utf-8", "replace")


# Sandbox users of this run's standalone monitors.  A standalone monitor kills
# every process of its sandbox users when it exits, so two runs sharing the
# default base (200000) would kill each other's processes.  The range is above
# every range sandpitd hands its instances (200000 + k * 65536, k <= 32000).
RUN_UID_BASE = 200000 + 32001 * 65536 + 65536 * random.randrange(760)


class Monitor(Client):
    """A sandpit-monitor on a temporary socket and data directory."""

    LOG = "monitor.log"

    def __init__(self, tmp=None, extra_args=(), env=None, data=None):
        self.tmp = tmp or tempfile.mkdtemp(prefix="sp-mon-")
        # sandbox users must be able to reach their workspaces below it
        os.chmod(self.tmp, 0o755)
        self.sock = os.path.join(self.tmp, "monitor.sock")
        self.data = data or os.path.join(self.tmp, "data")
        self.workspace = os.path.join(self.tmp, "workspace")
        os.makedirs(self.workspace, exist_ok=True)
        self.log = open(os.path.join(self.tmp, "monitor.log"), "ab")
        self.args = [os.path.join(BIN, "sandpit-monitor"), "--socket", self.sock,
                     "--data", self.data, "--workspace", self.workspace, *extra_args]
        self.env = dict(os.environ, **(env or {}))
        self.env.setdefault("SANDPIT_UID_BASE", str(RUN_UID_BASE))
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=self.log,
                                     env=self.env)
        wait_answering(self.proc, "monitor", lambda: self.get("/api/ping").status == 200,
                       self.logtext, 10)

    def conn(self, timeout=30):
        return UnixHTTPConnection(self.sock, timeout=timeout)

    def sse(self, method, path, body=None, headers=None, timeout=30, until=None):
        """Read a server-sent event stream to its end (or until `until(event)`),
        returning the list of decoded data objects."""
        c = self.conn(timeout)
        hdrs = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        c.request(method, path, body=data, headers=hdrs)
        r = c.getresponse()
        events = []
        if r.status != 200:
            body = r.read().decode()
            c.close()
            raise AssertionError("SSE %s -> %d %s" % (path, r.status, body))
        try:
            while True:
                line = r.readline()
                if not line:
                    break
                line = line.decode("utf-8", "replace").rstrip("\r\n")
                if line.startswith("data:"):
                    ev = json.loads(line[5:].strip())
                    events.append(ev)
                    if until and until(ev):
                        break
        finally:
            c.close()
        return events

    def wait_for(self, fn, timeout=10, interval=0.05):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            last = fn()
            if last:
                return last
            time.sleep(interval)
        return last

    def cleanup(self):
        self.stop()
        self.log.close()
        scan_log(os.path.join(self.tmp, "monitor.log"), "sandpit-monitor")
        shutil.rmtree(self.tmp, ignore_errors=True)


def in_ci():
    return os.environ.get("CI") == "true"


class Suite:
    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0
        self.skipped = 0

    def check(self, what, cond, detail=""):
        if cond:
            self.passed += 1
            print("  ok   %s" % what)
        else:
            self.failed += 1
            print("  FAIL %s %s" % (what, detail))
        sys.stdout.flush()
        return cond

    def eq(self, what, got, want):
        return self.check(what, got == want, "(got %r, want %r)" % (got, want))

    def skip(self, what, why):
        self.skipped += 1
        print("  SKIP %s: %s" % (what, why))

    def needs_root(self, what, why):
        """Whether the suite runs as root; when not, `what` is skipped."""
        if os.geteuid() == 0:
            return True
        self.skip(what, why)
        return False

    def require(self, what, why):
        """A prerequisite the suite needs is missing: a loud skip, but a
        failure under CI=true, where every prerequisite is promised."""
        if in_ci():
            self.check(what, False, "(CI=true, and %s)" % why)
        else:
            self.skip(what, "*** SKIPPED: %s ***" % why)

    def run(self, tests):
        print("== %s" % self.name)
        for t in tests:
            print("-- %s" % t.__name__)
            sys.stdout.flush()
            try:
                t(self)
            except Exception:
                self.failed += 1
                print("  FAIL %s raised:" % t.__name__)
                traceback.print_exc(file=sys.stdout)
        for finding in SANITIZER_FINDINGS:
            self.failed += 1
            print("  FAIL sanitizer report in %s" % finding)
        line = "%d passed, %d failed" % (self.passed, self.failed)
        if self.skipped:
            line += ", %d skipped" % self.skipped
        print(line)
        sys.stdout.flush()
        sys.exit(1 if self.failed else 0)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def term_then_kill(pids, grace_s=5):
    """SIGTERM each pid (so sanitizer reports get written), wait up to
    grace_s for them to go, then SIGKILL what is left."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.time() + grace_s
    while time.time() < deadline and any(os.path.exists("/proc/%d" % p) for p in pids):
        time.sleep(0.02)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


class Manager(Client):
    """A sandpitd on a free port with a temporary data directory."""

    TOKEN = "integration-token-0123456789"
    TIMEOUT = 60
    LOG = "sandpitd.log"

    def __init__(self, pools=None, extra="", env=None):
        # short: instance sockets live below it and must fit 108 bytes
        self.tmp = tempfile.mkdtemp(prefix="spm-", dir="/tmp")
        os.chmod(self.tmp, 0o755)
        self.port = free_port()
        self.data = os.path.join(self.tmp, "d")
        self.config = os.path.join(self.tmp, "sandpit.toml")
        pools = pools if pools is not None else [
            'class_name = "Sandbox"\nbackend = "local"\nmax_instances = 2\n']
        text = 'listen = "127.0.0.1:%d"\napi_token = "%s"\ndata_dir = "%s"\n%s\n' % (
            self.port, self.TOKEN, self.data, extra)
        for p in pools:
            text += "[[containers]]\n" + p + "\n"
        with open(self.config, "w") as f:
            f.write(text)
        self.env = dict(os.environ, **(env or {}))
        self.env.pop("SANDPIT_API_TOKEN", None)
        self.logf = open(os.path.join(self.tmp, "sandpitd.log"), "ab")
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen([os.path.join(BIN, "sandpitd"), "--config", self.config],
                                     stdout=self.logf, stderr=self.logf, env=self.env)
        wait_answering(self.proc, "sandpitd",
                       lambda: self.req("GET", "/health", auth=False).status == 200,
                       self.logtext, 15)

    def conn(self, timeout=60):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def headers(self, headers=None, auth=True):
        h = dict(headers or {})
        if auth:
            h.setdefault("Authorization", "Bearer " + self.TOKEN)
        return h

    def exec(self, sandbox, command, **kw):
        return self.post("/v1/sandboxes/%s/api/execute" % sandbox, {"command": command}, **kw)

    def instance_pids(self):
        return local_instance_pids(self.data)

    def cleanup(self):
        self.stop()
        # instances outlive sandpitd by design: stop them here (TERM first,
        # so their sanitizer reports, if any, are written)
        term_then_kill(self.instance_pids())
        self.logf.close()
        scan_log(os.path.join(self.tmp, "sandpitd.log"), "sandpitd")
        root = os.path.join(self.data, "instances")
        for d in os.listdir(root) if os.path.isdir(root) else []:
            scan_log(os.path.join(root, d, "monitor.log"), "sandpit-monitor in %s" % d)
        shutil.rmtree(self.tmp, ignore_errors=True)
