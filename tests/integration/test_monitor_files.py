"""sandpit-monitor: file routes, trees as tar, hostile paths and archives,
isolation of files between sandboxes."""
import base64
import gzip
import io
import os
import tarfile

from harness import Monitor, Suite


def hdr(sandbox):
    return {"X-Sandpit-Sandbox": sandbox} if sandbox else None


def test_files(t):
    with Monitor() as m:
        ws = os.path.join(m.workspace, "default")
        r = m.post("/api/write", {"path": "notes/a.txt", "content": "héllo\n"})
        t.eq("write (creating parents) is 200", r.status, 200)
        t.eq("  the path is resolved against the session's directory", r.json["path"], ws + "/notes/a.txt")
        with open(os.path.join(ws, "notes/a.txt"), "rb") as f:
            t.eq("  bytes on disk", f.read(), "héllo\n".encode())
        r = m.post("/api/read", {"path": "notes/a.txt"})
        t.eq("read utf-8", (r.json["content"], r.json["encoding"], r.json["isBinary"], r.json["size"]),
             ("héllo\n", "utf-8", False, 7))
        t.eq("  mime type", r.json["mimeType"], "text/plain")
        blob = bytes(range(256)) * 4
        r = m.post("/api/write", {"path": "bin/x.dat", "content": base64.b64encode(blob).decode(),
                                  "encoding": "base64"})
        t.eq("write base64", r.status, 200)
        r = m.post("/api/read", {"path": "bin/x.dat"})
        t.eq("binary is read back as base64", (r.json["encoding"], base64.b64decode(r.json["content"])),
             ("base64", blob))
        r = m.post("/api/write", {"path": "bad.bin", "content": "not base64!", "encoding": "base64"})
        t.eq("bad base64 is 400", (r.status, r.json["code"]), (400, "VALIDATION_FAILED"))
        r = m.post("/api/mkdir", {"path": "d1/d2/d3", "recursive": True})
        t.eq("mkdir -p", r.status, 200)
        r = m.post("/api/mkdir", {"path": "d1", "recursive": False})
        t.eq("mkdir of an existing dir is 409", (r.status, r.json["code"]), (409, "FILE_EXISTS"))
        m.post("/api/write", {"path": ".hidden", "content": "h"})
        r = m.post("/api/list-files", {"path": ".", "options": {}})
        names = [f["name"] for f in r.json["files"]]
        t.eq("list (hidden left out)", names, ["bin", "d1", "notes"])
        r = m.post("/api/list-files", {"path": ".", "options": {"recursive": True, "includeHidden": True}})
        rel = [f["relativePath"] for f in r.json["files"]]
        t.check("list recursive with hidden", ".hidden" in rel and "d1/d2/d3" in rel and "notes/a.txt" in rel, rel)
        f = [x for x in r.json["files"] if x["relativePath"] == "notes/a.txt"][0]
        t.eq("FileInfo fields", sorted(f.keys()), sorted(["name", "absolutePath", "relativePath", "type", "size",
                                                         "modifiedAt", "mode", "permissions"]))
        t.eq("  values", (f["type"], f["size"], f["mode"]), ("file", 7, "rw-r--r--"))
        r = m.post("/api/exists", {"path": "notes/a.txt"})
        t.eq("exists", r.json["exists"], True)
        r = m.post("/api/exists", {"path": "nope"})
        t.eq("exists false is not an error", (r.status, r.json["exists"]), (200, False))
        r = m.post("/api/rename", {"oldPath": "notes/a.txt", "newPath": "notes/b.txt"})
        t.eq("rename", (r.status, r.json["newPath"]), (200, ws + "/notes/b.txt"))
        r = m.post("/api/move", {"sourcePath": "notes/b.txt", "destinationPath": "d1/b.txt"})
        t.eq("move", r.status, 200)
        r = m.post("/api/read", {"path": "notes/b.txt"})
        t.eq("read of a missing file is 404", (r.status, r.json["code"]), (404, "FILE_NOT_FOUND"))
        t.eq("  with context.path for the SDK", r.json["context"].get("path"), ws + "/notes/b.txt")
        r = m.post("/api/delete", {"path": "d1"})
        t.eq("delete of a directory is 400", (r.status, r.json["code"]), (400, "IS_DIRECTORY"))
        r = m.post("/api/delete", {"path": "d1/b.txt"})
        t.eq("delete a file", r.status, 200)
        t.check("  it is gone", not os.path.exists(os.path.join(ws, "d1/b.txt")))
        # read stream
        big = ("line %d\n" % i for i in range(20000))
        text = "".join(big)
        m.post("/api/write", {"path": "big.txt", "content": text})
        evs = m.sse("POST", "/api/read/stream", {"path": "big.txt"})
        t.eq("read/stream: metadata first", evs[0]["type"], "metadata")
        t.eq("  complete last with bytesRead", (evs[-1]["type"], evs[-1]["bytesRead"]), ("complete", len(text)))
        t.eq("  chunks rebuild the file", "".join(e["data"] for e in evs if e["type"] == "chunk"), text)
        evs = m.sse("POST", "/api/read/stream", {"path": "bin/x.dat"})
        t.eq("binary stream chunks decode one by one",
             b"".join(base64.b64decode(e["data"]) for e in evs if e["type"] == "chunk"), blob)
        evs = m.sse("POST", "/api/read/stream", {"path": "missing"})
        t.eq("a missing file's stream is an error event", evs[0]["type"], "error")


