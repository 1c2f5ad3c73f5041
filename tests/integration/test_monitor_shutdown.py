"""sandpit-monitor: the stop sequence on SIGTERM (issue 17).

Each case starts its own monitor, puts work in flight (a foreground command,
a streamed command, a supervised process that ignores SIGTERM, log
followers), sends SIGTERM and asserts what every client received, the exit
status, the time to exit, and that no process of the sandbox is left behind
(the standalone monitor has no pid namespace to clean up after it)."""
import contextlib
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import threading
import time

from harness import Monitor, Suite

# Headroom over the documented bound (stop timeout + 1 s) for a loaded machine.
SLACK = 1.5
STOP_MS = 2000
# The monitor exits at most BOUND s after SIGTERM; with a process that
# ignores SIGTERM, not before AT_TIMEOUT s.
BOUND = STOP_MS / 1000 + 1 + SLACK
AT_TIMEOUT = STOP_MS / 1000 - 0.1
# Unique to this run, so concurrent runs and other suites never match.
RUN = "%05d" % random.randrange(100000)


# Sandbox users of their own: a standalone monitor kills every process of
# its sandbox users when it exits, so monitors of other suites running at the
# same time with the default base (200000) would kill this suite's processes.
UID_BASE = 400000 + 64 * random.randrange(5000)


@contextlib.contextmanager
def case_monitor(stop_ms, *marks):
    """The monitor of one case; when the case ends, however it ends, the
    processes with one of the marks are killed and the monitor cleaned up."""
    m = Monitor(extra_args=["--stop-timeout", str(stop_ms), "--uid-base", str(UID_BASE)])
    try:
        yield m
    finally:
        kill_leftovers(*marks)
        m.cleanup()


def marker(n):
    """A sleep duration unique to this run and case: "sleep <marker>" is in
    the command line of the sleep (and of the shell running it)."""
    return "30.%s%d" % (RUN, n)


def tick(n):
    """A short sleep for loops, unique to this run and case."""
    return "0.1%s%d" % (RUN, n)


def marked_pids(*marks):
    """Pids of processes whose command line contains one of the marks."""
    found = []
    me = os.getpid()
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == me:
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if any(mk in cmd for mk in marks):
            found.append((int(d), cmd.strip()))
    return found


