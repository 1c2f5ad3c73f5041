"""The Cloudflare SDK's own client, unchanged, through sandpitd:
SandboxClient({ baseUrl: "http://HOST:PORT/v1/sandboxes/{id}" })."""
import json
import os
import re
import subprocess

from harness import ROOT, Manager, Suite


def test_sdk_client_through_sandpitd(t):
    m = Manager()
    try:
        r = m.post("/v1/sandboxes", {"id": "conf-mgr"})
        t.eq("sandbox created", r.status, 201)
        env = dict(os.environ,
                   SANDPIT_CONFORMANCE_BASEURL="http://127.0.0.1:%d/v1/sandboxes/conf-mgr" % m.port,
                   SANDPIT_CONFORMANCE_HEADERS=json.dumps({"Authorization": "Bearer " + m.TOKEN}),
                   SANDPIT_CONFORMANCE_NODE="/usr/bin/node")
        p = subprocess.run([os.path.join(ROOT, "tests", "conformance", "run")], env=env,
                           capture_output=True, text=True, timeout=300)
        out = p.stdout + p.stderr
        for line in out.splitlines():
            if not line.startswith("  ok") and not line.startswith("ok"):
                print("  | " + line)
        found = re.findall(r"^(\d+) passed, (\d+) failed", out, re.M)
        t.check("the conformance run printed its summary", bool(found), out[-2000:])
        if found:
            passed, failed = map(int, found[-1])
            t.check("%d SDK checks pass through sandpitd" % passed, passed >= 50)
            t.eq("no SDK check fails through sandpitd", failed, 0)
        t.eq("it exits 0", p.returncode, 0)
    finally:
        m.cleanup()


if __name__ == "__main__":
    Suite("SDK conformance through sandpitd").run([test_sdk_client_through_sandpitd])
