#!/usr/bin/env python3
"""run_pty.py HERD WORKDIR - end-to-end test of `herd run` in a real terminal.

herd runs on the slave side of a pseudo-terminal (Python's pty module: the same kind of
terminal tmux or xterm gives it, with line discipline and Ctrl-C turned into SIGINT), on the
tiny random-weight model with the real Llama 3 tokenizer (tests/models/make_model.py
--config realvocab_tied_bf16). No terminal server runs beside the test, so nothing outside
this process can take the terminal away (a tmux-based version of this test lost its tmux
server on the CI machine).

Checks: one-shot -p and piped stdin answer once and exit 0; interactively: the banner, an
answer with its tokens/s line, /help, /system, /reset, a multi-line message, Ctrl-C stopping
a long answer without ending the program, Ctrl-C at the prompt, the context-overflow notice,
/exit with status 0. Exits 77 (skip) without numpy+gguf, the shared tokenizer.json, or a pty.
"""
import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time

SKIP = 77
ANSI = re.compile(rb"\x1b(\[[0-9;?]*[ -/]*[@-~]|\][^\x07]*\x07|[()][0-9A-Za-z]|[=>])")


def skip(why):
    print("SKIP: " + why)
    sys.exit(SKIP)


def fail(why):
    print("FAIL: " + why)
    sys.exit(1)


