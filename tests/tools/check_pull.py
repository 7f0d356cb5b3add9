#!/usr/bin/env python3
"""check_pull.py - herd pull and -m hf:// against a fake hub on loopback (no internet).

The server (http.server, a thread of this script on 127.0.0.1, port picked by the OS)
serves the hub's URL layout and headers as huggingface_hub expects them:
  GET /api/models/ORG/REPO/revision/main?blobs=true   {"sha", "siblings": [{rfilename,
      size, blobId, lfs: {sha256, size}}]}
  GET /ORG/REPO/resolve/COMMIT/FILE   302 to /cdn/SHA256 for LFS files (X-Repo-Commit,
      X-Linked-Etag, X-Linked-Size), 200 for small files
  GET /cdn/SHA256   the bytes, honouring Range (206); a test knob cuts the first transfer
Gated repos answer 401 without "Authorization: Bearer good" and 403 with another token.
Checks: the cache layout (blobs, snapshots symlinks, refs/main), a second pull downloads
nothing, an interrupted download resumes with a Range request, a corrupt blob is refused
and deleted, 401/403/404 messages, a full disk (RLIMIT_FSIZE) message, a safetensors
folder, -m hf:// loading a tiny GGUF, HF_TOKEN and the token file.
"""
import hashlib
import http.server
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tally import check, failed, summary  # noqa: E402

HERD = sys.argv[1]
COMMIT = "0123456789abcdef0123456789abcdef01234567"



class Hub:
    def __init__(self):
        self.repos = {}   # "org/name" -> {"files": {name: bytes}, "gated": bool}
        self.log = []     # (path, range header)
        self.cut_next = 0  # bytes after which the next /cdn/ transfer is cut
        self.corrupt = set()

    def add(self, repo, files, gated=False):
        self.repos[repo] = {"files": files, "gated": gated}

    def blob(self, sha):
        for r in self.repos.values():
            for data in r["files"].values():
                if hashlib.sha256(data).hexdigest() == sha:
                    return data
        return None


HUB = Hub()


def lfs(name, data):
    return name.endswith((".gguf", ".safetensors")) or len(data) > 1000


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def auth(self, repo):
        if not HUB.repos[repo]["gated"]:
            return None
        a = self.headers.get("Authorization")
        if a is None:
            return 401
        return None if a == "Bearer good" else 403

    def do_GET(self):
        path = self.path.split("?")[0]
        HUB.log.append((path, self.headers.get("Range")))
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and len(parts) == 6:
            repo = parts[2] + "/" + parts[3]
            if repo not in HUB.repos:
                return self.send(404, b'{"error": "Repository not found"}')
            code = self.auth(repo)
            if code:
                return self.send(code, b'{"error": "gated"}')
            sib = []
            for name, data in HUB.repos[repo]["files"].items():
                s = {"rfilename": name, "size": len(data),
                     "blobId": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()}
                if lfs(name, data):
                    s["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
                                "pointerSize": 134}
                sib.append(s)
            return self.send(200, json.dumps({"id": repo, "sha": COMMIT,
                                              "siblings": sib}).encode())
        if len(parts) >= 5 and parts[2] == "resolve":
            repo = parts[0] + "/" + parts[1]
            name = "/".join(parts[4:])
            if repo not in HUB.repos or name not in HUB.repos[repo]["files"]:
                return self.send(404, b"Entry not found", [("X-Error-Code", "EntryNotFound")])
            code = self.auth(repo)
            if code:
                return self.send(code, b"gated")
            data = HUB.repos[repo]["files"][name]
            sha = hashlib.sha256(data).hexdigest()
            if lfs(name, data):
                return self.send(302, b"", [("Location", "/cdn/" + sha),
                                            ("X-Repo-Commit", COMMIT),
                                            ("X-Linked-Etag", '"%s"' % sha),
                                            ("X-Linked-Size", str(len(data))),
                                            ("ETag", '"%s"' % sha)])
            return self.send(200, data, [("X-Repo-Commit", COMMIT), ("ETag", '"x"')])
        if len(parts) == 2 and parts[0] == "cdn":
            data = HUB.blob(parts[1])
            if data is None:
                return self.send(404)
            if parts[1] in HUB.corrupt:
                data = data[:-1] + bytes([data[-1] ^ 1])
            start = 0
            rng = self.headers.get("Range")
            if rng and rng.startswith("bytes=") and rng.endswith("-"):
                start = int(rng[6:-1])
            body = data[start:]
            self.send_response(206 if start else 200)
            self.send_header("Content-Length", str(len(body)))
            if start:
                self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1,
                                                                       len(data)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if HUB.cut_next:
                self.wfile.write(body[:HUB.cut_next])
                HUB.cut_next = 0
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)
            return
        self.send(404)