def test_hostile_paths(t):
    with Monitor() as m:
        cases = [({"path": "a\u0000b", "content": "x"}, "NUL in a path"),
                 ({"path": "", "content": "x"}, "empty path"),
                 ({"path": "x" * 5000, "content": "x"}, "a 5000-byte path"),
                 ({"path": 7, "content": "x"}, "a path that is not a string")]
        for body, what in cases:
            r = m.post("/api/write", body)
            t.check("%s is a 400" % what, r.status == 400 and r.json.get("code"), r)
        os.mkfifo(os.path.join(m.workspace, "default", "fifo"))
        # nothing ever writes the FIFO: a read that opened it would never answer
        r = m.post("/api/read", {"path": "fifo"}, timeout=30)
        t.eq("reading a FIFO is refused at once", r.status, 400)
        r = m.req("POST", "/api/read", raw=b'{"path": "x"', headers={"Content-Type": "application/json"})
        t.eq("malformed JSON is 400", (r.status, r.json["code"]), (400, "INVALID_JSON"))
        r = m.req("POST", "/api/write", raw=b'{"path":"big","content":"' + b"a" * (70 << 20) + b'"}',
                  headers={"Content-Type": "application/json"})
        t.eq("a body over the limit is 413", r.status, 413)
        t.eq("the monitor keeps serving", m.get("/api/ping").status, 200)


def make_tar(entries, gz=False):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tf:
        for e in entries:
            ti = tarfile.TarInfo(e["name"])
            if e.get("type") == "sym":
                ti.type = tarfile.SYMTYPE
                ti.linkname = e["target"]
                tf.addfile(ti)
            elif e.get("type") == "hard":
                ti.type = tarfile.LNKTYPE
                ti.linkname = e["target"]
                tf.addfile(ti)
            elif e.get("type") == "dir":
                ti.type = tarfile.DIRTYPE
                ti.mode = 0o755
                tf.addfile(ti)
            else:
                data = e.get("data", b"")
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def put_tar(m, path, data, sandbox=None):
    h = {"Content-Type": "application/x-tar"}
    if sandbox:
        h["X-Sandpit-Sandbox"] = sandbox
    return m.req("PUT", "/api/archive?path=%s" % path, raw=data, headers=h, timeout=120)