class Term:
    """herd on a pseudo-terminal; everything it writes (stdout and stderr) is kept."""

    def __init__(self, argv, rows=50, cols=160):
        self.argv = argv
        try:
            pid, fd = pty.fork()
        except OSError as e:
            skip("no pseudo-terminal here: %s" % e)
        if pid == 0:
            os.environ["TERM"] = "xterm"
            try:
                os.execv(argv[0], argv)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.raw = b""
        self.status = None

    def pump(self, secs):
        end = time.monotonic() + secs
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            r, _, _ = select.select([self.fd], [], [], left)
            if not r:
                return
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:  # EIO: the slave side is closed, herd has exited
                chunk = b""
            if not chunk:
                self.reap(5)
                return
            self.raw += chunk

    def text(self):
        t = ANSI.sub(b"", self.raw).replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        return t.decode("utf-8", "replace")

    def count(self, pat):
        return len(re.findall(pat, self.text(), re.M))

    def wait_for(self, pat, secs, before=0):
        end = time.monotonic() + secs
        while time.monotonic() < end:
            if self.count(pat) > before:
                return
            if self.status is not None:
                break
            self.pump(0.2)
        if self.count(pat) > before:
            return
        print("---- terminal ----\n" + self.text()[-6000:] + "\n------------------")
        fail("%s: timed out waiting for %r" % (" ".join(self.argv[1:4]), pat))

    def wait_after(self, marker, pat, secs):
        """Wait until PAT shows after the last MARKER."""
        end = time.monotonic() + secs
        while time.monotonic() < end and self.status is None:
            t = self.text()
            if re.search(pat, t[t.rfind(marker):], re.M):
                return
            self.pump(0.2)
        print("---- terminal ----\n" + self.text()[-6000:] + "\n------------------")
        fail("timed out waiting for %r after %r" % (pat, marker))

    def send(self, line):
        os.write(self.fd, line.encode() + b"\r")
        self.pump(0.05)

    def key(self, b):
        os.write(self.fd, b)

    def reap(self, secs):
        end = time.monotonic() + secs
        while self.status is None and time.monotonic() < end:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = st
                break
            time.sleep(0.05)
        return self.status

    def close(self):
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.reap(5)
        os.close(self.fd)


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    herd, work = os.path.abspath(sys.argv[1]), sys.argv[2]
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    shared = os.environ.get("HERD_SHARED_DATA") or os.path.join(here, "..", "..", "shared", "data")
    try:
        import numpy  # noqa: F401
        import gguf  # noqa: F401
    except ImportError:
        skip("python3 with numpy and gguf needed to make the tiny model")
    if not os.path.isfile(os.path.join(shared, "llama3", "tokenizer.json")):
        skip(shared + "/llama3/tokenizer.json missing (Llama 3 tokenizer)")
    os.makedirs(work, exist_ok=True)
    model = os.path.join(work, "realvocab_tied_bf16", "model.gguf")
    if not os.path.isfile(model):
        env = dict(os.environ, HERD_SHARED_DATA=shared)
        r = subprocess.run([sys.executable, os.path.join(here, "models", "make_model.py"), work,
                            "--config", "realvocab_tied_bf16"], env=env, capture_output=True)
        if r.returncode != 0 or not os.path.isfile(model):
            skip("make_model.py could not write the tiny model: " + r.stderr.decode()[-300:])

    # --- one-shot use: no terminal
    base = [herd, "run", "-m", model]
    r1 = subprocess.run(base + ["-p", "Hello", "-n", "8", "--seed", "1"], capture_output=True,
                        stdin=subprocess.DEVNULL, timeout=120)
    if r1.returncode != 0:
        fail("run -p: " + r1.stderr.decode())
    if b"tokens/s" not in r1.stderr:
        fail("run -p: no tokens/s line on stderr")
    if not r1.stdout.strip():
        fail("run -p: empty answer")
    r2 = subprocess.run(base + ["-p", "Hello", "-n", "8", "--seed", "1"], capture_output=True,
                        stdin=subprocess.DEVNULL, timeout=120)
    if r2.stdout != r1.stdout:
        fail("run -p: same seed, different answers")
    r3 = subprocess.run(base + ["-n", "8", "--seed", "2"], input=b"piped question\n",
                        capture_output=True, timeout=120)
    if r3.returncode != 0 or not r3.stdout.strip():
        fail("run with piped stdin: rc %d, %s" % (r3.returncode, r3.stderr.decode()))

    # --- interactive
    t = Term(base + ["--ctx", "200", "-n", "24", "--seed", "3"])
    t.wait_for("chatting with", 60)
    t.wait_for("^>>>", 30)
    n = t.count("tokens/s")
    t.send("Hello, who are you?")
    t.wait_for("tokens/s", 60, n)
    n = t.count("/reset ")
    t.send("/help")
    t.wait_for("/reset ", 30, n)
    t.send("/system You are a pirate.")
    t.wait_for("system prompt set", 30)
    t.send("/reset")
    t.wait_for(r"conversation cleared\)", 30)
    # multi-line: a continued line, then a """ block
    n = t.count("tokens/s")
    t.send("first line \\")
    t.wait_for(r"^\.\.\.", 30)
    t.send("second line")
    t.wait_for("tokens/s", 60, n)
    n = t.count("tokens/s")
    for line in ('"""', "block one", "block two", '"""'):
        t.send(line)
    t.wait_for("tokens/s", 60, n)
    t.close()

    # Ctrl-C stops a long answer, not the program; Ctrl-C at the prompt does not end it either
    t = Term(base + ["--ctx", "4096", "-n", "0", "--seed", "4"])
    t.wait_for("^>>>", 60)
    t.send("Write a very long story.")
    t.pump(1.0)
    t.key(b"\x03")
    t.wait_for(r"stopped \(Ctrl-C\)", 30)
    t.wait_after("stopped (Ctrl-C)", "^>>>", 30)
    if t.reap(0.5) is not None:
        fail("Ctrl-C ended the program")
    t.key(b"\x03")
    t.pump(0.5)
    if t.reap(0.5) is not None:
        fail("Ctrl-C at the prompt ended the program")
    t.close()

    # the context overflows: oldest turns are dropped, and stderr says so
    t = Term(base + ["--ctx", "160", "-n", "16", "--seed", "5", "--system", "Short system prompt."])
    t.wait_for("^>>>", 60)
    long = ("Please tell me about the history of the city of Rome, its emperors, its roads, "
            "its aqueducts and its art.")
    for _ in range(4):
        n = t.count("tokens/s")
        t.send(long)
        t.wait_for("tokens/s", 60, n)
    if t.count("outgrew the context") == 0:
        print(t.text()[-6000:])
        fail("no context-overflow notice after 4 long turns in 160 positions")
    t.send("/exit")
    end = time.monotonic() + 30
    while t.status is None and time.monotonic() < end:
        t.pump(0.2)
        t.reap(0.1)
    st = t.status
    t.close()
    if st is None:
        fail("/exit did not end the program within 30 s")
    if not os.WIFEXITED(st) or os.WEXITSTATUS(st) != 0:
        fail("/exit: status %r" % st)
    print("run_pty: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