def herd(args, env, limit_fsize=None):
    def pre():
        if limit_fsize is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_fsize, limit_fsize))
    return subprocess.run([HERD] + args, capture_output=True, text=True, env=env,
                          preexec_fn=pre, timeout=120)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client hanging up mid-transfer is part of the test


def main():
    srv = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    port = srv.server_address[1]
    big = os.urandom(300_000)
    HUB.add("acme/tiny-GGUF", {"tiny.Q8_0.gguf": big, "README.md": b"# tiny\n"})
    HUB.add("acme/two", {"a.Q4_0.gguf": os.urandom(2000), "b.Q8_0.gguf": os.urandom(2000)})
    HUB.add("meta-llama/Gated", {"model.gguf": os.urandom(5000)}, gated=True)
    HUB.add("acme/folder", {"config.json": b'{"a": 1}', "model.safetensors": os.urandom(4000),
                            "tokenizer.json": b"{}", "sub/extra.bin": b"x", "notes.txt": b"n"})
    tiny = os.environ.get("HERD_TINY_GGUF")
    if tiny and os.path.exists(tiny):
        HUB.add("acme/runnable", {"m.gguf": open(tiny, "rb").read()})
    with tempfile.TemporaryDirectory() as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        env.update(HOME=home, HF_ENDPOINT="http://127.0.0.1:%d" % port)
        cache = os.path.join(home, ".cache", "huggingface", "hub")
        d = os.path.join(cache, "models--acme--tiny-GGUF")
        sha = hashlib.sha256(big).hexdigest()

        HUB.cut_next = 100_000
        p = herd(["pull", "acme/tiny-GGUF"], env)
        check(p.returncode != 0 and "resume" in p.stderr, "a cut transfer fails and says to "
              "resume: %s" % p.stderr.strip()[-160:])
        part = os.path.join(d, "blobs", sha + ".incomplete")
        check(os.path.exists(part) and 0 < os.path.getsize(part) < len(big),
              "the partial blob is kept")
        HUB.log.clear()
        p = herd(["pull", "acme/tiny-GGUF"], env)
        want = os.path.join(d, "snapshots", COMMIT, "tiny.Q8_0.gguf")
        check(p.returncode == 0 and p.stdout.strip() == want, "pull prints the snapshot path "
              "(%s)" % (p.stdout.strip() or p.stderr.strip()[-200:]))
        check(any(r and r.startswith("bytes=") and r != "bytes=0-" for _, r in HUB.log),
              "the second pull resumed with a Range request")
        check(os.path.islink(want) and os.readlink(want) == "../../blobs/" + sha,
              "snapshot symlink to ../../blobs/SHA256")
        check(open(want, "rb").read() == big, "the file's bytes are the hub's")
        check(open(os.path.join(d, "refs", "main")).read() == COMMIT, "refs/main is the commit")
        check(not os.path.exists(os.path.join(d, "snapshots", COMMIT, "README.md")),
              "only the GGUF is fetched")
        check("%" in p.stderr, "progress lines on a non-terminal")
        HUB.log.clear()
        p = herd(["pull", "hf://acme/tiny-GGUF:tiny.Q8_0.gguf"], env)
        check(p.returncode == 0 and not any(x.startswith("/cdn/") for x, _ in HUB.log),
              "a second pull downloads nothing (%s)" % p.stderr.strip()[-100:])

        p = herd(["pull", "acme/two"], env)
        check(p.returncode != 0 and "a.Q4_0.gguf" in p.stderr and "acme/two:FILE" in p.stderr,
              "several GGUF files: asks for one by name")
        p = herd(["pull", "acme/two:b.Q8_0.gguf"], env)
        check(p.returncode == 0 and p.stdout.strip().endswith("/b.Q8_0.gguf"), "ORG/REPO:FILE")

        p = herd(["pull", "meta-llama/Gated"], env)
        check(p.returncode != 0 and "401" in p.stderr and "accept the licence at http://127.0.0.1"
              ":%d/meta-llama/Gated, then set HF_TOKEN" % port in p.stderr,
              "401: %s" % p.stderr.strip())
        p = herd(["pull", "meta-llama/Gated"], dict(env, HF_TOKEN="bad"))
        check(p.returncode != 0 and "403" in p.stderr and "no access" in p.stderr,
              "403 with a token: %s" % p.stderr.strip())
        p = herd(["pull", "meta-llama/Gated"], dict(env, HF_TOKEN="good"))
        check(p.returncode == 0, "HF_TOKEN opens a gated repo")
        os.makedirs(os.path.join(home, ".cache", "huggingface"), exist_ok=True)
        with open(os.path.join(home, ".cache", "huggingface", "token"), "w") as f:
            f.write("good\n")
        p = herd(["pull", "meta-llama/Gated"], env)
        check(p.returncode == 0, "~/.cache/huggingface/token is read")
        os.remove(os.path.join(home, ".cache", "huggingface", "token"))

        p = herd(["pull", "acme/nothing"], env)
        check(p.returncode != 0 and "404" in p.stderr and "not found" in p.stderr,
              "404 repo: %s" % p.stderr.strip())
        p = herd(["pull", "acme/tiny-GGUF:missing.gguf"], env)
        check(p.returncode != 0 and "missing.gguf" in p.stderr, "missing file: %s" %
              p.stderr.strip())
        p = herd(["pull", "not-a-repo"], env)
        check(p.returncode != 0 and "ORG/REPO" in p.stderr, "bad spec")

        HUB.add("acme/corrupt", {"c.gguf": os.urandom(3000)})
        HUB.corrupt.add(hashlib.sha256(HUB.repos["acme/corrupt"]["files"]["c.gguf"]).hexdigest())
        p = herd(["pull", "acme/corrupt"], env)
        cdir = os.path.join(cache, "models--acme--corrupt", "blobs")
        check(p.returncode != 0 and "sha256" in p.stderr and os.listdir(cdir) == [],
              "a corrupt download is refused and deleted: %s" % p.stderr.strip()[-120:])

        HUB.add("acme/huge", {"h.gguf": os.urandom(200_000)})
        p = herd(["pull", "acme/huge"], env, limit_fsize=50_000)
        check(p.returncode != 0 and "disk full" in p.stderr and "resume" in p.stderr,
              "disk full: %s" % p.stderr.strip()[-200:])

        p = herd(["pull", "acme/folder"], env)
        snap = os.path.join(cache, "models--acme--folder", "snapshots", COMMIT)
        got = sorted(os.listdir(snap)) if os.path.isdir(snap) else []
        check(p.returncode == 0 and p.stdout.strip() == snap and
              got == ["config.json", "model.safetensors", "tokenizer.json"],
              "a safetensors repo gives its folder: %s" % got)

        if "acme/runnable" in HUB.repos:
            q = herd(["generate", "-m", "hf://acme/runnable", "--tokens", "1,2", "-n", "2",
                      "--temp", "0"], env)
            check(q.returncode == 0 and "hf://acme/runnable is " in q.stderr,
                  "-m hf:// loads the pulled model: %s" % q.stderr.strip()[-200:])
    srv.shutdown()
    return summary()


if __name__ == "__main__":
    sys.exit(main())
