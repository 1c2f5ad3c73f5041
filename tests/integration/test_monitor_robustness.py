"""sandpit-monitor: crash safety of the log store, hostile process output."""
import os
import sqlite3
import subprocess
import statistics
import threading
import time

from harness import BIN, Monitor, Suite, rss_kb


def proc(m, pid):
    return m.get("/api/process/%s" % pid).json["process"]


def test_kill9_keeps_committed_lines(t):
    with Monitor(extra_args=["--log-max-lines", "100000000", "--log-max-bytes", "1000000000",
                             "--log-max-total", "2000000000"]) as m:
        m.post("/api/process/start", {"command": "seq 1 100000000", "processId": "flood"})
        time.sleep(1.5)
        r = m.get("/api/logs?process=flood&tail=1")
        last = r.json["lines"][-1]
        n = int(last["text"])
        t.check("flood is being stored", n > 1000, n)
        m.kill9()
        db = os.path.join(m.data, "monitor.db")
        c = sqlite3.connect(db)
        t.eq("integrity_check after kill -9", c.execute("PRAGMA integrity_check").fetchone()[0], "ok")
        c.close()
        m.start()
        texts = []
        since = 0
        while len(texts) < n + 1:
            r = m.get("/api/logs?process=flood&limit=100000&since=%d" % since)
            if not r.json["lines"]:
                break
            texts += [l["text"] for l in r.json["lines"]]
            since = r.json["lastSeq"]
        have = len(texts)
        t.check("every line committed before the kill is there (%d >= %d)" % (have, n), have >= n)
        t.check("in order, none missing", texts[:n] == [str(i) for i in range(1, n + 1)],
                texts[:5])
        st = m.get("/api/status").json
        t.check("status counts the lines", st["database"]["lines"] >= n, st)


def pings_during(m, seconds):
    lat = []
    end = time.time() + seconds
    while time.time() < end:
        t0 = time.time()
        r = m.get("/api/ping", timeout=5)
        lat.append((time.time() - t0) * 1000)
        if r.status != 200:
            lat.append(1e9)
        time.sleep(0.02)
    return lat


def report(t, what, lat):
    lat = sorted(lat)
    p50 = statistics.median(lat)
    print("  figure: %s: ping p50 %.1f ms, max %.1f ms over %d pings (aim: under 50 ms)" %
          (what, p50, lat[-1], len(lat)))
    t.check("%s: every ping answered within 1 s" % what, lat[-1] < 1000, lat[-1])


def test_hostile_output(t):
    with Monitor() as m:
        pid = m.proc.pid
        base = rss_kb(pid)
        # 1 GiB without a newline
        m.post("/api/process/start", {"command": "head -c 1073741824 /dev/zero | tr '\\0' a",
                                      "processId": "nonl"})
        lat = pings_during(m, 1.0)
        done = m.wait_for(lambda: proc(m, "nonl")["status"] == "completed", timeout=120)
        t.check("1 GiB without newlines is consumed", done, proc(m, "nonl"))
        report(t, "1 GiB no newline", lat)
        grown = rss_kb(pid) - base
        t.check("memory stays bounded (grew %d KiB)" % grown, grown < 64 * 1024)
        lines = m.get("/api/logs?process=nonl").json["lines"]
        t.eq("stored as one cut line", len(lines), 1)
        t.check("  flagged truncated", lines[0].get("truncated") is True, lines[0].keys())
        t.eq("  of 64 KiB", len(lines[0]["text"]), 65536)

        # invalid UTF-8 and NUL bytes
        m.post("/api/process/start", {"command": "printf 'ok\\000nul\\377\\376bad\\n'",
                                      "processId": "bin"})
        m.wait_for(lambda: proc(m, "bin")["status"] == "completed")
        r = m.get("/api/process/bin/logs")
        t.eq("logs stay valid JSON", r.status, 200)
        t.eq("bytes shown with replacement characters", r.json["stdout"],
             "ok\ufffdnul\ufffd\ufffdbad\n")

        # 100k-character lines
        m.post("/api/process/start", {"command": "python3 -c \"print(('x'*100000+'\\n')*20, end='')\"",
                                      "processId": "long"})
        m.wait_for(lambda: proc(m, "long")["status"] == "completed")
        lines = m.get("/api/logs?process=long").json["lines"]
        t.eq("20 long lines stored", len(lines), 20)
        t.check("each cut to 64 KiB", all(len(l["text"]) == 65536 for l in lines))

        # a flood of short lines
        m.post("/api/process/start", {"command": "yes hello | head -n 3000000", "processId": "yes"})
        lat = pings_during(m, 1.5)
        report(t, "line flood", lat)
        m.wait_for(lambda: proc(m, "yes")["status"] == "completed", timeout=120)
        m.wait_for(lambda: m.get("/api/status").json["database"]["pendingLines"] == 0)
        st = m.get("/api/status").json["database"]
        t.check("all 3M lines counted (stored or rotated)",
                st["lines"] + st["rotatedLines"] >= 3000000, st)
        t.check("rotation keeps the process within its budget", st["lines"] <= 200000, st)
        t.eq("nothing dropped", st["droppedLines"], 0)
        t.check("monitor still healthy", m.get("/api/ping").status == 200)
        print("  figure: monitor RSS after all this: %d KiB (start %d KiB)" % (rss_kb(pid), base))


def test_one_monitor_per_data_dir(t):
    with Monitor() as m:
        other = os.path.join(m.tmp, "other")
        os.makedirs(os.path.join(other, "workspace"))
        p = subprocess.run([os.path.join(BIN, "sandpit-monitor"), "--socket",
                            os.path.join(other, "monitor.sock"), "--data", m.data,
                            "--workspace", os.path.join(other, "workspace")],
                           capture_output=True, text=True, timeout=20)
        t.eq("a second monitor on the same data directory exits 1", p.returncode, 1)
        t.check("  naming the directory and the pid that holds it",
                m.data in p.stderr and "pid %d" % m.proc.pid in p.stderr, p.stderr)
        t.check("  and it never served", not os.path.exists(os.path.join(other, "monitor.sock")))
        t.eq("the first still answers", m.get("/api/ping").status, 200)
        m.kill9()
        m.start()
        t.eq("once the first is gone (kill -9), a new one starts on it",
             m.get("/api/ping").status, 200)


if __name__ == "__main__":
    Suite("monitor robustness").run([test_kill9_keeps_committed_lines, test_hostile_output,
                                    test_one_monitor_per_data_dir])
