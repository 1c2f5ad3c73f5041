"""sandpit-monitor: supervised processes, logs, restarts, probes, signals."""
import json
import os
import socket
import subprocess
import threading
import time

from harness import BIN, Monitor, Suite, free_port


def proc(m, pid_or_id, sandbox=None):
    h = {"X-Sandpit-Sandbox": sandbox} if sandbox else None
    return m.get("/api/process/%s" % pid_or_id, headers=h).json["process"]


def test_start_and_complete(t):
    with Monitor() as m:
        r = m.post("/api/process/start", {"command": "echo hello; echo oops >&2; exit 3",
                                          "processId": "p1"})
        t.eq("start is 200", r.status, 200)
        t.eq("start returns the id", r.json.get("processId"), "p1")
        t.check("start returns a pid", isinstance(r.json.get("pid"), int), r)
        p = m.wait_for(lambda: (lambda x: x if x["status"] == "failed" else None)(proc(m, "p1")))
        t.check("exit 3 without autoRestart is failed", p and p["status"] == "failed", p)
        t.eq("exitCode recorded", p["exitCode"], 3)
        t.check("endTime set", p["endTime"] is not None)
        logs = m.get("/api/process/p1/logs").json
        t.eq("stdout stored", logs["stdout"], "hello\n")
        t.eq("stderr stored", logs["stderr"], "oops\n")
        r = m.post("/api/process/start", {"command": "true", "processId": "p2"})
        p = m.wait_for(lambda: (lambda x: x if x["status"] == "completed" else None)(proc(m, "p2")))
        t.check("exit 0 is completed", p and p["exitCode"] == 0, p)
        lst = m.get("/api/process/list").json["processes"]
        t.eq("list shows both in start order", [x["id"] for x in lst], ["p1", "p2"])
        r = m.post("/api/process/start", {"command": "sleep 5", "processId": "p3"})
        r = m.post("/api/process/start", {"command": "sleep 5", "processId": "p3"})
        t.eq("a running id cannot be reused", r.status, 409)
        t.eq("  with a JSON error", r.json["code"], "PROCESS_EXISTS")
        t.check("  with context for the SDK", r.json.get("context") == {}, r)
        r = m.get("/api/process/nope")
        t.eq("unknown process is 404", r.status, 404)
        t.eq("  PROCESS_NOT_FOUND", r.json["code"], "PROCESS_NOT_FOUND")


def test_bad_requests(t):
    with Monitor() as m:
        for raw, what in [(b"{", "truncated JSON"), (b"[1,2]", "array body"),
                          (b"", "empty body"), (b"{\"command\": 5}", "command not a string"),
                          (b"{\"command\": \"x\", \"port\": 70000}", "port out of range"),
                          (b"{\"command\": \"x\", \"processId\": \"../etc\"}", "bad processId"),
                          (b"{\"command\": \"x\", \"env\": {\"A=B\": \"c\"}}", "bad env name"),
                          (b"{\"command\": \"\"}", "empty command")]:
            r = m.req("POST", "/api/process/start", raw=raw,
                      headers={"Content-Type": "application/json"})
            t.check("%s is a 400 with a code" % what,
                    r.status == 400 and r.json and r.json.get("code"), r)
        r = m.req("POST", "/api/process/start", raw=b"{\"command\":\"" + b"a" * (2 << 20) + b"\"}",
                  headers={"Content-Type": "application/json"})
        t.eq("oversized body is 413", r.status, 413)
        r = m.get("/api/process/x", headers={"X-Sandpit-Sandbox": "../../etc"})
        t.eq("bad sandbox header is 400", r.status, 400)
        r = m.req("PUT", "/api/process/list")
        t.eq("wrong method is 405", r.status, 405)
        t.eq("ping still answers", m.get("/api/ping").json["message"], "pong")