def group_pids(pgid):
    """Pids of live (not zombie) processes in process group pgid."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if rest[0] != "Z" and int(rest[2]) == pgid:
            found.append(int(d))
    return found


def kill_leftovers(*marks):
    for pid, _ in marked_pids(*marks):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def term(m, sig=signal.SIGTERM):
    """Signal the monitor; returns the time it was sent."""
    t0 = time.monotonic()
    m.proc.send_signal(sig)
    return t0


def wait_exit(m, t0, limit):
    """Wait for the monitor to exit; (status or None, seconds since t0).
    Waits a little past the limit so an overrun is measured, not guessed."""
    try:
        rc = m.proc.wait(timeout=max(0.0, t0 + limit + 2 - time.monotonic()))
    except subprocess.TimeoutExpired:
        rc = None
    return rc, time.monotonic() - t0


class Call(threading.Thread):
    """A plain request in a thread: .resp (harness Response) or .exc, and
    .done_at (monotonic) when the answer was complete."""

    def __init__(self, m, method, path, body=None, headers=None, timeout=20):
        super().__init__(daemon=True)
        self.m, self.method, self.path, self.body = m, method, path, body
        self.headers, self.timeout = headers, timeout
        self.resp = self.exc = self.done_at = None
        self.start()

    def run(self):
        try:
            self.resp = self.m.req(self.method, self.path, self.body, headers=self.headers,
                                   timeout=self.timeout)
        except Exception as e:  # noqa: BLE001 - reported by the checks
            self.exc = e
        self.done_at = time.monotonic()


class Stream(threading.Thread):
    """An SSE client in a thread on a raw socket, collecting events as they
    arrive.  It decodes the chunked body itself: http.client's readline
    takes a connection closed mid-body for a clean end, and the difference
    is what a client like curl or fetch reports as an error.
    .terminated: the body ended with its terminating chunk; .exc: what went
    wrong otherwise.  The socket timeout makes a stream that hangs fail
    instead of hanging the suite."""

    def __init__(self, m, method, path, body=None, headers=None, timeout=8):
        super().__init__(daemon=True)
        self.m, self.method, self.path, self.body = m, method, path, body
        self.headers, self.timeout = dict(headers or {}), timeout
        self.events = []
        self.status = self.exc = self.done_at = None
        self.terminated = False
        self.start()

    def run(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        buf = bytearray()

        def fill():
            data = s.recv(65536)
            if not data:
                raise EOFError("connection closed mid-response (%d events read)"
                               % len(self.events))
            buf.extend(data)

        def line():
            while b"\r\n" not in buf:
                fill()
            i = buf.index(b"\r\n")
            out = bytes(buf[:i])
            del buf[:i + 2]
            return out

        def take(n):
            while len(buf) < n:
                fill()
            out = bytes(buf[:n])
            del buf[:n]
            return out

        text = bytearray()

        def feed(data):
            text.extend(data)
            while b"\n" in text:
                i = text.index(b"\n")
                ln = text[:i].decode("utf-8", "replace").rstrip("\r")
                del text[:i + 1]
                if ln.startswith("data:"):
                    self.events.append(json.loads(ln[5:].strip()))

        try:
            s.connect(self.m.sock)
            hdrs = {"Host": "localhost"}
            hdrs.update(self.headers)
            data = b""
            if self.body is not None:
                data = json.dumps(self.body).encode()
                hdrs["Content-Type"] = "application/json"
                hdrs["Content-Length"] = str(len(data))
            head = "%s %s HTTP/1.1\r\n" % (self.method, self.path)
            head += "".join("%s: %s\r\n" % kv for kv in hdrs.items()) + "\r\n"
            s.sendall(head.encode() + data)
            self.status = int(line().split()[1])
            resp_headers = {}
            while True:
                h = line()
                if not h:
                    break
                k, _, v = h.decode("latin-1").partition(":")
                resp_headers[k.strip().lower()] = v.strip()
            if self.status != 200:
                raise AssertionError("status %d" % self.status)
            if resp_headers.get("transfer-encoding", "").lower() != "chunked":
                raise AssertionError("not chunked: %r" % resp_headers)
            while True:
                n = int(line().split(b";")[0], 16)
                if n == 0:
                    while line():
                        pass
                    self.terminated = True
                    break
                feed(take(n))
                take(2)
        except Exception as e:  # noqa: BLE001 - reported by the checks
            self.exc = e
        finally:
            s.close()
            self.done_at = time.monotonic()

    def count(self, typ):
        return sum(1 for e in self.events if e.get("type") == typ)

    def last(self):
        return self.events[-1] if self.events else {}


def wait_until(fn, timeout=10, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(interval)
    return fn()


def stdout_of(m, pid_or_id):
    r = m.get("/api/process/%s/logs" % pid_or_id)
    return r.json.get("stdout", "") if r.status == 200 and r.json else ""


def pid_of(r):
    """The pid in the answer to POST /api/process/start."""
    return r.json.get("pid") if r.json else None


def start_ticker(m, mk):
    """A supervised process, "ticker", printing line1, line2, ... every mk s."""
    cmd = "i=0; while true; do i=$((i+1)); echo line$i; sleep %s; done" % mk
    return m.post("/api/process/start", {"command": cmd, "processId": "ticker"})


def stopped_stream_end(e):
    """Whether e is a process stream's last event at shutdown: the exit,
    or an error MONITOR_STOPPING."""
    return e.get("type") == "exit" or (e.get("type") == "error" and
                                       e.get("code") == "MONITOR_STOPPING")


def start_stubborn(t, m, n, pid_name="stubborn"):
    """A supervised process that ignores SIGTERM and prints a line every
    ~0.1 s; returns its pid (= its process group) once it printed "up"."""
    cmd = ("trap '' TERM; echo up; i=0; while true; do i=$((i+1)); echo tick$i; "
           "sleep %s; done" % tick(n))
    r = m.post("/api/process/start", {"command": cmd, "processId": pid_name})
    t.eq("%s process started" % pid_name, r.status, 200)
    up = wait_until(lambda: stdout_of(m, pid_name).startswith("up\n"), timeout=5)
    t.check("%s process printed 'up'" % pid_name, up, stdout_of(m, pid_name))
    return pid_of(r)


def check_exit(t, m, t0, lo, hi, what="monitor"):
    rc, took = wait_exit(m, t0, hi)
    t.eq("%s exits with status 0" % what, rc, 0)
    t.check("%s exits %.1f-%.1f s after SIGTERM (took %.2f s)" % (what, lo, hi, took),
            lo <= took <= hi, "(log tail: %s)" % m.logtext()[-1500:])
    return rc, took


def check_gone(t, what, marks, pgids=()):
    # A process killed a moment ago may still be on its way out: a short wait.
    wait_until(lambda: not marked_pids(*marks), timeout=1)
    left = marked_pids(*marks)
    t.check("no process of the sandbox left behind (%s)" % what, not left, left)
    for g in pgids:
        if g:
            t.eq("process group %d is empty" % g, group_pids(g), [])


def test_foreground_command(t):
    """1. POST /api/execute in flight: 503 MONITOR_STOPPING with the output so far."""
    mk = marker(1)
    with case_monitor(STOP_MS, mk) as m:
        cmd = "echo before; sleep %s; echo after" % mk
        call = Call(m, "POST", "/api/execute", {"command": cmd, "sessionId": "fg"})
        t.check("the command is running", wait_until(lambda: marked_pids(mk), timeout=5),
                "no process with %s" % mk)
        time.sleep(0.2)
        t0 = term(m)
        rc, took = check_exit(t, m, t0, 0, BOUND)
        call.join(5)
        t.check("the client got an answer", call.resp is not None, call.exc)
        # Without an answer every check below fails (none is skipped).
        r = call.resp
        t.eq("answer is 503", r and r.status, 503)
        j = (r and r.json) or {}
        t.eq("  code MONITOR_STOPPING", j.get("code"), "MONITOR_STOPPING")
        t.check("  with a message", isinstance(j.get("message"), str) and j["message"], r)
        ctx = j.get("context") or {}
        t.eq("  context.stdout is the output so far", ctx.get("stdout"), "before\n")
        t.eq("  context.stderr", ctx.get("stderr"), "")
        t.eq("  context.command", ctx.get("command"), cmd)
        t.eq("  httpStatus 503", j.get("httpStatus"), 503)
        t.check("  answered before the monitor exited",
                r is not None and call.done_at - t0 <= took + 0.1,
                (call.done_at and call.done_at - t0, took))
        check_gone(t, "the sleep", [mk])
        t.check("log says the monitor stopped with code 0",
                '"monitor stopped","code":0' in m.logtext(), m.logtext()[-800:])


def test_streamed_command(t):
    """2. POST /api/execute/stream in flight: start, stdout, then an error event."""
    mk = marker(2)
    with case_monitor(STOP_MS, mk) as m:
        cmd = "echo before; sleep %s; echo after" % mk
        s = Stream(m, "POST", "/api/execute/stream", {"command": cmd, "sessionId": "st"})
        got = wait_until(lambda: s.count("stdout") >= 1, timeout=5)
        t.check("stream is under way (start and stdout seen)", got, s.events)
        t0 = term(m)
        check_exit(t, m, t0, 0, BOUND)
        s.join(5)
        t.check("the stream ended (no hang)", not s.is_alive())
        t.check("  with its terminating chunk (not cut off)", s.terminated, s.exc)
        types = [e.get("type") for e in s.events]
        t.eq("first event is start", types[:1], ["start"])
        t.eq("stdout so far", "".join(e.get("data", "") for e in s.events
                                      if e.get("type") == "stdout"), "before\n")
        last = s.last()
        t.eq("last event is an error", last.get("type"), "error")
        t.eq("  with code MONITOR_STOPPING", last.get("code"), "MONITOR_STOPPING")
        t.eq("no complete event", types.count("complete"), 0)
        check_gone(t, "the sleep", [mk])


def test_stubborn_process(t):
    """3. A supervised process ignoring SIGTERM is killed at the stop timeout."""
    mk = tick(3)
    with case_monitor(STOP_MS, mk) as m:
        pid = start_stubborn(t, m, 3)
        t0 = term(m)
        time.sleep(0.5)
        t.check("the process still runs 0.5 s after SIGTERM (it ignores it)",
                group_pids(pid) if pid else False, pid)
        check_exit(t, m, t0, AT_TIMEOUT, BOUND)
        check_gone(t, "the shell and its sleeps", [mk], [pid])
        log = m.logtext()
        t.check("log mentions the stop timeout", "stop timeout" in log, log[-1500:])


def store_lines(m, process):
    """(process name, [text]) of the lines stored for a process, read from
    the monitor's SQLite database directly."""
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(m.data, "monitor.db"), uri=True)
    try:
        names = [r[0] for r in db.execute("SELECT name FROM processes")]
        name = next((n for n in names if n == process or n.endswith("/" + process)), None)
        if name is None:
            return None, names
        rows = db.execute("SELECT l.text FROM lines l JOIN processes p ON p.id = l.proc "
                          "WHERE p.name = ? ORDER BY l.seq", (name,)).fetchall()
        return name, [bytes(r[0]).decode("utf-8", "replace") if not isinstance(r[0], str)
                      else r[0] for r in rows]
    finally:
        db.close()


