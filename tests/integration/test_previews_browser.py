"""Preview URLs in a real browser (issue 7).

sandpitd with a local-backend pool on network = "egress" (the sandbox can
reach the npm registry).  In one sandbox:

1. a small Node.js dev server (http + the `ws` package, installed by this
   test from the npm registry into the sandbox's workspace) with a
   WebSocket reload channel, exposed with POST /v1/sandboxes/{id}/ports;
   headless Chromium (Debian's) opens its preview URL
   http://{port}-{id}-{token}.localhost:{listen}/, the test rewrites the
   page through the files API and the SAME page session shows the new text
   (no navigation: a marker set in the page survives, and no main-frame
   navigation is recorded), through a WebSocket opened to the preview host;
2. a real Vite dev server from `npm create vite` (vanilla-ts): the page
   loads, its HMR WebSocket goes through the preview host, an edit
   hot-updates the same page, and a syntax error in src/main.ts shows up in
   GET /v1/sandboxes/{id}/api/errors classified (tool vite or esbuild,
   category syntax) with the file and line.

Screenshots go to tests/artifacts/ (git-ignored).  Where the npm registry is
unreachable from the sandbox, the npm-dependent parts print a loud SKIPPED
line and count as skipped.  Chromium is driven over the DevTools protocol
with the standard library only (tests/browser/cdp.py).

Environment: SANDPIT_CREATE_VITE chooses the scaffolder (`npm create X`);
by default vite@9.3.0 (create-vite 9.3.0, whose template pins vite ^8; needs
Node ^20.19 or >= 22.12) or, on an older Node such as Debian 12's 18.x,
vite@6.5.0 (vite ^6, Node 18 and up); SANDPIT_ARTIFACTS the screenshot
directory."""

import http.client
import json
import os
import re
import sys
import time
import urllib.parse

from harness import ROOT, Manager, Suite, free_port

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "browser"))
import cdp  # noqa: E402

SID = "browser-1"
WS = "/workspace/" + SID
CREATE_VITE = os.environ.get("SANDPIT_CREATE_VITE")
ARTIFACTS = os.environ.get("SANDPIT_ARTIFACTS") or os.path.join(ROOT, "tests", "artifacts")
BROWSER_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "browser")
NET_ERRORS = re.compile(r"ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|"
                        r"EHOSTUNREACH|socket hang up|network|UNABLE_TO_GET_ISSUER|SELF_SIGNED|CERT_")

CTX = {"m": None, "browser": None, "npm_ok": None, "node": "0.0.0", "t0": time.time()}


def create_vite():
    if CREATE_VITE:
        return CREATE_VITE
    try:
        major, minor = (int(x) for x in CTX["node"].lstrip("v").split(".")[:2])
    except ValueError:
        major, minor = 0, 0
    if (major == 20 and minor >= 19) or (major == 22 and minor >= 12) or major > 22:
        return "vite@9.3.0"
    return "vite@6.5.0"


def figure(what, secs):
    print("  figure: %s: %.2f s" % (what, secs))
    sys.stdout.flush()


def npm_ready(t, what):
    """Whether the npm-dependent part can run; a loud skip when the registry
    is unreachable from the sandbox, a failure when the set-up broke."""
    if CTX["npm_ok"] is None:
        t.check("%s: the sandbox was set up" % what, False, "(see test_sandbox_and_npm)")
        return False
    if not CTX["npm_ok"]:
        loud_skip(t, what, "npm registry unreachable from the sandbox")
        return False
    return True


def loud_skip(t, what, why):
    print("=" * 70)
    print("SKIPPED: %s" % why)
    print("=" * 70)
    t.skip(what, why)


def api(path):
    return "/v1/sandboxes/%s/api/%s" % (SID, path)


def execute(m, command, timeout_ms=60000, cwd=WS):
    """Runs command in a subshell in cwd: the sandbox's session is one
    persistent shell, and a `cd` must not leak into the next command."""
    body = {"command": "(%s)" % command, "timeoutMs": timeout_ms, "cwd": cwd}
    return m.post(api("execute"), body, timeout=timeout_ms / 1000 + 30)