def test_signal_and_escalation(t):
    with Monitor() as m:
        # A process that ignores TERM: stop must escalate to KILL on the group.
        m.post("/api/process/start", {"command": "trap '' TERM; sleep 1000 & wait; sleep 1000",
                                      "processId": "stubborn"})
        time.sleep(0.3)
        pid = proc(m, "stubborn")["pid"]
        t0 = time.time()
        r = m.delete("/api/process/stubborn?signal=TERM")
        t.eq("stop is 200", r.status, 200)
        p = m.wait_for(lambda: (lambda x: x if x["status"] == "killed" else None)(proc(m, "stubborn")),
                       timeout=15)
        took = time.time() - t0
        t.check("TERM-ignoring process is killed", p and p["status"] == "killed", p)
        t.check("escalated after the stop timeout (~5 s)", 4 <= took <= 12, took)
        t.check("whole group gone", subprocess.run(["pgrep", "-g", str(pid)],
                                                   capture_output=True).returncode == 1)
        # USR1 is delivered, not a stop.
        m.post("/api/process/start", {"command": "trap 'echo got-usr1' USR1; while :; do sleep 0.1; done",
                                      "processId": "usr"})
        time.sleep(0.3)
        m.delete("/api/process/usr?signal=USR1")
        got = m.wait_for(lambda: "got-usr1" in m.get("/api/process/usr/logs").json["stdout"])
        t.check("USR1 reaches the process", got)
        t.eq("and it keeps running", proc(m, "usr")["status"], "running")
        r = m.delete("/api/process/usr?signal=BOGUS")
        t.eq("unknown signal is 400", r.status, 400)
        r = m.req("DELETE", "/api/process/kill-all")
        t.eq("kill-all is 200", r.status, 200)
        p = m.wait_for(lambda: (lambda x: x if x["status"] == "killed" else None)(proc(m, "usr")))
        t.check("kill-all stops it", p is not None)


def test_restart_backoff(t):
    with Monitor() as m:
        m.post("/api/process/start", {"command": "echo run; exit 1", "processId": "crash",
                                      "autoRestart": True, "maxRestarts": 3})
        # restarts at +1 s, +2 s, +4 s after each crash, then gives up (3 restarts)
        t0 = time.time()
        p = m.wait_for(lambda: (lambda x: x if x["status"] == "failed" else None)(proc(m, "crash")),
                       timeout=20)
        took = time.time() - t0
        t.check("gives up as failed", p is not None, proc(m, "crash"))
        t.eq("after maxRestarts restarts", p["restarts"], 3)
        t.check("with backoff 1+2+4 s", 6.5 <= took <= 12, took)
        t.eq("lastExit code", p["lastExit"]["code"], 1)
        out = m.get("/api/process/crash/logs").json["stdout"]
        t.eq("each run's output kept", out, "run\n" * 4)
        # explicit restart brings it back
        r = m.post("/api/process/crash/restart")
        t.eq("restart of a failed process is 200", r.status, 200)
        t.eq("it runs again", r.json["process"]["restarts"], 4)


def test_port_probe(t):
    with Monitor() as m:
        port = free_port()
        cmd = "sleep 1; exec python3 -m http.server %d --bind 127.0.0.1" % port
        m.post("/api/process/start", {"command": cmd, "processId": "web", "port": port,
                                      "autoRestart": True})
        p = proc(m, "web")
        t.eq("spawned is running", p["status"], "running")
        t.eq("not ready before it listens", p["ready"], False)
        p = m.wait_for(lambda: (lambda x: x if x["ready"] else None)(proc(m, "web")), timeout=15)
        t.check("ready once it answers HTTP", p is not None)
        # Freeze the server: it stops answering; the probe restarts it.
        pid = p["pid"]
        os.kill(pid, 19)  # SIGSTOP
        p = m.wait_for(lambda: (lambda x: x if x["restarts"] >= 1 and x["ready"] else None)(proc(m, "web")),
                       timeout=30)
        t.check("an unresponsive server is restarted and ready again", p is not None, proc(m, "web"))
        if p:
            t.eq("lastExit says why", p["lastExit"]["reason"], "unresponsive")


def test_process_stream(t):
    with Monitor() as m:
        m.post("/api/process/start", {"command": "for i in 1 2 3; do echo line$i; sleep 0.2; done; echo bad >&2; exit 4",
                                      "processId": "s"})
        evs = m.sse("GET", "/api/process/s/stream", timeout=20)
        types = [e["type"] for e in evs]
        t.eq("first event is process_info", types[0], "process_info")
        t.eq("last event is exit", types[-1], "exit")
        t.eq("stdout lines in order", [e["data"] for e in evs if e["type"] == "stdout"],
             ["line1\n", "line2\n", "line3\n"])
        t.eq("stderr line", [e["data"] for e in evs if e["type"] == "stderr"], ["bad\n"])
        t.eq("exit carries the real code", evs[-1]["exitCode"], 4)
        # a finished process streams its history and ends at once
        evs2 = m.sse("GET", "/api/process/s/stream", timeout=10)
        t.eq("replay of a finished process", [e["type"] for e in evs2], types)
        r = m.get("/api/process/zzz/stream")
        t.eq("unknown process stream is a JSON 404", r.status, 404)


