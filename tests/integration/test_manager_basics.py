"""sandpitd: configuration checking, /health, authentication."""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
import urllib.error

from harness import BIN, ROOT, Manager, Suite, free_port

SANDPITD = os.path.join(BIN, "sandpitd")


def write_config(prefix, name, text):
    """text in a file `name` in a new temporary directory; (directory, path)."""
    d = tempfile.mkdtemp(prefix=prefix)
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write(text)
    return d, path


def check_config(text, env=None):
    _, path = write_config("sp-cfg-", "wrangler-like.toml", text)
    e = dict(os.environ)
    for k in ("SANDPIT_API_TOKEN", "MAX_SANDBOX_INSTANCES", "SANDBOX_INSTANCE_TYPE"):
        e.pop(k, None)
    e.update(env or {})
    p = subprocess.run([SANDPITD, "--check-config", path], capture_output=True,
                       text=True, env=e, timeout=20)
    return p, path


def test_repo_config(t):
    p = subprocess.run([SANDPITD, "--check-config", os.path.join(ROOT, "wrangler-like.toml")],
                       capture_output=True, text=True, timeout=20)
    t.eq("the shipped wrangler-like.toml is valid", p.returncode, 0)
    cfg = json.loads(p.stdout)
    t.eq("default listen", cfg["listen"], "127.0.0.1:8787")
    t.eq("first pool backend", cfg["containers"][0]["backend"], "local")
    t.eq("named instance type resolved", cfg["containers"][0]["instance_type"]["memory_mib"], 4096)


def test_defaults(t):
    p, path = check_config('name = "x"\n')
    t.eq("minimal file exits 0", p.returncode, 0)
    cfg = json.loads(p.stdout)
    t.eq("listen default", cfg["listen"], "127.0.0.1:8787")
    t.eq("preview_domain default", cfg["preview_domain"], "localhost")
    t.eq("one default pool", len(cfg["containers"]), 1)
    t.eq("default pool allocation", cfg["containers"][0]["allocation"], "many_to_one")
    t.eq("data_dir relative to the file", cfg["data_dir"],
         os.path.join(os.path.dirname(path), ".sandpit"))


def test_unknown_key(t):
    p, path = check_config('name = "x"\n\n[[containers]]\nclass_name = "A"\nmax_instancez = 3\n')
    t.eq("unknown key exits 2", p.returncode, 2)
    t.check("message names the file and line 5", "%s:5:" % path in p.stderr, p.stderr)
    t.check("message names the key", "max_instancez" in p.stderr, p.stderr)
    t.eq("nothing on stdout", p.stdout, "")


def test_bad_values(t):
    # (file, a word the message names, the line it names)
    cases = [('listen = "127.0.0.1:99999"\n', "listen", 1)]
    # a bad setting of a pool, on line 2 below its [[containers]]
    cases += [("[[containers]]\n%s\n" % setting, word, 2) for setting, word in [
        ('backend = "kubernetes"', "backend"),
        ('max_instances = 0', "max_instances"),
        ('max_instances = "3"', "max_instances"),
        ('network = "bridge"', "network"),
        ('allocation = "round_robin"', "allocation"),
        ('sleep_after = "ten minutes"', "sleep_after"),
        ('instance_type = "huge"', "huge"),
        ('instance_type = { vcpu = 1 }', "memory_mib"),
    ]]
    cases += [
        ('[vars]\nMAX_SANDBOX_INSTANCES = "lots"\n', "MAX_SANDBOX_INSTANCES", 2),
        ('name = 5\n', "name", 1),
        ('[instance_types.big]\nvcpu = 1\nmemory_mib = 1024\nextra = 1\n', "extra", 4),
        ('a = \n', "", 1),
    ]
    for text, word, line in cases:
        p, path = check_config(text)
        t.check("rejects %r with exit 2" % text.strip(), p.returncode == 2, p.stderr)
        t.check("  names line %d and %r" % (line, word),
                ("%s:%d:" % (path, line)) in p.stderr and word in p.stderr, p.stderr)


def test_env_overrides(t):
    text = '[vars]\nMAX_SANDBOX_INSTANCES = "3"\n[[containers]]\nclass_name = "A"\n'
    p, _ = check_config(text)
    t.eq("vars sets the pool size", json.loads(p.stdout)["containers"][0]["max_instances"], 3)
    p, _ = check_config(text, {"MAX_SANDBOX_INSTANCES": "7", "SANDBOX_INSTANCE_TYPE": "basic"})
    cfg = json.loads(p.stdout)
    t.eq("environment wins for MAX_SANDBOX_INSTANCES", cfg["containers"][0]["max_instances"], 7)
    t.eq("environment wins for SANDBOX_INSTANCE_TYPE", cfg["containers"][0]["instance_type"]["name"], "basic")
    p, _ = check_config(text, {"MAX_SANDBOX_INSTANCES": "0"})
    t.eq("bad environment value exits 2", p.returncode, 2)
    t.check("  and says which variable", "MAX_SANDBOX_INSTANCES" in p.stderr, p.stderr)
    p, _ = check_config('api_token = "from-config-123"\n', {"SANDPIT_API_TOKEN": "from-env-12345"})
    cfg = json.loads(p.stdout)
    t.eq("token from environment", cfg["api_token"]["source"], "env")
    t.check("token is redacted", "from-env" not in p.stdout)