def write(m, path, content):
    return m.post(api("write"), {"path": path, "content": content})


def preview_get(m, url, path="/", timeout=10):
    """GET through sandpitd with the preview URL's Host, the way a browser
    resolving *.localhost to loopback sends it."""
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection("127.0.0.1", m.port, timeout=timeout)
    try:
        c.request("GET", path, headers={"Host": u.netloc})
        r = c.getresponse()
        return r.status, r.read().decode("utf-8", "replace")
    finally:
        c.close()


def wait_preview(m, url, want, timeout=30):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = preview_get(m, url)
            if last[0] == 200 and want in last[1]:
                return last
        except OSError as e:
            last = (0, str(e))
        time.sleep(0.2)
    return last


def process_logs(m, pid):
    r = m.get(api("process/%s/logs" % pid))
    if r.status != 200 or not r.json:
        return "(logs: %r)" % r
    return (r.json.get("stdout") or "") + (r.json.get("stderr") or "")


def browser():
    if CTX["browser"] is None:
        CTX["browser"] = cdp.Chromium()
        print("  browser: %s" % CTX["browser"].version())
    return CTX["browser"]


def shot(page, name):
    path = os.path.join(ARTIFACTS, "previews-%s.png" % name)
    page.screenshot(path)
    print("  screenshot: %s" % os.path.relpath(path, ROOT))
    return path


def dump_page(page, what):
    print("  --- browser console (%s) ---" % what)
    for line in page.console[-30:]:
        print("    " + line)


def start_and_expose(t, m, name, command, port, cwd, started, exposed):
    """Start a dev server as the supervised process `name` and expose its
    port (checks `started` and `exposed`); the preview URL and its token."""
    r = m.post(api("process/start"), {"command": command, "processId": name,
                                      "port": port, "cwd": cwd})
    t.check(started, r.status == 200, r)
    r = m.post("/v1/sandboxes/%s/ports" % SID, {"port": port, "name": name})
    t.check(exposed, r.status in (200, 201), r)
    return r.json["url"], r.json["token"]


def open_page(t, url, what):
    """A new browser page on url (check `what`); the page and when it
    began loading."""
    page = browser().new_page()
    t0 = time.time()
    res = page.navigate(url)
    t.check(what, not res.get("errorText"), res)
    return page, t0


def ws_urls(page, since=0):
    return [p.get("url", "") for m, p in page.events[since:] if m == "Network.webSocketCreated"]


# ------------------------------------------------------------------ setup --

def test_sandbox_and_npm(t):
    m = CTX["m"] = Manager(pools=[
        'class_name = "Sandbox"\nbackend = "local"\nnetwork = "egress"\nmax_instances = 1\n'])
    r = m.post("/v1/sandboxes", {"id": SID})
    t.check("the sandbox is created", r.status in (200, 201), r)
    r = execute(m, "node --version && npm --version && pwd")
    t.check("node and npm run inside the sandbox", r.status == 200 and r.json["exitCode"] == 0, r)
    if r.status == 200:
        CTX["node"] = r.json["stdout"].split()[0]
        print("  sandbox: node %s, npm %s, cwd %s" % tuple(r.json["stdout"].split()[:3]))
    # a quick probe first: npm retries an unreachable registry for a minute
    t0 = time.time()
    r = execute(m, "npm view ws@8 version --fetch-retries=0 --fetch-timeout=20000 2>&1", timeout_ms=60000)
    if r.status == 200 and r.json["exitCode"] == 0:
        r = execute(m, "mkdir -p hot/site && cd hot && npm install --no-audit --no-fund ws@8 2>&1",
                    timeout_ms=150000)
    out = (r.json or {}).get("stdout", "") if r.status == 200 else r.body
    if r.status == 200 and r.json["exitCode"] == 0:
        figure("npm install ws@8 in the sandbox", time.time() - t0)
        CTX["npm_ok"] = True
        r = execute(m, "node -e \"console.log(require('ws/package.json').version)\"", cwd=WS + "/hot")
        t.check("ws is installed in the sandbox's workspace (%s)" % r.json["stdout"].strip(),
                r.json["exitCode"] == 0 and r.json["stdout"].startswith("8."), r)
        return
    print("\n".join("  npm: " + l for l in out.splitlines()[-15:]))
    if NET_ERRORS.search(out):
        CTX["npm_ok"] = False
        loud_skip(t, "npm install ws@8", "npm registry unreachable from the sandbox")
    else:
        t.check("npm install ws@8 in the sandbox", False, r)