def test_followers(t):
    """4. Log followers end with a final event; they miss no stored line."""
    mk = tick(4)
    with case_monitor(STOP_MS, mk) as m:
        r = start_ticker(m, mk)
        t.eq("ticker started", r.status, 200)
        pid = pid_of(r)
        ps = Stream(m, "GET", "/api/process/ticker/stream")
        ls = Stream(m, "GET", "/api/logs?process=ticker&follow=1")
        t.check("process stream receives lines",
                wait_until(lambda: ps.count("stdout") >= 3, timeout=5), ps.events)
        t.check("logs follow receives lines",
                wait_until(lambda: len(ls.events) >= 3, timeout=5), ls.events)
        t0 = term(m)
        check_exit(t, m, t0, 0, BOUND)
        for s in (ps, ls):
            s.join(max(0.1, t0 + BOUND - time.monotonic()))
        for what, s in (("process stream", ps), ("logs follow", ls)):
            t.check("%s ended within %.1f s of SIGTERM (no hang)" % (what, BOUND),
                    not s.is_alive() and s.done_at - t0 <= BOUND,
                    s.done_at and s.done_at - t0)
            t.check("  with its terminating chunk (not cut off)", s.terminated, s.exc)
        types = [e.get("type") for e in ps.events]
        t.eq("process stream starts with process_info", types[:1], ["process_info"])
        t.check("process stream's last event is exit or error MONITOR_STOPPING",
                stopped_stream_end(ps.last()), ps.last())
        last = ls.last()
        t.eq("logs follow's last event is an error", last.get("type"), "error")
        t.eq("  with code MONITOR_STOPPING", last.get("code"), "MONITOR_STOPPING")
        # What the followers received against what the store kept.
        name, stored = store_lines(m, "ticker")
        t.check("ticker's lines are in the store", name and stored, (name, stored))
        got_ps = [e["data"].rstrip("\n") for e in ps.events if e.get("type") == "stdout"]
        got_ls = [e["text"] for e in ls.events if "text" in e]
        t.eq("process stream got every stored line, in order", got_ps, stored)
        t.eq("logs follow got every stored line, in order", got_ls, stored)
        check_gone(t, "the ticker", [mk], [pid])


