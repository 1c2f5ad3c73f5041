"""sandpitd benchmarks (issues 5, 6 and 7), driven from bench/run.

    manager-exec    exec round trip of `true` through sandpitd, local and Docker
                    backends, beside the instance's monitor reached directly and
                    `docker exec CONTAINER true` of the same container
    cold-start      a fresh sandpitd's first exec result (the request starts the
                    instance), local and Docker, beside `docker run --rm`
    concurrency     64 clients x 200 execs on distinct sandboxes, 4 instances
    manager-memory  sandpitd's VmRSS idle and with 10,000 sandboxes known
    preview         wrk through a preview URL to nginx inside a sandbox, beside
                    nginx on the host proxying to the same upstream
    docker-images   bench/docker_images.sh (a colleague's), its output as is

Every sandpitd here runs from a fresh, short data directory under /tmp, on a
free loopback port; its instances are stopped afterwards (local: the pid in
instance.id, checked against its start time; Docker: the containers labelled
with that data directory).  Traffic stays on loopback and unix sockets.

bench/run sets OUT (its printer), BLOCK (its table printer) and BENCH_BIN."""

import datetime
import glob
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUTDIR = os.path.join(HERE, "out")

OUT = print
BLOCK = None
BENCH_BIN = os.path.join(OUTDIR, "bench")

sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from harness import free_port, local_instance_pids, stop_process, term_then_kill  # noqa: E402

TOKEN = "bench-token-0123456789"
DOCKER_IMAGE = "sandpit/sandbox:latest"

AIMS = {
    "docker_exec_speedup": 20.0,  # sandpitd exec at least 20x faster than docker exec (issue 5)
    "cold_local_ms": 50.0,        # local cold start to first exec result (issue 5)
    "cold_docker_ratio": 1.3,     # at most 1.3x `docker run --rm IMAGE true` (issue 5)
    "preview_ratio": 0.7,         # at least 0.7 of nginx's throughput (issue 7)
}

NAMES = ("manager-exec", "cold-start", "concurrency", "manager-memory", "preview",
         "docker-images")
# Run only when named in --only: docker_images.sh (re)builds and retags the
# engine's sandpit/ images, which other work on the machine uses, and when the
# base image there carries another recipe it runs debootstrap against the apt
# mirror: traffic beyond loopback, and minutes.
ONLY_WHEN_ASKED = ("docker-images",)


# ---------------------------------------------------------------- helpers


def fmt_ms(us):
    return "%.2f ms" % (us / 1000.0)


def fmt_int(n):
    return "{:,}".format(int(round(n)))


def fmt_kb(kb):
    return "%.1f MB" % (kb / 1024.0)


def pct(values, p):
    """Nearest-rank percentile, as bench.c computes it."""
    v = sorted(values)
    if not v:
        return float("nan")
    k = int(p / 100.0 * len(v) + 0.999999)
    return v[min(max(k, 1), len(v)) - 1]


def sandbox_uid_census():
    """Processes per sandbox uid (>= 200000) on the whole machine, busiest
    first.  RLIMIT_NPROC counts per uid machine-wide, and every instance
    numbers its sandboxes' uids from 200000: a fork bomb in any instance here
    (a test's, say) makes fork fail with EAGAIN for the same uid elsewhere."""
    n = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                uid = os.stat("/proc/" + d).st_uid
            except OSError:
                continue
            if uid >= 200000:
                n[uid] = n.get(uid, 0) + 1
    top = sorted(n.items(), key=lambda kv: -kv[1])[:3]
    return ", ".join("uid %d: %d processes" % kv for kv in top) or "no sandbox-uid processes"


def eagain_hint(text):
    if "Resource temporarily unavailable" in text:
        return " [fork failed with EAGAIN; now on this machine: %s; the per-sandbox " \
               "process limit (2048) is per uid, machine-wide]" % sandbox_uid_census()
    return ""