# ------------------------------------------------------- WebSocket reload --

PAGE = """<!doctype html>
<html>
<head><meta charset="utf-8"><link rel="icon" href="data:,"><title>sandpit preview</title></head>
<body style="font-family:sans-serif;margin:2em">
<div id="app">
<h1 style="color:%s">%s</h1>
<p>Served from sandbox %s through a sandpit preview URL.</p>
</div>
</body>
</html>
"""


def test_websocket_hot_reload(t):
    if not npm_ready(t, "WebSocket hot reload (needs the ws package)"):
        return
    m, failed_before = CTX["m"], t.failed
    port = free_port()
    with open(os.path.join(BROWSER_DIR, "devserver.js")) as f:
        server_js = f.read()
    t.eq("the dev server is written through the files API",
         write(m, WS + "/hot/devserver.js", server_js).status, 200)
    t.eq("index.html is written through the files API",
         write(m, WS + "/hot/site/index.html", PAGE % ("#b00", "Hello from sandpit v1", SID)).status, 200)
    url, token = start_and_expose(t, m, "hot", "node devserver.js %d" % port, port, WS + "/hot",
                                  "the dev server starts as a supervised process",
                                  "POST /ports exposes it")
    want = "http://%d-%s-%s.localhost:%d/" % (port, SID, token, m.port)
    t.eq("  at http://{port}-{id}-{token}.localhost:{listen}/", url, want)
    t0 = time.time()
    got = wait_preview(m, url, "Hello from sandpit v1")
    t.check("the preview URL answers with the page", got and got[0] == 200, got)
    figure("process start to preview answering", time.time() - t0)
    if not (got and got[0] == 200):
        print(process_logs(m, "hot")[-2000:])
        return

    page, t0 = open_page(t, url, "Chromium opens the preview URL")
    text = page.wait_for("document.body && document.body.innerText", timeout=10) or ""
    t.check("the page shows the initial text", "Hello from sandpit v1" in text, repr(text[:300]))
    state = page.wait_for("document.documentElement.dataset.ws === 'open' && 'open'", timeout=10)
    t.eq("the page's WebSocket is open through the preview", state, "open")
    figure("browser load to WebSocket open", time.time() - t0)
    urls = ws_urls(page)
    t.eq("  it was opened to the preview host",
         urls, ["ws://%d-%s-%s.localhost:%d/__hot" % (port, SID, token, m.port)])
    shot(page, "ws-before")

    # the same page session from here on: a marker in the page survives an
    # in-place update and would be lost by any navigation or reload
    page.evaluate("window.__sandpitMarker = 'same-page'")
    mark = len(page.events)
    t0 = time.time()
    t.eq("index.html is rewritten through the files API",
         write(m, WS + "/hot/site/index.html", PAGE % ("#070", "Hot reloaded: v2", SID)).status, 200)
    text = page.wait_for("document.body.innerText.includes('Hot reloaded: v2') && document.body.innerText",
                         timeout=15) or ""
    elapsed = time.time() - t0
    t.check("the browser shows the new text without a manual reload", "Hot reloaded: v2" in text,
            repr(page.evaluate("document.body.innerText")[:300]))
    figure("files API write to new text in the browser", elapsed)
    t.check("  the old text is gone", "Hello from sandpit v1" not in text, repr(text[:300]))
    t.eq("  on the same page (marker kept)", page.evaluate("window.__sandpitMarker || null"), "same-page")
    t.eq("  with no navigation", page.navigations(mark), [])
    t.eq("  after one message over the WebSocket",
         page.evaluate("document.documentElement.dataset.updates"), "1")
    shot(page, "ws-after")
    logs = process_logs(m, "hot")
    t.check("the dev server saw the preview Host and X-Forwarded-For",
            ("host=%d-%s-%s.localhost:%d xff=127.0.0.1" % (port, SID, token, m.port)) in logs, logs[-1500:])
    t.check("the dev server sent the reload to the page", "reload sent to 1 page(s)" in logs, logs[-1500:])
    bad = [l for l in page.console if l.startswith(("exception", "websocket error", "log.error"))]
    t.eq("no errors in the browser console", bad, [])
    if t.failed > failed_before:
        dump_page(page, "hot reload")
    page.close()
    browser().pages.remove(page)