def test_archives(t):
    with Monitor() as m:
        ws = os.path.join(m.workspace, "default")
        tar = make_tar([{"name": "app", "type": "dir"}, {"name": "app/index.js", "data": b"console.log(1)\n"},
                        {"name": "app/link", "type": "sym", "target": "index.js"}])
        r = put_tar(m, "proj", tar)
        t.eq("PUT /api/archive extracts", (r.status, r.json.get("entries")), (200, 3))
        with open(os.path.join(ws, "proj/app/index.js"), "rb") as f:
            t.eq("  the file is there", f.read(), b"console.log(1)\n")
        t.eq("  the inner symlink too", os.readlink(os.path.join(ws, "proj/app/link")), "index.js")
        r = put_tar(m, "proj2", make_tar([{"name": "x.txt", "data": b"gz"}], gz=True))
        t.eq("gzip is accepted", r.status, 200)
        r = m.get("/api/archive?path=proj")
        t.eq("GET /api/archive is a tar", r.status, 200)
        back = tarfile.open(fileobj=io.BytesIO(r.raw))
        t.eq("  with the tree", sorted(back.getnames()), ["app", "app/index.js", "app/link"])
        t.eq("  and its content", back.extractfile("app/index.js").read(), b"console.log(1)\n")
        hostile = [
            ([{"name": "/etc/evil", "data": b"x"}], "/etc/evil", "an absolute name"),
            ([{"name": "../escape.txt", "data": b"x"}], "../escape.txt", "a .. name"),
            ([{"name": "a/../../escape.txt", "data": b"x"}], "escape", "a nested .. name"),
            ([{"name": "up", "type": "sym", "target": "../../.."}], "up", "a symlink that climbs out"),
            ([{"name": "etc", "type": "sym", "target": "/etc"}], "etc", "a symlink to /etc"),
            ([{"name": "d", "type": "sym", "target": "."}, {"name": "d/../../x", "data": b"x"}], "x",
             "a write through a symlink"),
            ([{"name": "pw", "type": "hard", "target": "/etc/passwd"}], "pw", "a hard link to /etc/passwd"),
        ]
        for entries, name, what in hostile:
            r = put_tar(m, "h", make_tar(entries))
            t.check("%s is refused with a 4xx naming the entry" % what,
                    400 <= r.status < 500 and name.split("/")[-1] in r.json.get("message", ""), r)
        t.check("nothing landed outside", not os.path.exists(os.path.join(m.workspace, "escape.txt")) and
                not os.path.exists(os.path.join(m.workspace, "default", "escape.txt")))
        bomb = io.BytesIO()
        with tarfile.open(fileobj=bomb, mode="w:gz") as tf:
            ti = tarfile.TarInfo("zeros")
            ti.size = 300 << 20

            class Zeros(io.RawIOBase):
                def __init__(self):
                    self.left = 300 << 20

                def readable(self):
                    return True

                def readinto(self, b):
                    n = min(len(b), self.left)
                    b[:n] = bytes(n)
                    self.left -= n
                    return n
            tf.addfile(ti, io.BufferedReader(Zeros(), 1 << 20))
        data = bomb.getvalue()
        r = put_tar(m, "bomb", data)
        t.check("a gzip bomb (%d KiB -> 300 MiB) is refused with 413" % (len(data) >> 10),
                r.status == 413 and r.json["code"] == "ARCHIVE_TOO_LARGE", r)
        t.check("  and its partial file removed", not os.path.exists(os.path.join(ws, "bomb/zeros")))
        r = put_tar(m, "junk", b"this is not a tar archive at all" * 100)
        t.eq("garbage is 400 INVALID_ARCHIVE", (r.status, r.json.get("code")), (400, "INVALID_ARCHIVE"))
        r = m.get("/api/archive?path=nope")
        t.eq("GET of a missing dir is 404", r.status, 404)


def test_file_isolation(t):
    if not t.needs_root("file isolation", "needs root for per-sandbox users"):
        return
    with Monitor() as m:
        a, b = hdr("alpha"), hdr("beta")
        m.post("/api/write", {"path": "secret.txt", "content": "s3cret"}, headers=a)
        pa = os.path.join(m.workspace, "alpha", "secret.txt")
        r = m.post("/api/read", {"path": pa}, headers=b)
        t.eq("B cannot read A's file", (r.status, r.json["code"]), (403, "PERMISSION_DENIED"))
        r = m.post("/api/write", {"path": os.path.join(m.workspace, "alpha", "x"), "content": "x"}, headers=b)
        t.eq("B cannot write into A's workspace", r.status, 403)
        r = m.post("/api/list-files", {"path": os.path.join(m.workspace, "alpha"), "options": {}}, headers=b)
        t.eq("B cannot list A's workspace", r.status, 403)
        r = m.post("/api/delete", {"path": pa}, headers=b)
        t.eq("B cannot delete A's file", r.status, 403)
        r = m.post("/api/read", {"path": os.path.join(m.data, "monitor.db")}, headers=a)
        t.eq("A cannot read the monitor's database", r.status, 403)
        r = put_tar(m, os.path.join(m.workspace, "alpha"), make_tar([{"name": "y", "data": b"y"}]), sandbox="beta")
        t.check("B cannot extract into A's workspace", r.status == 403, r)
        st = os.stat(pa)
        uid = m.post("/api/execute", {"command": "id -u"}, headers=a).json["stdout"].strip()
        t.eq("A's files belong to A", str(st.st_uid), uid)
        r = m.post("/api/read", {"path": "secret.txt"}, headers=a)
        t.eq("A reads its own file", r.json["content"], "s3cret")


if __name__ == "__main__":
    Suite("monitor files").run([test_files, test_hostile_paths, test_archives, test_file_isolation])