def test_refuses_new_connections(t):
    """5. During the grace period the socket is gone and connect fails."""
    mk = tick(5)
    with case_monitor(STOP_MS, mk) as m:
        pid = start_stubborn(t, m, 5)
        t0 = term(m)
        gone = wait_until(lambda: not os.path.exists(m.sock), timeout=1, interval=0.01)
        t.check("socket path removed soon after SIGTERM", gone,
                "(still there %.2f s after)" % (time.monotonic() - t0))
        t.check("monitor still in its stop sequence", m.proc.poll() is None, m.proc.returncode)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(2)
        try:
            s.connect(m.sock)
            refused = None
        except (FileNotFoundError, ConnectionRefusedError) as e:
            refused = e
        finally:
            s.close()
        t.check("a new connection is refused", refused is not None, "(connect succeeded)")
        try:
            r = m.get("/api/ping", timeout=2)
            t.check("a new request gets no answer", False, r)
        except OSError:
            t.check("a new request gets no answer", True)
        t.check("  while the monitor is still running (%.2f s in)" % (time.monotonic() - t0),
                m.proc.poll() is None and time.monotonic() - t0 < STOP_MS / 1000,
                m.proc.returncode)
        check_exit(t, m, t0, AT_TIMEOUT, BOUND)
        check_gone(t, "the stubborn process", [mk], [pid])


