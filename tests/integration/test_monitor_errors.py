"""sandpit-monitor: classified errors from real tool output, de-duplication,
fatal-pattern restarts, and monitor-cli over the socket."""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

from harness import BIN, ROOT, Monitor, Suite

FIX = os.path.join(ROOT, "tests", "fixtures", "errors")


def proc(m, pid):
    return m.get("/api/process/%s" % pid).json["process"]


def run_fixture(m, pid, fixture, times=1):
    """A process that prints a fixture (a real tool output) `times` times."""
    path = os.path.join(m.tmp, pid + ".txt")
    with open(os.path.join(FIX, fixture), "rb") as src, open(path, "wb") as dst:
        dst.write(src.read())
    os.chmod(path, 0o644)
    cmd = "for i in $(seq %d); do cat %s; sleep 0.3; done" % (times, path)
    m.post("/api/process/start", {"command": cmd, "processId": pid})
    m.wait_for(lambda: proc(m, pid)["status"] == "completed", timeout=20)
    time.sleep(0.6)  # the classifier flushes an event after 250 ms idle


def fixture_named(prefix):
    return [f for f in sorted(os.listdir(FIX)) if f.startswith(prefix)][0]


def test_errors_classified_and_deduplicated(t):
    m = Monitor()
    try:
        tsc = fixture_named("017-")
        run_fixture(m, "tsc", tsc, times=3)
        errs = m.get("/api/errors").json["errors"]
        t.check("an error is recorded", len(errs) >= 1, errs)
        e = errs[-1]
        t.eq("tool", e["tool"], "typescript")
        t.eq("category", e["category"], "type")
        t.check("file and line from the output", e["file"] and e["line"], e)
        t.check("printed three times, counted three times",
                any(x["occurrences"] == 3 for x in errs), [x["occurrences"] for x in errs])
        t.check("raw output kept", all(x["raw"] for x in errs))
        benign = fixture_named("022-")
        n_before = len(errs)
        run_fixture(m, "benign", benign)
        t.eq("benign output adds no error", len(m.get("/api/errors").json["errors"]), n_before)
        st = m.get("/api/errors/stats").json["stats"]
        t.check("stats count occurrences", st["total"] >= 3 and st["byTool"].get("typescript", 0) >= 3, st)
        r = m.get("/api/errors?reset=1")
        t.check("reset=1 returns the errors", len(r.json["errors"]) == n_before)
        t.eq("  and clears them", m.get("/api/errors").json["errors"], [])
        run_fixture(m, "tsc2", tsc)
        since = int(time.time() * 1000) + 60000
        t.eq("since in the future returns nothing", m.get("/api/errors?since=%d" % since).json["errors"], [])
        t.check("since=ISO accepted", m.get("/api/errors?since=2020-01-01T00:00:00Z").status == 200)
        t.eq("bad since is 400", m.get("/api/errors?since=yesterday").status, 400)
        t.eq("DELETE /api/errors", m.delete("/api/errors").status, 200)
        t.eq("  empties the store", m.get("/api/errors").json["count"], 0)
        # errors of one sandbox are not another's
        m.req("POST", "/api/process/start", {"command": "echo \"Error: Cannot find module 'left-pad'\"", "processId": "x"},
              headers={"X-Sandpit-Sandbox": "other"})
        time.sleep(1)
        t.eq("the default sandbox does not see another's errors",
             m.get("/api/errors", headers={"X-Sandpit-Sandbox": "default"}).json["errors"], [])
        t.check("the other sandbox sees its own",
                len(m.get("/api/errors", headers={"X-Sandpit-Sandbox": "other"}).json["errors"]) == 1)
    finally:
        m.cleanup()


