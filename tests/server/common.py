"""common.py - what the server tests and the server bench share: a tiny test model made by
tests/models/make_model.py, and a `herd serve` process on a free loopback port.

Exit code 77 means "skipped" to CTest (SKIP_RETURN_CODE).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SKIP = 77


def herd_args():
    """--herd BINARY --work DIR, the arguments every server test takes; DIR is created."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--herd", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    return a


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(SKIP)


# The tests' tally: check() counts, summary() prints the closing "N passed, N failed" line
# CTest's output is read by and gives the exit code.
counts = {"passed": 0, "failed": 0}


def check(cond, what):
    if cond:
        counts["passed"] += 1
    else:
        counts["failed"] += 1
        print(f"FAIL: {what}")


def failed():
    return counts["failed"]


def summary():
    print(f"{counts['passed']} passed, {counts['failed']} failed")
    return 1 if counts["failed"] else 0


def shared_data():
    d = os.environ.get("HERD_SHARED_DATA") or os.path.join(ROOT, "..", "shared", "data")
    return d if os.path.isfile(os.path.join(d, "llama3", "tokenizer.json")) else None


def make_model(work, config):
    """Writes tests/models/make_model.py's CONFIG into work (once); returns its HF folder."""
    out = os.path.join(work, "models")
    hf = os.path.join(out, config, "hf")
    if not os.path.isfile(os.path.join(hf, "config.json")):
        try:
            import numpy  # noqa: F401
            import gguf  # noqa: F401
        except ImportError as e:
            skip(f"make_model.py needs numpy and gguf ({e})")
        script = os.path.join(ROOT, "tests", "models", "make_model.py")
        if not os.path.isfile(script):
            skip(f"{script} is missing")
        r = subprocess.run([sys.executable, script, out, "--config", config],
                           capture_output=True, text=True)
        if r.returncode != 0 or not os.path.isfile(os.path.join(hf, "config.json")):
            skip(f"make_model.py could not write {config}: {r.stderr.strip()[-300:]}")
    return hf


def test_model(work):
    """The real-vocabulary tiny model when ../shared/data has the Llama 3 tokenizer (real
    multi-byte tokens, the real chat specials), else the 384-token one."""
    if shared_data():
        return make_model(work, "realvocab_tied_bf16"), True
    print("note: ../shared/data/llama3/tokenizer.json absent; using the 384-token model")
    return make_model(work, "gqa2_untied_f32"), False


def ban_eos(model_dir):
    """logit_bias banning the model's end-of-generation ids (generation_config.json)."""
    with open(os.path.join(model_dir, "generation_config.json")) as f:
        eos = json.load(f).get("eos_token_id", [])
    return {str(i): -100 for i in (eos if isinstance(eos, list) else [eos])}


class Server:
    """herd serve on 127.0.0.1 with --port 0; the port is read from its first stderr line."""

    def __init__(self, herd, model, *args, api_key=None, env=None):
        cmd = [herd, "serve", "-m", model, "--port", "0", *map(str, args)]
        # the tests name their model "m"; a server answers 404 to any other model name
        if "--alias" not in cmd:
            cmd += ["--alias", "m"]
        if api_key:
            cmd += ["--api-key", api_key]
        self.api_key = api_key
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
        self.log = []
        first = self.proc.stderr.readline()
        self.log.append(first)
        m = re.search(r"http://(\[[^\]]+\]|[^:/\s]+):(\d+)", first)
        for _ in range(20):  # a large model logs its loading first
            if m or not (first.startswith("herd: load") or "memory plan" in first):
                break
            first = self.proc.stderr.readline()
            self.log.append(first)
            m = re.search(r"http://(\[[^\]]+\]|[^:/\s]+):(\d+)", first)
        if not m:
            rest = self.proc.stderr.read() if self.proc.poll() is not None else ""
            self.proc.kill()
            raise RuntimeError(f"herd serve did not start: {first}{rest}")
        self.base = f"http://{m.group(1)}:{m.group(2)}"
        self.host, self.port = m.group(1).strip("[]"), int(m.group(2))
        threading.Thread(target=self._drain, daemon=True).start()
        for _ in range(100):
            try:
                self.get("/health")
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("herd serve did not answer /health")

    def _drain(self):
        for line in self.proc.stderr:
            self.log.append(line)

    def request(self, method, path, body=None, headers=None, auth=True, timeout=60):
        h = dict(headers or {})
        if auth and self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(self.base + path, data=data, headers=h, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def get(self, path, auth=True):
        return self.request("GET", path, auth=auth)

    def health(self):
        s, _, b = self.get("/health", auth=False)
        assert s == 200, (s, b)
        return json.loads(b)

    def wait_idle(self, timeout=5.0):
        """True once no slot is busy and nothing is queued."""
        end = time.time() + timeout
        while time.time() < end:
            h = self.health()
            if h["slots_processing"] == 0 and h["queue"] == 0:
                return True
            time.sleep(0.02)
        return False

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        """SIGTERM; returns the exit code (0 = clean shutdown)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return -9
        return self.proc.returncode


def sse_events(resp):
    """Yields each `data:` payload of a server-sent event stream (http.client response)."""
    buf = b""
    while True:
        chunk = resp.read1(65536) if hasattr(resp, "read1") else resp.read(1)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            ev, buf = buf.split(b"\n\n", 1)
            for line in ev.split(b"\n"):
                if line.startswith(b"data: "):
                    yield line[6:]