# ------------------------------------------------------------------- Vite --

MAIN_TS = """import './style.css'

document.querySelector<HTMLDivElement>('#app')!.innerHTML = `
  <h1 id="msg">%s</h1>
  <p>Vite in sandbox %s, through a sandpit preview URL.</p>
`

if (import.meta.hot) import.meta.hot.accept()
"""

# line 4 is the broken one
BROKEN_TS = """import './style.css'

const app = document.querySelector<HTMLDivElement>('#app')!
const broken = ;
app.innerHTML = `<h1>never</h1>`
"""
BROKEN_LINE = 4


def test_vite(t):
    if not npm_ready(t, "Vite dev server"):
        return
    m, failed_before = CTX["m"], t.failed
    scaffold = create_vite()
    t0 = time.time()
    r = execute(m, "npm create -y %s app -- --template vanilla-ts --no-interactive </dev/null 2>&1"
                % scaffold, timeout_ms=120000)
    out = r.json["stdout"] if r.status == 200 else r.body
    if r.status == 200 and r.json["exitCode"] != 0 and NET_ERRORS.search(out):
        loud_skip(t, "npm create vite", "npm registry unreachable from the sandbox")
        return
    if not t.check("npm create %s app --template vanilla-ts" % scaffold,
                   r.status == 200 and r.json["exitCode"] == 0, out[-1500:]):
        return
    r = execute(m, "cd app && npm install --no-audit --no-fund 2>&1 && node -p \"require('vite/package.json').version\"",
                timeout_ms=180000)
    out = r.json["stdout"] if r.status == 200 else r.body
    if not t.check("npm install in app/", r.status == 200 and r.json["exitCode"] == 0, out[-1500:]):
        return
    vite_version = out.strip().splitlines()[-1]
    print("  vite %s" % vite_version)
    figure("npm create vite + npm install", time.time() - t0)

    port = free_port()
    url, token = start_and_expose(t, m, "vite",
                                  "npm run dev -- --host 127.0.0.1 --port %d --strictPort" % port,
                                  port, WS + "/app", "npm run dev starts as a supervised process",
                                  "POST /ports exposes Vite's port")
    preview_host = "%d-%s-%s.localhost:%d" % (port, SID, token, m.port)
    t0 = time.time()
    got = wait_preview(m, url, "/@vite/client", timeout=40)
    t.check("the preview URL answers with Vite's index.html", got and got[0] == 200,
            (got, process_logs(m, "vite")[-1500:]))
    figure("npm run dev to preview answering", time.time() - t0)
    if not (got and got[0] == 200):
        return

    page, t0 = open_page(t, url, "Chromium opens Vite's preview URL")
    text = page.wait_for("(document.querySelector('#app')||{}).innerText", timeout=20) or ""
    t.check("the template's page renders (#app has content)", len(text.strip()) > 0,
            repr(page.evaluate("document.documentElement.outerHTML")[:500]))
    connected = False
    deadline = time.time() + 10
    while not connected and time.time() < deadline:
        page.pump(0.2)
        connected = any("[vite] connected" in l for l in page.console)
    t.check("Vite's client connects its HMR WebSocket ('[vite] connected.')", connected, page.console[-10:])
    figure("browser load to Vite HMR connected", time.time() - t0)
    urls = ws_urls(page)
    t.check("  through the preview host, not straight to 127.0.0.1:%d" % port,
            urls and all(u.startswith("ws://%s/" % preview_host) for u in urls), urls)
    shot(page, "vite-before")

    # edit 1: the template's main.ts accepts no update, so Vite tells the
    # page over its WebSocket to reload itself
    mark = len(page.events)
    t0 = time.time()
    write(m, WS + "/app/src/main.ts", MAIN_TS % ("Edited through sandpit: one", SID))
    text = page.wait_for("(document.querySelector('#msg')||{}).innerText", timeout=20) or ""
    t.eq("an edit to src/main.ts reaches the open page", text, "Edited through sandpit: one")
    figure("files API write to Vite page reload", time.time() - t0)
    t.eq("  by a reload Vite asked for over its WebSocket", len(page.navigations(mark)), 1)

    # edit 2: main.ts now accepts itself: a hot update, same page
    page.pump(0.5)
    page.evaluate("window.__sandpitMarker = 'same-page'")
    mark = len(page.events)
    t0 = time.time()
    write(m, WS + "/app/src/main.ts", MAIN_TS % ("Hot module replaced: two", SID))
    text = page.wait_for("(document.querySelector('#msg')||{}).innerText === 'Hot module replaced: two'"
                         " && document.querySelector('#msg').innerText", timeout=20) or ""
    t.eq("a second edit hot-updates the page", text, "Hot module replaced: two")
    figure("files API write to Vite HMR update", time.time() - t0)
    t.eq("  on the same page (marker kept)", page.evaluate("window.__sandpitMarker || null"), "same-page")
    t.eq("  with no navigation", page.navigations(mark), [])
    t.check("  Vite logged the hot update in the console",
            any("[vite] hot updated" in l for l in page.console), page.console[-10:])
    shot(page, "vite-after")

    # a syntax error: the page asks for the module again, Vite fails to
    # transform it and prints the error, the monitor classifies it
    m.delete(api("errors"))
    log_before = len(process_logs(m, "vite"))
    write(m, WS + "/app/src/main.ts", BROKEN_TS)
    t0 = time.time()
    found, errors = None, []
    while time.time() - t0 < 20 and not found:
        page.pump(0.3)
        r = m.get(api("errors"))
        errors = (r.json or {}).get("errors", []) if r.status == 200 else []
        for e in errors:
            if (e.get("tool") in ("vite", "esbuild") and e.get("category") == "syntax"
                    and (e.get("file") or "").endswith("app/src/main.ts")
                    and e.get("line") == BROKEN_LINE):
                found = e
    t.check("GET /api/errors through sandpitd shows the syntax error classified "
            "(tool vite|esbuild, category syntax, app/src/main.ts line %d)" % BROKEN_LINE,
            found is not None,
            "\n  errors: %s" % json.dumps([{k: e.get(k) for k in ("tool", "category", "file", "line",
                                                                  "column", "message")} for e in errors],
                                           indent=1))
    if found:
        figure("syntax error written to classified error", time.time() - t0)
        print("  classified: %s" % json.dumps({k: found.get(k) for k in ("tool", "category", "file", "line",
                                                                       "column", "message")}))
    else:
        print("  --- vite's output after the syntax error (ESC shown as \\e) ---")
        for line in process_logs(m, "vite")[log_before:].splitlines()[:30]:
            print("    | " + line.replace("\x1b", "\\e"))
    overlay = page.wait_for("!!document.querySelector('vite-error-overlay')", timeout=10)
    t.check("the browser shows Vite's error overlay", overlay, page.console[-10:])
    shot(page, "vite-error")
    path = os.path.join(ARTIFACTS, "previews-vite.log")
    with open(path, "w") as f:
        f.write(process_logs(m, "vite"))
    print("  vite's whole output: %s" % os.path.relpath(path, ROOT))
    if t.failed > failed_before:
        dump_page(page, "vite")


def main():
    os.makedirs(ARTIFACTS, exist_ok=True)
    suite = Suite("previews in a real browser (Chromium, Node dev server, Vite)")
    if not cdp.find_chromium():
        print("chromium is not installed: `make deps` installs it (apt-get install chromium)")
    try:
        suite.run([test_sandbox_and_npm, test_websocket_hot_reload, test_vite])
    finally:
        if CTX["browser"] is not None:
            CTX["browser"].close()
        if CTX["m"] is not None:
            CTX["m"].cleanup()
        print("  total time: %.1f s" % (time.time() - CTX["t0"]))


if __name__ == "__main__":
    main()