def test_fatal_pattern_restarts(t):
    m = Monitor()
    try:
        script = os.path.join(m.tmp, "oom.sh")
        with open(script, "w") as f:
            f.write("echo starting\necho 'FATAL ERROR: Reached heap limit Allocation failed - "
                    "JavaScript heap out of memory'\nsleep 100\n")
        os.chmod(script, 0o755)
        m.post("/api/process/start", {"command": "sh %s" % script, "processId": "oom", "autoRestart": True})
        p = m.wait_for(lambda: (lambda x: x if x["restarts"] >= 1 else None)(proc(m, "oom")), timeout=15)
        t.check("a fatal line restarts the process", p is not None, proc(m, "oom"))
        if p:
            t.eq("  lastExit names the category", p["lastExit"]["reason"], "memory")
        errs = m.get("/api/errors").json["errors"]
        t.check("  and is recorded as a memory error", any(e["category"] == "memory" for e in errs), errs)
    finally:
        m.cleanup()


def cli(m, *args, fmt="json"):
    p = subprocess.run([os.path.join(BIN, "monitor-cli"), "--socket", m.sock, "--format", fmt, *args],
                       capture_output=True, text=True, timeout=30)
    return p


def test_monitor_cli(t):
    m = Monitor()
    try:
        p = cli(m, "process", "start", "--id", "c1", "--", "sh", "-c", "echo hello-cli; exit 2")
        t.eq("process start exits 0", p.returncode, 0)
        t.eq("  prints the process as JSON", json.loads(p.stdout)["processId"], "c1")
        m.wait_for(lambda: proc(m, "c1")["status"] == "failed")
        p = cli(m, "process", "list", fmt="table")
        t.check("process list table has a header and the row",
                p.stdout.splitlines()[0].startswith("ID") and "c1" in p.stdout and "failed" in p.stdout, p.stdout)
        p = cli(m, "process", "status", "c1")
        t.eq("process status JSON", json.loads(p.stdout)["process"]["exitCode"], 2)
        p = cli(m, "logs", "get", "--process", "c1", fmt="raw")
        t.eq("logs get raw", p.stdout, "hello-cli\n")
        p = cli(m, "logs", "get", "--process", "c1", "--tail", "1")
        t.eq("logs get JSON", json.loads(p.stdout)["lines"][0]["text"], "hello-cli")
        p = cli(m, "process", "status", "nope")
        t.eq("unknown process exits 1", p.returncode, 1)
        t.check("  with the server's message on stderr", "not found" in p.stderr, p.stderr)
        p = cli(m, "errors", "list", fmt="table")
        t.check("errors list table", p.returncode == 0 and "no errors" in p.stdout, p.stdout)
        p = cli(m, "errors", "stats")
        t.eq("errors stats JSON", json.loads(p.stdout)["stats"]["total"], 0)
        # options become the request's query
        cli(m, "process", "start", "--id", "e1", "--", "sh", "-c",
            "echo \"Error: Cannot find module 'left-pad'\"")
        m.wait_for(lambda: m.get("/api/errors").json["count"] == 1)
        future = str(int(time.time() * 1000) + 60000)
        t.eq("errors list --since a future time lists none",
             json.loads(cli(m, "errors", "list", "--since", future).stdout)["count"], 0)
        t.eq("errors list --reset lists the error",
             json.loads(cli(m, "errors", "list", "--reset").stdout)["count"], 1)
        t.eq("  and clears it", json.loads(cli(m, "errors", "list").stdout)["count"], 0)
        p = cli(m, "logs", "clear", "--process", "c1")
        t.eq("logs clear --process exits 0", p.returncode, 0)
        t.eq("  its lines are gone", json.loads(cli(m, "logs", "get", "--process", "c1").stdout)["lines"], [])
        t.check("  another's are kept",
                len(json.loads(cli(m, "logs", "get", "--process", "e1").stdout)["lines"]) == 1)
        p = cli(m, "status", fmt="table")
        t.check("status table", p.returncode == 0 and "processes:" in p.stdout, p.stdout)
        p = cli(m, "process", "start", "--id", "c2", "--", "sleep", "100")
        p = cli(m, "process", "stop", "c2", "--signal", "KILL")
        t.eq("process stop", p.returncode, 0)
        t.check("  stops it", m.wait_for(lambda: proc(m, "c2")["status"] == "killed"))
        p = cli(m, "bogus")
        t.eq("unknown command exits 2", p.returncode, 2)
        p = subprocess.run([os.path.join(BIN, "monitor-cli"), "--socket", "/nonexistent.sock", "ping"],
                           capture_output=True, text=True)
        t.eq("unreachable monitor exits 3", p.returncode, 3)
        p = subprocess.run([os.path.join(BIN, "monitor-cli"), "--help"], capture_output=True, text=True)
        t.check("--help", p.returncode == 0 and "process start" in p.stdout)
        # follow prints lines as they come
        f = subprocess.Popen([os.path.join(BIN, "monitor-cli"), "--socket", m.sock, "--format", "raw",
                              "logs", "get", "--follow", "--process", "c3"], stdout=subprocess.PIPE, text=True)
        time.sleep(0.3)
        cli(m, "process", "start", "--id", "c3", "--", "sh", "-c", "echo first; sleep 0.5; echo second")
        lines = [f.stdout.readline().strip(), f.stdout.readline().strip()]
        f.kill()
        f.wait()
        t.eq("logs --follow streams", lines, ["first", "second"])
    finally:
        m.cleanup()