def test_logs_api(t):
    with Monitor() as m:
        m.post("/api/process/start", {"command": "seq 1 500", "processId": "seq"})
        m.wait_for(lambda: proc(m, "seq")["status"] == "completed")
        r = m.get("/api/logs?process=seq&tail=5")
        t.eq("tail 5", [l["text"] for l in r.json["lines"]], ["496", "497", "498", "499", "500"])
        last = r.json["lastSeq"]
        r = m.get("/api/logs?process=seq&since=%d" % (last - 2))
        t.eq("since", [l["text"] for l in r.json["lines"]], ["499", "500"])
        t.eq("line fields", sorted(r.json["lines"][0].keys()),
             ["process", "run", "seq", "stream", "text", "time"])
        # follow: a new process's lines arrive as they are printed
        got = []

        def follow():
            got.extend(m.sse("GET", "/api/logs?process=f&follow=1", timeout=20,
                             until=lambda e: e.get("text") == "three"))
        th = threading.Thread(target=follow)
        th.start()
        time.sleep(0.3)
        m.post("/api/process/start", {"command": "echo one; sleep 0.3; echo two; sleep 0.3; echo three",
                                      "processId": "f"})
        th.join(15)
        t.eq("follow delivers live lines", [e["text"] for e in got], ["one", "two", "three"])
        r = m.delete("/api/logs?process=seq")
        t.eq("clear one process", r.status, 200)
        t.eq("its lines are gone", m.get("/api/logs?process=seq").json["lines"], [])
        t.check("others kept", len(m.get("/api/logs?process=f").json["lines"]) == 3)
        r = m.get("/api/logs?tail=abc")
        t.eq("bad tail is 400", r.status, 400)


def test_sandboxes_are_separate(t):
    with Monitor() as m:
        a = {"X-Sandpit-Sandbox": "alpha"}
        b = {"X-Sandpit-Sandbox": "beta"}
        m.req("POST", "/api/process/start", {"command": "echo from-a; sleep 30", "processId": "dev"}, headers=a)
        m.req("POST", "/api/process/start", {"command": "echo from-b; sleep 30", "processId": "dev"}, headers=b)
        la = m.get("/api/process/list", headers=a).json["processes"]
        t.eq("alpha sees its own process", [p["id"] for p in la], ["dev"])
        time.sleep(0.3)
        t.eq("alpha's logs", m.get("/api/process/dev/logs", headers=a).json["stdout"], "from-a\n")
        t.eq("beta's logs", m.get("/api/process/dev/logs", headers=b).json["stdout"], "from-b\n")
        t.eq("default sandbox sees nothing", m.get("/api/process/list").json["processes"], [])
        t.eq("default cannot kill alpha's", m.delete("/api/process/dev").status, 404)
        m.req("DELETE", "/api/process/kill-all", headers=a)
        pa = m.wait_for(lambda: proc(m, "dev", "alpha")["status"] == "killed")
        t.check("kill-all of alpha stops alpha", pa)
        t.eq("beta untouched", proc(m, "dev", "beta")["status"], "running")
        r = m.req("DELETE", "/api/logs", headers=a)
        t.eq("DELETE /api/logs of a sandbox is 200", r.status, 200)
        t.eq("  alpha's lines are gone", m.get("/api/process/dev/logs", headers=a).json["stdout"], "")
        t.eq("  beta's are kept", m.get("/api/process/dev/logs", headers=b).json["stdout"], "from-b\n")
        ws = os.path.join(m.workspace, "alpha")
        t.check("workspace per sandbox", os.path.isdir(ws))
        t.eq("workspace mode 0700", oct(os.stat(ws).st_mode & 0o777), oct(0o700))


def test_shutdown(t):
    with Monitor() as m:
        m.post("/api/process/start", {"command": "sleep 1000", "processId": "long"})
        pid = proc(m, "long")["pid"]
        rc = m.stop()
        t.eq("SIGTERM exits 0", rc, 0)
        time.sleep(0.2)
        alive = subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode == 0
        t.check("children stopped on shutdown", not alive)
        t.check("socket removed", not os.path.exists(m.sock))


if __name__ == "__main__":
    Suite("monitor processes").run([test_start_and_complete, test_bad_requests,
                                    test_signal_and_escalation, test_restart_backoff,
                                    test_port_probe, test_process_stream, test_logs_api,
                                    test_sandboxes_are_separate, test_shutdown])