def second_signal(t, sig, n):
    mk = tick(n)
    with case_monitor(10000, mk) as m:
        pid = start_stubborn(t, m, n)
        t0 = term(m)
        time.sleep(0.3)
        t.check("0.3 s after the first SIGTERM the monitor waits for the process",
                m.proc.poll() is None, m.proc.returncode)
        m.proc.send_signal(sig)
        check_exit(t, m, t0, 0, 1.5)
        check_gone(t, "the stubborn process", [mk], [pid])
        t.check("log says it stopped at once", "stopping at once" in m.logtext(),
                m.logtext()[-1500:])


def test_second_sigterm(t):
    """6. A second SIGTERM skips the grace period."""
    second_signal(t, signal.SIGTERM, 6)


def test_sigint_after_sigterm(t):
    """6b. So does a SIGINT."""
    second_signal(t, signal.SIGINT, 7)


def test_everything_at_once(t):
    """7. A foreground command, a streamed command, the stubborn process and
    two followers in one monitor: every client gets its final answer."""
    mk_fg, mk_st, mk_stub, mk_tick = marker(8), marker(9), tick(8), tick(9)
    marks = [mk_fg, mk_st, mk_stub, mk_tick]
    with case_monitor(STOP_MS, *marks) as m:
        stub = start_stubborn(t, m, 8)
        tick_pid = pid_of(start_ticker(m, mk_tick))
        fg_cmd = "echo before; sleep %s" % mk_fg
        call = Call(m, "POST", "/api/execute", {"command": fg_cmd, "sessionId": "fg"})
        st = Stream(m, "POST", "/api/execute/stream",
                    {"command": "echo before; sleep %s" % mk_st, "sessionId": "st"})
        ps = Stream(m, "GET", "/api/process/ticker/stream")
        ps2 = Stream(m, "GET", "/api/process/stubborn/stream")
        ls = Stream(m, "GET", "/api/logs?follow=1")
        ok = wait_until(lambda: marked_pids(mk_fg) and st.count("stdout") >= 1 and
                        ps.count("stdout") >= 2 and ps2.count("stdout") >= 2 and
                        len(ls.events) >= 2, timeout=8)
        t.check("everything is under way", ok,
                (marked_pids(mk_fg), st.events, len(ps.events), len(ps2.events), len(ls.events)))
        time.sleep(0.2)
        t0 = term(m)
        check_exit(t, m, t0, AT_TIMEOUT, BOUND)
        for th in (call, st, ps, ps2, ls):
            th.join(max(0.1, t0 + BOUND - time.monotonic()))
        r = call.resp
        t.check("foreground: answered", r is not None, call.exc)
        j = (r and r.json) or {}
        t.eq("foreground: 503 MONITOR_STOPPING with its output",
             (r and r.status, j.get("code"), (j.get("context") or {}).get("stdout")),
             (503, "MONITOR_STOPPING", "before\n"))
        last = st.last()
        t.check("streamed command: ended with its terminating chunk", st.terminated, st.exc)
        t.eq("streamed command: last event error MONITOR_STOPPING",
             (last.get("type"), last.get("code")), ("error", "MONITOR_STOPPING"))
        for what, s in (("ticker follower", ps), ("stubborn follower", ps2)):
            t.check("%s: ended with its terminating chunk" % what, s.terminated, s.exc)
            t.check("%s: last event exit or error MONITOR_STOPPING" % what,
                    stopped_stream_end(s.last()), s.last())
        last = ls.last()
        t.check("logs follower: ended with its terminating chunk", ls.terminated, ls.exc)
        t.eq("logs follower: last event error MONITOR_STOPPING",
             (last.get("type"), last.get("code")), ("error", "MONITOR_STOPPING"))
        for what, th in (("foreground", call), ("streamed command", st), ("ticker follower", ps),
                         ("stubborn follower", ps2), ("logs follower", ls)):
            t.check("%s: answered within %.1f s of SIGTERM" % (what, BOUND),
                    not th.is_alive() and th.done_at - t0 <= BOUND,
                    th.done_at and th.done_at - t0)
        check_gone(t, "all four", marks, [stub, tick_pid])