def run_cli(*args):
    return subprocess.run([os.path.join(BIN, "monitor-cli"), *args], capture_output=True, text=True,
                          timeout=30)


def test_monitor_cli_line(t):
    m = Monitor()
    try:
        p = run_cli("errors", "list", "--format", "json", "--socket", m.sock)
        t.eq("global options after the command", (p.returncode, p.stderr), (0, ""))
        t.eq("  are applied", json.loads(p.stdout)["errors"], [])
        p = run_cli("errors", "--socket", m.sock, "--format", "table", "list")
        t.check("  and between its two words", p.returncode == 0 and "no errors" in p.stdout,
                (p.returncode, p.stdout, p.stderr))
        p = run_cli("--socket", m.sock, "process", "start", "--port", "0", "--", "true")
        t.eq("a bad option value is a usage error", (p.returncode, p.stderr),
             (2, "monitor-cli: --port must be 1-65535\n"))
    finally:
        m.cleanup()
    p = run_cli("bogus")
    t.eq("unknown command exits 2", p.returncode, 2)
    t.check("  naming it and the commands", "'bogus'" in p.stderr and "process start" in p.stderr
            and "errors list" in p.stderr and "ping" in p.stderr, p.stderr)
    t.eq("  in one line", len(p.stderr.splitlines()), 1)
    p = run_cli("process", "bogus")
    t.check("unknown verb of a noun", p.returncode == 2 and "'process bogus'" in p.stderr
            and "process list" in p.stderr, (p.returncode, p.stderr))
    # a socket file that nothing listens on: the monitor is not running
    tmp = tempfile.mkdtemp(prefix="sp-cli-")
    try:
        sock = os.path.join(tmp, "monitor.sock")
        s = socket.socket(socket.AF_UNIX)
        s.bind(sock)
        s.close()
        p = run_cli("--socket", sock, "process", "list")
        t.eq("a monitor that is not running exits 3", p.returncode, 3)
        t.eq("  and says so once", p.stderr,
             "monitor-cli: cannot connect to %s: Connection refused\n" % sock)
        t.eq("  with nothing on stdout", p.stdout, "")
    finally:
        shutil.rmtree(tmp)
    p = run_cli("--help")
    t.check("--help lists every command and the exit status",
            p.returncode == 0 and p.stderr == "" and "Exit status" in p.stdout and
            all(c in p.stdout for c in ("process stop", "errors stats", "logs clear", "status")),
            p.stdout)
    for args, opt in ((["process", "start", "--help"], "--auto-restart"),
                      (["errors", "list", "--help"], "--since"),
                      (["--help", "logs", "get"], "--follow")):
        p = run_cli(*args)
        t.check("%s shows the command's options" % " ".join(args),
                p.returncode == 0 and opt in p.stdout and "Exit status" in p.stdout, p.stdout)


if __name__ == "__main__":
    Suite("monitor errors and monitor-cli").run([test_errors_classified_and_deduplicated,
                                                 test_fatal_pattern_restarts, test_monitor_cli,
                                                 test_monitor_cli_line])