def run_bench(argv, env_raw=False):
    """bench/out/bench ARGV...: its "key value" lines as a dict."""
    env = dict(os.environ)
    if env_raw:
        env["BENCH_RAW"] = "1"
    r = subprocess.run([BENCH_BIN, *argv], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError("bench %s failed (%d): %s%s" % (argv[0], r.returncode,
                                                           r.stderr[-800:], eagain_hint(r.stderr)))
    res = {"_stderr": r.stderr}
    for line in r.stdout.splitlines():
        k, _, v = line.partition(" ")
        res[k] = v
    return res


def raw(res, name):
    return [float(x) for x in res[name + ".raw_us"].split()]


def proc_status(pid):
    res = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem", "Threads"):
                res[k] = int(v.split()[0])
    return res


def proc_stat(pid):
    """(utime+stime in seconds, start time in ticks, ppid) of a process."""
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    hz = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / hz, int(fields[19]), int(fields[1])


def cpu_of(pids):
    t = 0.0
    for p in pids:
        try:
            t += proc_stat(p)[0]
        except (OSError, ValueError, IndexError):
            pass
    return t


def cpu_throttle(pid):
    """(periods, throttled periods, throttled seconds) of PID's cpu cgroup
    (v2 or v1), or None when it has no CPU bandwidth stats."""
    try:
        with open("/proc/%d/cgroup" % pid) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    paths = []
    for line in lines:
        _, ctrls, path = line.split(":", 2)
        if ctrls == "":
            paths.append("/sys/fs/cgroup" + path)
        elif "cpu" in ctrls.split(","):
            paths.insert(0, "/sys/fs/cgroup/%s%s" % (ctrls, path))
    for p in paths:
        try:
            with open(os.path.join(p, "cpu.stat")) as f:
                st = dict(l.split() for l in f if len(l.split()) == 2)
        except OSError:
            continue
        if "nr_throttled" in st:
            t = int(st["throttled_usec"]) / 1e6 if "throttled_usec" in st else \
                int(st.get("throttled_time", 0)) / 1e9
            return int(st["nr_periods"]), int(st["nr_throttled"]), t
    return None


def children_of(pid):
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if proc_stat(int(d))[2] == pid:
                    kids.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return kids


def descendants(pid):
    """Every process below PID (one pass over /proc)."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                kids.setdefault(proc_stat(int(d))[2], []).append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    res, todo = [], [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            res.append(k)
            todo.append(k)
    return res


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


def pids_with_cmdline(fragment):
    found = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    if fragment.encode() in f.read():
                        found.append(int(d))
            except OSError:
                pass
    return found


def loadavg():
    return " ".join("%.1f" % x for x in os.getloadavg())


# ---------------------------------------------------------------- docker


def docker_unavailable(image=DOCKER_IMAGE):
    """None when an engine answers and has IMAGE; else the reason."""
    if not shutil.which("docker"):
        return "no docker client on the PATH (scripts/docker-up installs docker.io)"
    try:
        r = subprocess.run(["docker", "version", "-f", "{{.Server.Version}}"],
                           capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "the engine did not answer `docker version` within 20 s"
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["?"])[-1]
        return "no engine answering (scripts/docker-up starts one): %s" % last[:160]
    r = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", image],
                       capture_output=True, text=True, timeout=20)
    if r.returncode != 0:
        return "no image %s on the engine (make images builds it)" % image
    return None


def docker_engine_version():
    r = subprocess.run(["docker", "version", "-f", "{{.Server.Version}}"],
                       capture_output=True, text=True, timeout=20)
    return r.stdout.strip() or "?"


# ---------------------------------------------------------------- sandpitd


LOCAL_POOL = 'class_name = "Sandbox"\nbackend = "local"\nmax_instances = %d\n'
DOCKER_POOL = ('class_name = "Sandbox"\nbackend = "docker"\nimage = "%s"\nmax_instances = %d\n')


class Sandpitd:
    """sandpitd on a free loopback port with a fresh data directory."""

    def __init__(self, binary, pools, keep=False, log_level="warn"):
        # short: instance sockets live below it and must fit in 108 bytes
        self.tmp = tempfile.mkdtemp(prefix="spb-", dir="/tmp")
        os.chmod(self.tmp, 0o755)
        self.keep = keep
        self.port = free_port()
        self.addr = "127.0.0.1:%d" % self.port
        self.data = os.path.join(self.tmp, "d")
        self.config = os.path.join(self.tmp, "sandpit.toml")
        text = 'listen = "%s"\napi_token = "%s"\ndata_dir = "%s"\nlog_level = "%s"\n' % (
            self.addr, TOKEN, self.data, log_level)
        for p in pools:
            text += "\n[[containers]]\n" + p
        with open(self.config, "w") as f:
            f.write(text)
        self.logpath = os.path.join(self.tmp, "sandpitd.log")
        self.logf = open(self.logpath, "ab")
        env = dict(os.environ)
        env.pop("SANDPIT_API_TOKEN", None)
        env.pop("MAX_SANDBOX_INSTANCES", None)
        env.pop("SANDBOX_INSTANCE_TYPE", None)
        env.pop("SANDPIT_LOG_LEVEL", None)
        self.proc = subprocess.Popen([binary, "--config", self.config], stdout=self.logf,
                                     stderr=self.logf, env=env)
        self.pid = self.proc.pid
        self._conn = None
        deadline = time.time() + 20
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("sandpitd exited with %d: %s" % (self.proc.returncode,
                                                                    self.logtext()[-1500:]))
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                c.request("GET", "/health")
                ok = c.getresponse().status == 200
                c.close()
                if ok:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError("sandpitd did not answer: " + self.logtext()[-1500:])
            time.sleep(0.01)

    def logtext(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def req(self, method, path, body=None, headers=None, timeout=120):
        """One request on a kept-alive connection: (status, json or text)."""
        if self._conn is None:
            self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        h = {"Authorization": "Bearer " + TOKEN}
        h.update(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        try:
            self._conn.request(method, path, body=data, headers=h)
            r = self._conn.getresponse()
            rawb = r.read()
        except (http.client.HTTPException, OSError):
            self._conn.close()
            self._conn = None
            raise
        if r.getheader("Connection", "").lower() == "close":
            self._conn.close()
            self._conn = None
        try:
            return r.status, json.loads(rawb)
        except ValueError:
            return r.status, rawb.decode("utf-8", "replace")

    def exec(self, sandbox, command="true"):
        st, j = self.req("POST", "/v1/sandboxes/%s/api/execute" % sandbox, {"command": command})
        if st != 200 or not isinstance(j, dict) or j.get("exitCode") != 0:
            raise RuntimeError("exec %r in %s: %s %s%s" % (command, sandbox, st, str(j)[:300],
                                                          eagain_hint(str(j))))
        return j

    def instance_dir(self, sandbox):
        st, j = self.req("GET", "/v1/sandboxes/%s" % sandbox)
        if st != 200:
            raise RuntimeError("GET /v1/sandboxes/%s: %s %s" % (sandbox, st, str(j)[:200]))
        return os.path.join(self.data, "instances", "%s-%d" % (j["class"], j["slot"])), j

    def monitor_sock(self, sandbox):
        return os.path.join(self.instance_dir(sandbox)[0], "run", "monitor.sock")

    def backend_id(self, sandbox):
        return self.instance_dir(sandbox)[1]["instance"]["backendId"]

    def instance_pids(self):
        return local_instance_pids(self.data)

    def docker_containers(self):
        """Containers this sandpitd made: label sandpit.data_root under our data dir."""
        if not shutil.which("docker"):
            return []
        r = subprocess.run(["docker", "ps", "-a", "--filter", "label=sandpit.data_root",
                            "--format", '{{.ID}} {{.Label "sandpit.data_root"}}'],
                           capture_output=True, text=True, timeout=60)
        res = []
        for line in r.stdout.splitlines():
            cid, _, root = line.partition(" ")
            if root == self.data or root.startswith(self.data + "/") or \
                    root.startswith(self.tmp + "/"):
                res.append(cid)
        return res

    def stop(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        stop_process(self.proc)

    def stop_instances(self, docker=False):
        term_then_kill(self.instance_pids())
        if docker:
            ids = self.docker_containers()
            if ids:
                subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, timeout=120)

    def cleanup(self, docker=False):
        self.stop()
        self.stop_instances(docker)
        self.logf.close()
        if not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)


PAD_NOTE = ("the first %d sandboxes of each instance are padding (one `true` each), so the "
            "measured ones get uids past 200000..200%03d: every instance numbers its sandboxes' "
            "uids from 200000, a fork bomb anywhere on the machine (the test suites run one) "
            "exhausts that uid's process limit machine-wide, and a monitor stopping outside a "
            "pid namespace (tests, standalone) kills that uid's processes in every instance")


def pad_uids(sp, slots, k):
    """Use K sandboxes in each of SLOTS first, so that the sandboxes measured
    afterwards get uids 200000+K and up in their instances."""
    need = {slot: k for slot in range(slots)}
    i = 0
    while any(need.values()):
        sid = "pad-%03d" % i
        i += 1
        st, j = sp.req("POST", "/v1/sandboxes", {"id": sid})
        if st not in (200, 201):
            raise RuntimeError("POST /v1/sandboxes: %s %s" % (st, str(j)[:200]))
        if need.get(j["slot"], 0) > 0:
            sp.exec(sid)
            need[j["slot"]] -= 1
        elif i > 100 * slots * k + 100:
            raise RuntimeError("cannot find padding sandboxes for every slot")


class Managed:
    """with Managed(...) as sp: a Sandpitd cleaned up however the block ends."""

    def __init__(self, args, pools, docker=False, log_level="warn"):
        self.args, self.pools, self.docker, self.log_level = args, pools, docker, log_level

    def __enter__(self):
        self.sp = Sandpitd(self.args.sandpitd, self.pools, self.args.keep, self.log_level)
        return self.sp

    def __exit__(self, *exc):
        self.sp.cleanup(self.docker)
        return False


# ---------------------------------------------------------------- manager-exec


def exec_rows(res, label, key):
    return [(label + "  p50", fmt_ms(pct(res[key], 50)), None, None),
            ("  p99", fmt_ms(pct(res[key], 99)), None, None)]


def bench_manager_exec(args):
    rows, notes = [], []
    sid = "bench-exec"
    # local backend: through sandpitd, interleaved with the monitor straight
    with Managed(args, [LOCAL_POOL % 1]) as sp:
        pad_uids(sp, 1, args.pad_uids)
        sp.exec(sid)
        sock = sp.monitor_sock(sid)
        ipid = sp.instance_pids()[0]
        quota = quota_txt(ipid)
        cpu0, th0 = proc_stat(sp.pid)[0], cpu_throttle(ipid)
        r = run_bench(["mexec", sp.addr, TOKEN, sid, str(args.mexec_iter),
                       str(args.mexec_warmup), sock], env_raw=True)
        cpu1, th1 = proc_stat(sp.pid)[0], cpu_throttle(ipid)
    loc = {"sp": raw(r, "mexec.sandpitd"), "mon": raw(r, "mexec.monitor")}
    over = pct(loc["sp"], 50) - pct(loc["mon"], 50)
    rows += [("local: POST /v1/sandboxes/ID/api/execute true  p50", fmt_ms(pct(loc["sp"], 50)),
              fmt_ms(pct(loc["mon"], 50)) + " (monitor direct)", None),
             ("  p99", fmt_ms(pct(loc["sp"], 99)), fmt_ms(pct(loc["mon"], 99)), None),
             ("  sandpitd's overhead at p50", fmt_ms(over), None, None),
             ("  sandpitd CPU per forwarded exec", fmt_ms(1e6 * (cpu1 - cpu0) /
                                                          (args.mexec_iter + args.mexec_warmup)),
              None, None)]
    notes.append("local: %d iterations after %d warm-up on one keep-alive TCP connection, each "
                 "followed by the same request straight to the instance's monitor socket "
                 "(X-Sandpit-Sandbox: %s); reconnects %s" % (
                     args.mexec_iter, args.mexec_warmup, sid, r["mexec.reconnects"]))
    if th0 and th1:
        notes.append("local: the instance (instance_type standard, CPU quota %s vCPU) was "
                     "throttled in %d of %d CFS periods (%.2f s) during the loop: the p99s are "
                     "those stalls, not sandpitd" % (quota, th1[1] - th0[1], th1[0] - th0[0],
                                                      th1[2] - th0[2]))

    why = docker_unavailable()
    state = {"local_p50_us": pct(loc["sp"], 50), "local_p99_us": pct(loc["sp"], 99)}
    if why:
        rows.append(("docker", "not available", None, None))
        notes.append("docker: not available (%s)" % why)
    else:
        with Managed(args, [DOCKER_POOL % (DOCKER_IMAGE, 1)], docker=True) as sp:
            pad_uids(sp, 1, args.pad_uids)
            sp.exec(sid)
            sock = sp.monitor_sock(sid)
            cid = sp.backend_id(sid)
            cpid = subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", cid],
                                  capture_output=True, text=True).stdout.strip()
            cpid = int(cpid) if cpid.isdigit() else None
            th0 = cpu_throttle(cpid) if cpid else None
            d = {"sp": [], "mon": [], "dx": []}
            rounds = args.docker_rounds
            for i in range(rounds):
                r = run_bench(["mexec", sp.addr, TOKEN, sid, str(args.mexec_iter // rounds),
                               str(20 if i == 0 else 5), sock], env_raw=True)
                d["sp"] += raw(r, "mexec.sandpitd")
                d["mon"] += raw(r, "mexec.monitor")
                x = run_bench(["spawnloop", str(args.docker_exec_iter // rounds),
                               "1" if i == 0 else "0", "docker", "exec", cid, "true"],
                              env_raw=True)
                d["dx"] += raw(x, "spawn")
            th1 = cpu_throttle(cpid) if cpid else None
        sp50, dx50 = pct(d["sp"], 50), pct(d["dx"], 50)
        speed = dx50 / sp50
        rows += [("docker: POST /v1/sandboxes/ID/api/execute true  p50", fmt_ms(sp50),
                  fmt_ms(dx50) + " (docker exec)", None),
                 ("  p99", fmt_ms(pct(d["sp"], 99)), fmt_ms(pct(d["dx"], 99)), None),
                 ("  monitor direct (bind-mounted socket)  p50 / p99",
                  "%s / %s" % (fmt_ms(pct(d["mon"], 50)), fmt_ms(pct(d["mon"], 99))), None, None),
                 ("  speed-up over `docker exec CONTAINER true` at p50", "%.1fx" % speed,
                  None, ">= %.0fx: %s" % (AIMS["docker_exec_speedup"],
                                          "met" if speed >= AIMS["docker_exec_speedup"]
                                          else "MISSED")),
                 ("  speed-up at p99", "%.1fx" % (pct(d["dx"], 99) / pct(d["sp"], 99)), None,
                  None)]
        notes.append("docker (engine %s, image %s): %d rounds, each %d execs through sandpitd "
                     "(each followed by one straight to the monitor) then %d `docker exec %s true`"
                     " (posix_spawn of the docker CLI, wait); %d and %d samples in all" % (
                         docker_engine_version(), DOCKER_IMAGE, rounds, args.mexec_iter // rounds,
                         args.docker_exec_iter // rounds, cid[:12], len(d["sp"]), len(d["dx"])))
        if th0 and th1:
            notes.append("docker: the container's cgroup was throttled in %d of %d CFS periods "
                         "(%.2f s) over the rounds" % (th1[1] - th0[1], th1[0] - th0[0],
                                                       th1[2] - th0[2]))
        state.update(docker_p50_us=sp50, docker_p99_us=pct(d["sp"], 99), docker_exec_p50_us=dx50,
                     docker_exec_p99_us=pct(d["dx"], 99), speedup=speed)
    notes.append(PAD_NOTE % (args.pad_uids, args.pad_uids - 1))
    BLOCK("manager-exec: exec round trip through sandpitd on a warm instance", rows, notes)
    return state


# ---------------------------------------------------------------- cold start


def log_times(path, prog_msgs):
    """{msg: wall-clock seconds} of the first JSON log line of each msg."""
    res = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    j = json.loads(line)
                except ValueError:
                    continue
                if j.get("msg") in prog_msgs and j["msg"] not in res:
                    ts = datetime.datetime.strptime(j["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")
                    res[j["msg"]] = ts.replace(tzinfo=datetime.timezone.utc).timestamp()
    except OSError:
        pass
    return res


def cold_phases(sp, w0, w1):
    """Where a cold start's time went, from the logs (ms resolution):
    request -> instance launched (sandpitd) -> monitor ready (the monitor's
    log, local only) -> instance ready (sandpitd's ping answered) -> answer."""
    a = log_times(sp.logpath, ("instance launched", "instance ready"))
    b = {}
    for d in glob.glob(os.path.join(sp.data, "instances", "*", "monitor.log")):
        b = log_times(d, ("monitor ready", "sandbox ready"))
    ph = {}
    if "instance launched" in a:
        ph["launch"] = a["instance launched"] - w0
        if "monitor ready" in b:
            ph["monitor"] = b["monitor ready"] - a["instance launched"]
            if "instance ready" in a:
                ph["detect"] = a["instance ready"] - b["monitor ready"]
        if "instance ready" in a:
            ph["exec"] = w1 - a["instance ready"]
    return ph


def phases_note(phs):
    keys = [("launch", "request to 'instance launched' (backend start)"),
            ("monitor", "to the monitor's 'monitor ready'"),
            ("detect", "to sandpitd's 'instance ready' (its ping answered)"),
            ("exec", "to the exec's answer")]
    parts = []
    for k, label in keys:
        v = [p[k] for p in phs if k in p]
        if v:
            parts.append("%s %.0f ms" % (label, 1000 * statistics.median(v)))
    return "; ".join(parts)


def time_first_exec(sp, sid):
    """A new connection, the first request of sandbox SID: seconds to its
    answer (and the wall-clock start and end, for the logs)."""
    body = json.dumps({"command": "true"}).encode()
    w0 = time.time()
    t0 = time.perf_counter()
    c = http.client.HTTPConnection("127.0.0.1", sp.port, timeout=120)
    c.request("POST", "/v1/sandboxes/%s/api/execute" % sid, body=body,
              headers={"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    t1 = time.perf_counter()
    w1 = time.time()
    c.close()
    if r.status != 200 or b'"exitCode":0' not in data:
        raise RuntimeError("first exec: %d %s%s" % (r.status, data[:300],
                                                     eagain_hint(data.decode("utf-8", "replace"))))
    sp.cold = cold_phases(sp, w0, w1)
    return t1 - t0


def instance_bwrap_true(sp):
    """The local backend's own bwrap command line (from the running instance's
    outer bwrap, the parent of the instance's pid 1), with /usr/bin/true in
    place of the monitor: posix_spawn+wait of it, median of 10 (us), or None."""
    try:
        pid = sp.instance_pids()[0]
        ppid = proc_stat(pid)[2]
        with open("/proc/%d/cmdline" % ppid, "rb") as f:
            argv = [a.decode() for a in f.read().split(b"\0") if a]
        if not argv or os.path.basename(argv[0]) != "bwrap" or "--" not in argv:
            return None
        argv = argv[:argv.index("--")]
        if "--info-fd" in argv:
            k = argv.index("--info-fd")
            del argv[k:k + 2]
        r = run_bench(["spawnloop", "10", "2", *argv, "/usr/bin/true"])
        return float(r["spawn.p50_us"]), len([a for a in argv if "bind" in a])
    except (OSError, IndexError, ValueError, RuntimeError):
        return None


def bwrap_floor_argv():
    return ["bwrap", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net",
            "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin",
            "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--as-pid-1",
            "/usr/bin/true"]


def monitor_start_ms(monitor):
    """A bare sandpit-monitor (no namespaces, fresh data): spawn to its first
    answer to GET /api/ping, polled every 0.5 ms.  Safe in the host's pid
    namespace: with no sandbox used (ping creates none, the workspace is
    empty) it has no sandbox user to kill(-1) as when it stops."""
    d = tempfile.mkdtemp(prefix="spb-mon-", dir="/tmp")
    os.chmod(d, 0o755)
    os.makedirs(os.path.join(d, "ws"))
    sock = os.path.join(d, "m.sock")
    t0 = time.perf_counter()
    p = subprocess.Popen([monitor, "--socket", sock, "--data", os.path.join(d, "data"),
                          "--workspace", os.path.join(d, "ws")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(sock)
                s.sendall(b"GET /api/ping HTTP/1.1\r\nHost: m\r\n\r\n")
                r = s.recv(64)
                s.close()
                if r.startswith(b"HTTP/1.1 200"):
                    break
            except OSError:
                pass
            if p.poll() is not None or time.perf_counter() - t0 > 10:
                raise RuntimeError("monitor did not start")
            time.sleep(0.0005)
        return 1000 * (time.perf_counter() - t0)
    finally:
        p.terminate()
        p.wait()
        shutil.rmtree(d, ignore_errors=True)


def ms_list(v):
    return " / ".join("%.0f" % (1000 * x) for x in v)


def bench_cold_start(args):
    rows, notes = [], []
    n = args.cold_runs
    state = {}
    loc, phs = [], []
    inst_bwrap = None
    for i in range(n):
        with Managed(args, [LOCAL_POOL % 1], log_level="info") as sp:
            loc.append(time_first_exec(sp, "cold-%d" % i))
            phs.append(sp.cold)
            if i == 0:
                inst_bwrap = instance_bwrap_true(sp)
    floor = run_bench(["spawnloop", "10", "2", *bwrap_floor_argv()])
    mon = sorted(monitor_start_ms(args.monitor) for _ in range(5))
    med = statistics.median(loc)
    rows.append(("local: fresh sandpitd, first exec (starts the instance)  median",
                 "%.1f ms" % (1000 * med), "%.1f ms (bare bwrap true)" % (
                     float(floor["spawn.p50_us"]) / 1000),
                 "< %.0f ms: %s" % (AIMS["cold_local_ms"],
                                    "met" if 1000 * med < AIMS["cold_local_ms"] else "MISSED")))
    rows.append(("  all runs (ms)", ms_list(sorted(loc)), None, None))
    if inst_bwrap:
        rows.append(("  the backend's own bwrap command line running true  p50", None,
                     "%.1f ms (%d binds)" % (inst_bwrap[0] / 1000, inst_bwrap[1]), None))
    rows.append(("  a bare monitor: spawn to its first ping answer  median", None,
                 "%.1f ms" % statistics.median(mon), None))
    notes.append("local: %d runs, each a new sandpitd with a new data directory (pool of 1 "
                 "instance, min_warm 0); timed from connect to the answer of "
                 "POST /v1/sandboxes/cold-N/api/execute {\"command\":\"true\"}; sandpitd was "
                 "already answering /health" % n)
    notes.append("local, medians from the logs (1 ms resolution): " + phases_note(phs))
    notes.append("the reference is posix_spawn+wait of `bwrap` with new pid/ipc/uts/net "
                 "namespaces running /usr/bin/true: the floor of namespace set-up here")
    state["local_ms"] = 1000 * med
    state["bwrap_ms"] = float(floor["spawn.p50_us"]) / 1000
    state["instance_bwrap_ms"] = inst_bwrap[0] / 1000 if inst_bwrap else None
    state["bare_monitor_ms"] = statistics.median(mon)
    state["phases"] = phs
    state["local_runs"] = [1000 * x for x in loc]

    why = docker_unavailable()
    if why:
        rows.append(("docker", "not available", None, None))
        notes.append("docker: not available (%s)" % why)
    else:
        dr_argv = ["docker", "run", "--rm", "--network", "none", "--entrypoint", "true",
                   DOCKER_IMAGE]
        run_bench(["spawnloop", "1", "1", *dr_argv])  # page cache, layers
        ref, dk, dphs = [], [], []
        for i in range(n):
            x = run_bench(["spawnloop", "1", "0", *dr_argv])
            ref.append(float(x["spawn.p50_us"]) / 1e6)
            with Managed(args, [DOCKER_POOL % (DOCKER_IMAGE, 1)], docker=True,
                         log_level="info") as sp:
                dk.append(time_first_exec(sp, "cold-%d" % i))
                dphs.append(sp.cold)
        dm, rm = statistics.median(dk), statistics.median(ref)
        ratio = dm / rm
        rows.append(("docker: fresh sandpitd, first exec (creates+starts the container)  median",
                     "%.0f ms" % (1000 * dm), "%.0f ms (docker run --rm)" % (1000 * rm),
                     "<= %.1fx: %.2fx %s" % (AIMS["cold_docker_ratio"], ratio,
                                             "met" if ratio <= AIMS["cold_docker_ratio"]
                                             else "MISSED")))
        rows.append(("  all runs (ms)", ms_list(sorted(dk)), ms_list(sorted(ref)), None))
        notes.append("docker: %d runs, alternating `%s` (posix_spawn of the CLI, wait) with a "
                     "new sandpitd (new data directory, docker pool of 1 instance) timed as "
                     "above; the image's entrypoint is the monitor, so the reference sets "
                     "--entrypoint true; --network none as the pool's instances have" % (
                         n, " ".join(dr_argv)))
        notes.append("docker, medians from sandpitd's log: " + phases_note(dphs) +
                     " (the monitor's own log goes to the engine here)")
        state.update(docker_ms=1000 * dm, docker_run_ms=1000 * rm, ratio=ratio,
                     docker_runs=[1000 * x for x in dk], docker_ref_runs=[1000 * x for x in ref])
    BLOCK("cold-start: a fresh sandpitd's first exec result", rows, notes)
    return state


# ---------------------------------------------------------------- concurrency


def bench_concurrency(args):
    nc, ne, ni = args.conc_clients, args.conc_execs, args.conc_instances
    pool = LOCAL_POOL % ni + 'allocation = "many_to_one"\n'
    with Managed(args, [pool]) as sp:
        pad_uids(sp, ni, args.pad_uids)
        tfile = os.path.join(sp.tmp, "targets")
        sids = ["conc-%02d" % i for i in range(nc)]
        with open(tfile, "w") as f:
            for s in sids:
                f.write("%s %s /v1/sandboxes/%s/api/execute -\n" % (sp.addr, TOKEN, s))
        cpu0 = proc_stat(sp.pid)[0]
        t0 = time.time()
        r = run_bench(["conc", tfile, str(ne)])
        cpu1 = proc_stat(sp.pid)[0]
        slots = {}
        dfile = os.path.join(sp.tmp, "direct")
        with open(dfile, "w") as f:
            for s in sids:
                d, j = sp.instance_dir(s)
                slots[j["slot"]] = slots.get(j["slot"], 0) + 1
                f.write("%s - /api/execute %s\n" % (os.path.join(d, "run", "monitor.sock"), s))
        mon_pids = sp.instance_pids()
        mcpu0 = cpu_of(mon_pids)
        dr = run_bench(["conc", dfile, str(ne)])
        mcpu1 = cpu_of(mon_pids)
    errs = [l for l in r["_stderr"].splitlines() if l.strip()]
    f = lambda res, k: float(res[k])
    total = nc * ne
    rows = [
        ("throughput through sandpitd", "%s execs/s" % fmt_int(f(r, "conc.per_s")),
         "%s execs/s (monitors direct)" % fmt_int(f(dr, "conc.per_s")), None),
        ("errors", "%s of %s" % (r["conc.errors"], fmt_int(total)),
         "%s" % dr["conc.errors"], "0: %s" % ("met" if r["conc.errors"] == "0" and
                                              r["conc.warmup_errors"] == "0" else "MISSED")),
        ("latency p50 / p99", "%s / %s" % (fmt_ms(f(r, "conc.lat.p50_us")),
                                           fmt_ms(f(r, "conc.lat.p99_us"))),
         "%s / %s" % (fmt_ms(f(dr, "conc.lat.p50_us")), fmt_ms(f(dr, "conc.lat.p99_us"))), None),
        ("wall time", "%.1f s" % f(r, "conc.seconds"), "%.1f s" % f(dr, "conc.seconds"), None),
        ("sandpitd CPU per exec", fmt_ms(1e6 * (cpu1 - cpu0) / (total + nc)), None, None),
    ]
    notes = ["%d clients (threads in bench/out/bench), each its own keep-alive TCP connection "
             "and its own sandbox, one untimed first exec each, then %d execs of `true` each; "
             "pool: local, max_instances %d, many_to_one (sandboxes per slot: %s)" % (
                 nc, ne, ni, ", ".join("%d: %d" % kv for kv in sorted(slots.items()))),
             "reference: the same clients straight to the monitors' sockets of the same "
             "instances right after (monitors' own CPU %.2f ms per exec then)" % (
                 1000 * (mcpu1 - mcpu0) / (total + nc)),
             "first-exec errors %s, no-answer errors %s, reconnects %s; load average %s" % (
                 r["conc.warmup_errors"], r["conc.noanswer"], r["conc.reconnects"], loadavg()),
             PAD_NOTE % (args.pad_uids, args.pad_uids - 1)]
    notes += ["  " + e for e in errs[:5]]
    if errs:
        notes.append("  " + eagain_hint(" ".join(errs)).strip())
    BLOCK("concurrency: %d clients x %d execs on distinct sandboxes" % (nc, ne), rows, notes)
    return {"per_s": f(r, "conc.per_s"), "direct_per_s": f(dr, "conc.per_s"),
            "errors": int(r["conc.errors"]) + int(r["conc.warmup_errors"]),
            "p50_us": f(r, "conc.lat.p50_us"), "p99_us": f(r, "conc.lat.p99_us"),
            "seconds": f(r, "conc.seconds")}


# ---------------------------------------------------------------- memory


def bench_manager_memory(args):
    n = args.sandboxes
    with Managed(args, [LOCAL_POOL % 4]) as sp:
        time.sleep(0.3)
        start = proc_status(sp.pid)
        for _ in range(20):
            sp.req("GET", "/v1/sandboxes")
        idle = proc_status(sp.pid)
        # create N sandboxes on 4 keep-alive connections
        errors = []

        def worker(k):
            c = http.client.HTTPConnection("127.0.0.1", sp.port, timeout=60)
            h = {"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"}
            for i in range(k, n, 4):
                c.request("POST", "/v1/sandboxes", body=json.dumps({"id": "mem-%05d" % i}), headers=h)
                r = c.getresponse()
                r.read()
                if r.status not in (200, 201) and len(errors) < 3:
                    errors.append("%d" % r.status)
            c.close()

        t0 = time.perf_counter()
        ths = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        t1 = time.perf_counter()
        after = proc_status(sp.pid)
        t2 = time.perf_counter()
        st, j = sp.req("GET", "/v1/sandboxes")
        t3 = time.perf_counter()
        listed = j.get("count") if isinstance(j, dict) else None
        after_list = proc_status(sp.pid)
        db = os.path.getsize(os.path.join(sp.data, "sandpit.db"))
    rows = [("idle, right after start (VmRSS)", fmt_kb(start["VmRSS"]), None, None),
            ("idle, after 20 GET /v1/sandboxes (VmRSS)", fmt_kb(idle["VmRSS"]), None, None),
            ("with %s sandboxes known (VmRSS)" % fmt_int(n), fmt_kb(after["VmRSS"]), None, None),
            ("  after listing them all (VmRSS / VmHWM)",
             "%s / %s" % (fmt_kb(after_list["VmRSS"]), fmt_kb(after_list["VmHWM"])), None, None),
            ("  per sandbox known", "%.0f bytes" % (1024.0 * (after["VmRSS"] - idle["VmRSS"]) / n),
             None, None)]
    notes = ["%s x POST /v1/sandboxes {\"id\"} on 4 keep-alive connections in %.1f s "
             "(%s/s); %s; GET /v1/sandboxes listed %s in %.0f ms; sandpit.db %.1f MB" % (
                 fmt_int(n), t1 - t0, fmt_int(n / (t1 - t0)),
                 "errors: " + ", ".join(errors) if errors else "no errors", listed,
                 1000 * (t3 - t2), db / 1e6)]
    for label, s in (("start", start), ("idle", idle), ("10k", after), ("listed", after_list)):
        notes.append("%-6s RssAnon %s, RssFile %s, threads %d" % (
            label, fmt_kb(s["RssAnon"]), fmt_kb(s["RssFile"]), s["Threads"]))
    notes.append("no aim set (issue 5 asks for the figures); no instance was started")
    BLOCK("manager-memory: sandpitd resident memory (/proc/PID/status)", rows, notes)
    return {"idle_kb": idle["VmRSS"], "start_kb": start["VmRSS"], "known_kb": after["VmRSS"],
            "listed_kb": after_list["VmRSS"], "hwm_kb": after_list["VmHWM"],
            "create_s": t1 - t0}


# ---------------------------------------------------------------- preview


def ensure_packages(pkgs):
    """Install Debian packages whose binary is missing; returns None or a reason."""
    missing = [p for p, b in pkgs if not shutil.which(b) and not os.path.exists(b)]
    if not missing:
        return None
    if os.geteuid() != 0:
        return "%s missing and not root to apt-get install it" % ", ".join(missing)
    OUT("  installing %s with apt-get (Debian packages; they are not in scripts/deps)" %
        ", ".join(missing))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    r = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
                       capture_output=True, text=True, env=env)
    if r.returncode != 0:
        OUT("  apt-get update, then again")
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env)
        r = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends",
                            *missing], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        return "apt-get install %s failed: %s" % (" ".join(missing), r.stderr.strip()[-200:])
    return None


# What both nginx configurations below share.  Main context: in the
# foreground, its pid file and error log in %(dir)s.
NGINX_MAIN = """daemon off;
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log warn;
"""
# http context: a connection kept for all of wrk's requests, temporary files
# in %(dir)s.
NGINX_HTTP = """  keepalive_requests 1000000;
  client_body_temp_path %(dir)s/body;
  proxy_temp_path %(dir)s/proxy;
  fastcgi_temp_path %(dir)s/fastcgi;
  uwsgi_temp_path %(dir)s/uwsgi;
  scgi_temp_path %(dir)s/scgi;
"""

UPSTREAM_CONF = """# the upstream: nginx as the sandbox's user, inside the instance
worker_processes 1;
""" + NGINX_MAIN + """events { worker_connections 1024; }
http {
  access_log off;
  default_type text/html;
""" + NGINX_HTTP + """  server {
    listen 127.0.0.1:%(port)d;
    root %(root)s;
    location / { }
  }
}
"""

PROXY_CONF = """# the reference: nginx on the host, reverse proxy to the same upstream
worker_processes %(workers)s;
""" + NGINX_MAIN + """events { worker_connections 4096; }
http {
  access_log off;
""" + NGINX_HTTP + """  upstream sandbox { server 127.0.0.1:%(up)d; keepalive 128; }
  server {
    listen 127.0.0.1:%(port)d;
    location / {
      proxy_pass http://sandbox;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto http;
      proxy_buffering on;
    }
  }
}
"""

PAGE = ("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>preview</title></head>\n"
        "<body><h1>hello from the sandbox</h1>\n" +
        "".join("<p>line %d of a small static page served for the benchmark.</p>\n" % i
                for i in range(12)) + "</body></html>\n")


def parse_wrk(text):
    res = {"text": text}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    res["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", text)
    res["requests"] = int(m.group(1)) if m else 0
    units = {"us": 1.0, "ms": 1000.0, "s": 1e6, "m": 60e6}
    for p in ("50", "75", "90", "99"):
        m = re.search(r"^\s+%s(?:\.000)?%%\s+([\d.]+)(us|ms|s|m)\s*$" % p, text, re.M)
        res["p" + p] = float(m.group(1)) * units[m.group(2)] if m else float("nan")
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    res["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    res["sockerr"] = sum(int(x) for x in m.groups()) if m else 0
    return res


def run_wrk(args, url, host, cpu_pids, throttle_pid=None):
    argv = ["wrk", "-t", str(args.wrk_threads), "-c", str(args.wrk_conns), "-d",
            "%ds" % args.wrk_seconds, "--latency"]
    if host:
        argv += ["-H", "Host: " + host]
    argv.append(url)
    c0 = {k: cpu_of(v) for k, v in cpu_pids.items()}
    th0 = cpu_throttle(throttle_pid) if throttle_pid else None
    r = subprocess.run(argv, capture_output=True, text=True, timeout=args.wrk_seconds + 60)
    c1 = {k: cpu_of(v) for k, v in cpu_pids.items()}
    if r.returncode != 0:
        raise RuntimeError("wrk failed: %s" % r.stderr[-300:])
    res = parse_wrk(r.stdout)
    res["cpu"] = {k: c1[k] - c0[k] for k in c0}
    th1 = cpu_throttle(throttle_pid) if throttle_pid else None
    res["throttle"] = tuple(b - a for a, b in zip(th0, th1)) if th0 and th1 else None
    return res


def perf_top(data, sort, limit, children=False):
    r = subprocess.run(["perf", "report", "-i", data, "--stdio",
                        "--children" if children else "--no-children", "--sort", sort,
                        "--percent-limit", str(limit)], capture_output=True, text=True,
                       timeout=300)
    rows = []
    for line in r.stdout.splitlines():
        t = line.strip()
        if t and not t.startswith("#") and t.split()[0].endswith("%"):
            rows.append(re.sub(r"\s+", " ", t))
    return rows[:25]


def perf_wrk(args, label, pids, url, host, tmpdir):
    """wrk for args.wrk_seconds while `perf record -g` samples PIDS."""
    data = os.path.join(tmpdir, "perf-%s.data" % label)
    pr = subprocess.Popen(["perf", "record", "-g", "-o", data, "-p",
                           ",".join(str(p) for p in pids), "--", "sleep",
                           str(args.wrk_seconds + 1)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    res = run_wrk(args, url, host, {})
    pr.wait()
    lines = ["== preview profile: %s (perf record -g -p %s during wrk: %s req/s)" % (
        label, ",".join(str(p) for p in pids), fmt_int(res["rps"]))]
    lines += ["  " + t for t in perf_top(data, "comm,dso", 2)]
    lines.append("  -- symbols, self time >= 1%:")
    lines += ["  " + t for t in perf_top(data, "comm,sym", 1)]
    lines.append("  -- system calls, time inside them (children included, >= 3%):")
    lines += ["  " + t for t in perf_top(data, "sym", 3, children=True) if "__x64_sys_" in t]
    return lines + [""]


def throttle_txt(run):
    t = run.get("throttle")
    if not t:
        return "no cgroup CPU stats"
    return "%d of %d, %.2f s" % (t[1], t[0], t[2])


def quota_txt(pid):
    """The cgroup CPU quota of PID in vCPUs, from cpu.max (v2) or cfs_quota/period (v1)."""
    try:
        with open("/proc/%d/cgroup" % pid) as f:
            for line in f.read().splitlines():
                _, ctrls, path = line.split(":", 2)
                if ctrls == "":
                    try:
                        with open("/sys/fs/cgroup%s/cpu.max" % path) as g:
                            q, per = g.read().split()
                        return "max" if q == "max" else "%.2g" % (int(q) / int(per))
                    except OSError:
                        continue
                if "cpu" in ctrls.split(","):
                    base = "/sys/fs/cgroup/%s%s" % (ctrls, path)
                    with open(base + "/cpu.cfs_quota_us") as g:
                        q = int(g.read())
                    with open(base + "/cpu.cfs_period_us") as g:
                        per = int(g.read())
                    return "no quota" if q < 0 else "%.2g" % (q / per)
    except (OSError, ValueError, TypeError):
        pass
    return "?"


def check_get(port, host, want):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/", headers={"Host": host})
    r = c.getresponse()
    body = r.read()
    c.close()
    if r.status != 200 or want.encode() not in body:
        raise RuntimeError("GET / with Host %s: %d %s" % (host, r.status, body[:200]))


def bench_preview(args):
    why = ensure_packages([("wrk", "wrk"), ("nginx", "/usr/sbin/nginx")])
    if why:
        BLOCK("preview: wrk through a preview URL", [("preview", "not available", None, None)],
              ["preview: not available (%s)" % why])
        return {}
    res = {}
    for itype in [t.strip() for t in args.preview_types.split(",") if t.strip()]:
        res[itype] = preview_one(args, itype)
    return res


def preview_one(args, itype):
    sid = "bench-preview"
    up = free_port()
    pool = LOCAL_POOL % 1 + 'network = "egress"\ninstance_type = "%s"\n' % itype
    ngx = None
    ngtmp = tempfile.mkdtemp(prefix="spb-ngx-", dir="/tmp")
    try:
        with Managed(args, [pool]) as sp:
            pad_uids(sp, 1, args.pad_uids)
            sp.exec(sid)
            ws = "/workspace/" + sid
            d = ws + "/up"
            sp.req("POST", "/v1/sandboxes/%s/api/write" % sid,
                   {"path": "site/index.html", "content": PAGE})
            sp.req("POST", "/v1/sandboxes/%s/api/write" % sid,
                   {"path": "up/nginx.conf",
                    "content": UPSTREAM_CONF % {"dir": d, "port": up, "root": ws + "/site"}})
            st, j = sp.req("POST", "/v1/sandboxes/%s/api/process/start" % sid, {
                "command": "exec /usr/sbin/nginx -p %s/ -c %s/nginx.conf -e %s/error.log" % (
                    d, d, d),
                "processId": "upstream", "port": up})
            if st not in (200, 201):
                raise RuntimeError("process/start: %s %s" % (st, str(j)[:300]))
            deadline = time.time() + 20
            while True:
                st, j = sp.req("GET", "/v1/sandboxes/%s/api/process/upstream" % sid)
                p = j.get("process", {}) if isinstance(j, dict) else {}
                if p.get("ready"):
                    break
                if time.time() > deadline or p.get("status") not in ("running", "starting", None):
                    st2, logs = sp.req("GET", "/v1/sandboxes/%s/api/process/upstream/logs" % sid)
                    raise RuntimeError("upstream nginx not ready: %s; logs %s" % (
                        str(p)[:300], str(logs)[:500]))
                time.sleep(0.05)
            st, j = sp.req("POST", "/v1/sandboxes/%s/ports" % sid, {"port": up})
            if st not in (200, 201):
                raise RuntimeError("POST ports: %s %s" % (st, str(j)[:300]))
            host = "%d-%s-%s.localhost:%d" % (up, sid, j["token"], sp.port)
            check_get(sp.port, host, "hello from the sandbox")
            up_pids = pids_with_cmdline(d + "/nginx.conf")
            up_pids += [k for p in up_pids for k in children_of(p)]
            mon_pids = [k for p in sp.instance_pids() for k in [p] + descendants(p)
                        if comm(k) == "sandpit-monitor"]
            # the reference proxy
            ngport = free_port()
            for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
                os.makedirs(os.path.join(ngtmp, sub), exist_ok=True)
            conf = os.path.join(ngtmp, "nginx.conf")
            with open(conf, "w") as f:
                f.write(PROXY_CONF % {"dir": ngtmp, "up": up, "port": ngport,
                                      "workers": args.nginx_workers})
            nglog = open(os.path.join(ngtmp, "stderr.log"), "ab")
            ngx = subprocess.Popen(["/usr/sbin/nginx", "-p", ngtmp + "/", "-c", conf,
                                    "-e", os.path.join(ngtmp, "error.log")],
                                   stdout=nglog, stderr=nglog)
            deadline = time.time() + 10
            while True:
                try:
                    check_get(ngport, "127.0.0.1:%d" % ngport, "hello from the sandbox")
                    break
                except (OSError, RuntimeError):
                    if ngx.poll() is not None or time.time() > deadline:
                        raise RuntimeError("host nginx did not come up: " + open(
                            os.path.join(ngtmp, "error.log")).read()[-500:])
                    time.sleep(0.05)
            ng_pids = [ngx.pid] + children_of(ngx.pid)
            inst_pid = (sp.instance_pids() or [None])[0]
            quota = quota_txt(inst_pid) if inst_pid else "?"
            cpu_pids = {"sandpitd": [sp.pid], "monitor": mon_pids, "nginx": ng_pids,
                        "upstream": up_pids}

            def upstream_check(when):
                try:
                    check_get(up, "127.0.0.1:%d" % up, "hello from the sandbox")
                except (OSError, RuntimeError) as e:
                    st, j = sp.req("GET", "/v1/sandboxes/%s/api/process/upstream" % sid)
                    raise RuntimeError(
                        "the upstream stopped answering %s (%s); its process: %s. A monitor "
                        "running outside a pid namespace elsewhere on this machine (a test's, "
                        "a standalone one) kills every process of each of its sandbox uids "
                        "with kill(-1) when it stops, and uid 200000+n is in use in every "
                        "instance" % (when, e, str(j)[:300]))

            def wrk_checked(label, url, h):
                upstream_check("before the %s run" % label)
                res = run_wrk(args, url, h, cpu_pids, inst_pid)
                if res["non2xx"] or res["sockerr"]:
                    upstream_check("after the %s run (%d non-2xx, %d socket errors)" % (
                        label, res["non2xx"], res["sockerr"]))
                return res

            direct = wrk_checked("direct", "http://127.0.0.1:%d/" % up, None)
            runs = {"nginx": [], "sandpitd": []}
            for i in range(args.wrk_rounds):
                runs["nginx"].append(wrk_checked("nginx", "http://127.0.0.1:%d/" % ngport, None))
                runs["sandpitd"].append(wrk_checked("sandpitd", "http://127.0.0.1:%d/" % sp.port,
                                                    host))
            upstream_check("after the last run")
            sp_rss = proc_status(sp.pid)["VmRSS"]
            prof = []
            if args.perf and shutil.which("perf"):
                prof += perf_wrk(args, "sandpitd+monitor", [sp.pid] + mon_pids,
                                 "http://127.0.0.1:%d/" % sp.port, host, ngtmp)
                prof += perf_wrk(args, "nginx", ng_pids, "http://127.0.0.1:%d/" % ngport, None,
                                 ngtmp)
    finally:
        if ngx is not None and ngx.poll() is None:
            ngx.terminate()
            try:
                ngx.wait(10)
            except subprocess.TimeoutExpired:
                ngx.kill()
                ngx.wait()
        if not args.keep:
            shutil.rmtree(ngtmp, ignore_errors=True)

    def median_run(v):
        return sorted(v, key=lambda x: x["rps"])[len(v) // 2]

    ms, mn = median_run(runs["sandpitd"]), median_run(runs["nginx"])
    ratio = ms["rps"] / mn["rps"] if mn["rps"] else float("nan")
    cpu_per_req = lambda run, k: 1e6 * run["cpu"][k] / max(run["requests"], 1)
    errs = lambda run: run["non2xx"] + run["sockerr"]
    rows = [
        ("requests/s through the preview URL (sandpitd)", fmt_int(ms["rps"]),
         "%s (nginx proxy)" % fmt_int(mn["rps"]),
         ">= %.1fx nginx: %.3fx %s" % (AIMS["preview_ratio"], ratio,
                                       "met" if ratio >= AIMS["preview_ratio"] else "MISSED")),
        ("  all rounds", " / ".join(fmt_int(r["rps"]) for r in runs["sandpitd"]),
         " / ".join(fmt_int(r["rps"]) for r in runs["nginx"]), None),
        ("latency p50 / p99 (wrk --latency, median round)",
         "%s / %s" % (fmt_ms(ms["p50"]), fmt_ms(ms["p99"])),
         "%s / %s" % (fmt_ms(mn["p50"]), fmt_ms(mn["p99"])), None),
        ("proxy CPU per request: sandpitd + the monitor's tunnel",
         "%.1f + %.1f us" % (cpu_per_req(ms, "sandpitd"), cpu_per_req(ms, "monitor")),
         "%.1f us" % cpu_per_req(mn, "nginx"), None),
        ("upstream CPU per request", "%.1f us" % cpu_per_req(ms, "upstream"),
         "%.1f us" % cpu_per_req(mn, "upstream"), None),
        ("errors (non-2xx + socket errors), all rounds",
         str(sum(errs(r) for r in runs["sandpitd"])), str(sum(errs(r) for r in runs["nginx"])),
         None),
        ("upstream alone (wrk straight to it)", fmt_int(direct["rps"]) + " req/s",
         "p99 " + fmt_ms(direct["p99"]), None),
        ("instance's CPU inside its cgroup per request: monitor + upstream",
         "%.1f us" % (cpu_per_req(ms, "monitor") + cpu_per_req(ms, "upstream")),
         "%.1f us (upstream)" % cpu_per_req(mn, "upstream"), None),
        ("instance's cgroup: periods throttled, time throttled",
         throttle_txt(ms), throttle_txt(mn), None),
    ]
    notes = ["wrk -t%d -c%d -d%ds --latency; %d rounds alternating nginx then sandpitd (median "
             "round by requests/s shown), after one run straight to the upstream" % (
                 args.wrk_threads, args.wrk_conns, args.wrk_seconds, args.wrk_rounds),
             "upstream: Debian's nginx inside the sandbox as the sandbox's user (worker_processes "
             "1), a %d-byte page, on 127.0.0.1:%d of a network = \"egress\" instance (the host's "
             "network, so the host nginx reaches the same server)" % (len(PAGE), up),
             "reference: Debian's nginx on the host, worker_processes %s, proxy_pass with an "
             "upstream keepalive pool (HTTP/1.1)" % args.nginx_workers,
             "sandpitd: Host %d-%s-TOKEN.localhost:%d; request, then the monitor's tunnel "
             "(unix socket) to the upstream; sandpitd VmRSS after %s" % (
                 up, sid, sp.port, fmt_kb(sp_rss)),
             "load average %s; wrk, both proxies and the upstream share the machine's %d cores" % (
                 loadavg(), os.cpu_count()),
             PAD_NOTE % (args.pad_uids, args.pad_uids - 1)]
    notes.insert(0, "instance_type %s: %s vCPU, a CPU quota on the instance's cgroup that the "
                    "monitor's tunnel and the dev server share (the host nginx is outside it)" % (
                        itype, quota))
    BLOCK("preview (instance_type %s): wrk through a preview URL beside nginx to the same "
          "upstream" % itype, rows, notes)
    for line in prof:
        OUT(line)
    return {"rps": ms["rps"], "nginx_rps": mn["rps"], "ratio": ratio, "p99_us": ms["p99"],
            "nginx_p99_us": mn["p99"], "direct_rps": direct["rps"],
            "sp_cpu_us": cpu_per_req(ms, "sandpitd"), "mon_cpu_us": cpu_per_req(ms, "monitor"),
            "ng_cpu_us": cpu_per_req(mn, "nginx"), "up_cpu_us": cpu_per_req(ms, "upstream"),
            "wrk_conns": args.wrk_conns, "quota_vcpu": quota,
            "throttle_sp": ms["throttle"], "throttle_ng": mn["throttle"],
            "all_sp": [r["rps"] for r in runs["sandpitd"]],
            "all_ng": [r["rps"] for r in runs["nginx"]], "p50_us": ms["p50"],
            "nginx_p50_us": mn["p50"]}


# ---------------------------------------------------------------- docker images


def bench_docker_images(args):
    OUT("== docker-images: bench/docker_images.sh%s (a colleague's script, output as is)" % (
        "" if args.docker_cold else " --no-cold"))
    why = docker_unavailable()
    if why:
        OUT("  docker: not available (%s)" % why)
        OUT()
        return {}
    def image_id(name):
        r = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", name],
                           capture_output=True, text=True, timeout=60)
        return r.stdout.strip()[7:19]

    watched = ("sandpit/base:bookworm", DOCKER_IMAGE)
    before = {n: image_id(n) for n in watched}
    argv = ["sh", os.path.join(HERE, "docker_images.sh")]
    if not args.docker_cold:
        argv.append("--no-cold")
    t0 = time.time()
    p = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    for line in p.stdout:
        OUT("  " + line.rstrip("\n"))
    rc = p.wait()
    OUT("  (%.0f s%s)" % (time.time() - t0, "" if rc == 0 else ", exit %d" % rc))
    after = {n: image_id(n) for n in watched}
    for n in watched:
        if before[n] != after[n]:
            OUT("  NOTE: %s changed during this run (%s -> %s): its \"cached\" build line timed "
                "a rebuild (the image present carried another recipe or layers; other work on "
                "this engine builds these images too)" % (n, before[n] or "none", after[n]))
    if not args.docker_cold:
        OUT("  cold builds skipped: bench/run --only docker-images --docker-cold runs them "
            "(minutes: debootstrap and apt-get inside docker build)")
    OUT()
    if rc != 0:
        raise RuntimeError("bench/docker_images.sh exited with %d" % rc)
    return {}


BENCHES = {
    "manager-exec": bench_manager_exec,
    "cold-start": bench_cold_start,
    "concurrency": bench_concurrency,
    "manager-memory": bench_manager_memory,
    "preview": bench_preview,
    "docker-images": bench_docker_images,
}


def add_arguments(ap):
    g = ap.add_argument_group("sandpitd benchmarks")
    g.add_argument("--sandpitd", default=os.path.join(ROOT, "bin", "sandpitd"))
    g.add_argument("--mexec-iter", type=int, default=2000,
                   help="exec round trips through sandpitd (manager-exec)")
    g.add_argument("--mexec-warmup", type=int, default=200)
    g.add_argument("--docker-exec-iter", type=int, default=50,
                   help="`docker exec C true` samples (manager-exec)")
    g.add_argument("--docker-rounds", type=int, default=5,
                   help="alternating rounds of sandpitd and docker exec (manager-exec)")
    g.add_argument("--pad-uids", type=int, default=4,
                   help="padding sandboxes per instance before the measured ones (see PAD_NOTE)")
    g.add_argument("--cold-runs", type=int, default=7, help="cold starts per backend (median)")
    g.add_argument("--conc-clients", type=int, default=64)
    g.add_argument("--conc-execs", type=int, default=200)
    g.add_argument("--conc-instances", type=int, default=4)
    g.add_argument("--sandboxes", type=int, default=10000, help="sandboxes for manager-memory")
    g.add_argument("--wrk-threads", type=int, default=2)
    g.add_argument("--wrk-conns", type=int, default=32)
    g.add_argument("--wrk-seconds", type=int, default=5)
    g.add_argument("--wrk-rounds", type=int, default=5)
    g.add_argument("--preview-types", default="standard,standard-3",
                   help="instance types for preview, comma-separated (standard: 0.5 vCPU, "
                        "standard-3: 2 vCPU)")
    g.add_argument("--nginx-workers", default="auto", help="worker_processes of the host nginx")
    g.add_argument("--docker-cold", action="store_true",
                   help="docker-images: also the cold image builds (minutes)")