def test_inline_instance_type(t):
    p, _ = check_config('[[containers]]\ninstance_type = { vcpu = 2, memory_mib = 2048, disk_mb = 4000 }\n')
    t.eq("inline type accepted", p.returncode, 0)
    it = json.loads(p.stdout)["containers"][0]["instance_type"]
    t.eq("inline type values", (it["vcpu"], it["memory_mib"], it["disk_mb"]), (2, 2048, 4000))


def test_health_and_auth(t):
    port = free_port()
    d, path = write_config("sp-run-", "c.toml",
                           'listen = "127.0.0.1:%d"\napi_token = "secret-token-1"\n' % port)
    log = open(os.path.join(d, "log"), "wb")
    p = subprocess.Popen([SANDPITD, "--config", path], stdout=log, stderr=log)
    try:
        base = "http://127.0.0.1:%d" % port
        ok = False
        for _ in range(200):
            try:
                with urllib.request.urlopen(base + "/health", timeout=2) as r:
                    body = r.read().decode()
                    ok = True
                    break
            except OSError:
                time.sleep(0.02)
        t.check("GET /health answers", ok)
        t.eq("health body", json.loads(body), {"ok": True})
        try:
            urllib.request.urlopen(base + "/v1/version", timeout=2)
            t.check("no token is refused", False)
        except urllib.error.HTTPError as e:
            t.eq("no token is 401", e.code, 401)
            t.eq("401 body code", json.loads(e.read())["code"], "UNAUTHORIZED")
        req = urllib.request.Request(base + "/v1/version",
                                     headers={"Authorization": "Bearer wrong-token"})
        try:
            urllib.request.urlopen(req, timeout=2)
            t.check("wrong token refused", False)
        except urllib.error.HTTPError as e:
            t.eq("wrong token is 401", e.code, 401)
        req = urllib.request.Request(base + "/v1/version",
                                     headers={"Authorization": "Bearer secret-token-1"})
        with urllib.request.urlopen(req, timeout=2) as r:
            t.eq("right token is 200", r.status, 200)
        req = urllib.request.Request(base + "/no/such/route",
                                     headers={"Authorization": "Bearer secret-token-1"})
        try:
            with urllib.request.urlopen(req, timeout=2) as r:
                t.eq("unknown route is 404", r.status, 404)
        except urllib.error.HTTPError as e:
            t.eq("unknown route is 404", e.code, 404)
            t.eq("404 is JSON with a code", json.loads(e.read())["code"], "NOT_FOUND")
    finally:
        p.terminate()
        rc = p.wait(10)
        t.eq("SIGTERM stops sandpitd cleanly", rc, 0)


def test_generated_token(t):
    port = free_port()
    d, path = write_config("sp-tok-", "c.toml", 'listen = "127.0.0.1:%d"\n' % port)
    env = dict(os.environ)
    env.pop("SANDPIT_API_TOKEN", None)
    tokens = []
    for _ in range(2):
        p = subprocess.Popen([SANDPITD, "--config", path], stderr=subprocess.DEVNULL, env=env)
        for _ in range(200):
            if os.path.exists(os.path.join(d, ".sandpit", "api_token")):
                try:
                    urllib.request.urlopen("http://127.0.0.1:%d/health" % port, timeout=1)
                    break
                except OSError:
                    pass
            time.sleep(0.02)
        with open(os.path.join(d, ".sandpit", "api_token")) as f:
            tokens.append(f.read().strip())
        p.terminate()
        p.wait(10)
    t.check("a token is generated", len(tokens[0]) >= 32, tokens)
    t.eq("the token survives a restart", tokens[0], tokens[1])
    mode = os.stat(os.path.join(d, ".sandpit", "api_token")).st_mode & 0o777
    t.eq("token file is private", oct(mode), oct(0o600))


def test_cli(t):
    p = subprocess.run([SANDPITD, "--help"], capture_output=True, text=True)
    t.check("--help exits 0 and shows usage", p.returncode == 0 and "Usage:" in p.stdout)
    p = subprocess.run([SANDPITD, "--bogus"], capture_output=True, text=True)
    t.eq("unknown option exits 2", p.returncode, 2)
    p = subprocess.run([SANDPITD, "--check-config", "/nonexistent/x.toml"],
                       capture_output=True, text=True)
    t.eq("missing config exits 2", p.returncode, 2)
    t.check("  and says so", "/nonexistent/x.toml" in p.stderr, p.stderr)


def test_one_sandpitd_per_data_dir(t):
    with Manager() as m:
        d, path = write_config("spm-second-", "sandpit.toml",
                               'listen = "127.0.0.1:%d"\ndata_dir = "%s"\n' % (free_port(), m.data))
        p = subprocess.run([SANDPITD, "--config", path], capture_output=True, text=True, timeout=30)
        shutil.rmtree(d)
        t.eq("a second sandpitd on the same data directory exits 1", p.returncode, 1)
        t.check("  naming the directory and the pid that holds it",
                m.data in p.stderr and "pid %d" % m.proc.pid in p.stderr, p.stderr)
        t.eq("the first still answers", m.req("GET", "/health", auth=False).status, 200)
        m.stop()
        m.start()
        t.eq("once the first has stopped, a new one starts on it",
             m.req("GET", "/health", auth=False).status, 200)


if __name__ == "__main__":
    Suite("sandpitd basics").run([test_repo_config, test_defaults, test_unknown_key,
                                  test_bad_values, test_env_overrides,
                                  test_inline_instance_type, test_health_and_auth,
                                  test_generated_token, test_cli, test_one_sandpitd_per_data_dir])