def test_committed_lines_survive(t):
    """8. Lines printed before SIGTERM are in the store after exit, and a
    monitor restarted on the same data directory serves them."""
    mk = tick(10)
    with case_monitor(STOP_MS, mk) as m:
        pid = start_stubborn(t, m, 10)
        wait_until(lambda: stdout_of(m, "stubborn").count("tick") >= 3, timeout=5)
        before = stdout_of(m, "stubborn").splitlines()
        t.check("lines printed before SIGTERM", len(before) >= 4, before)
        t0 = term(m)
        check_exit(t, m, t0, AT_TIMEOUT, BOUND)
        check_gone(t, "the stubborn process", [mk], [pid])
        name, stored = store_lines(m, "stubborn")
        t.check("the store has the process", name is not None, stored)
        if name is not None:
            t.eq("the store has every line printed before SIGTERM, in order",
                 stored[:len(before)], before)
            t.check("  and the lines of the grace period", len(stored) > len(before),
                    (len(stored), len(before)))
        m.start()
        r = m.get("/api/logs?process=stubborn")
        t.eq("restarted monitor serves /api/logs", r.status, 200)
        texts = [x["text"] for x in (r.json or {}).get("lines", [])]
        t.eq("  with the lines printed before SIGTERM", texts[:len(before)], before)
        t.eq("  and those of the grace period", texts, stored)
        t.check("the restarted monitor did not bring the process back",
                not marked_pids(mk), marked_pids(mk))


if __name__ == "__main__":
    Suite("monitor shutdown").run([
        test_foreground_command,
        test_streamed_command,
        test_stubborn_process,
        test_followers,
        test_refuses_new_connections,
        test_second_sigterm,
        test_sigint_after_sigterm,
        test_everything_at_once,
        test_committed_lines_survive,
    ])
