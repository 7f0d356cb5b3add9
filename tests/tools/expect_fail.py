#!/usr/bin/env python3
"""expect_fail.py - runs a command that must fail cleanly on bad input.

Usage: expect_fail.py REGEX -- COMMAND ARGS...
Passes when COMMAND exits with a status from 1 to 125 (not killed by a signal, not a crash),
one line of its stderr matches REGEX (case-insensitive: the one-line reason names the
tensor / field / value; the command's own path arguments are masked first, so a match on
a file's name does not count), and stderr shows no sanitizer report.
"""
import re
import subprocess
import sys


def main():
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    pattern = re.compile(sys.argv[1], re.IGNORECASE)
    cmd = sys.argv[3:]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    err = p.stderr.decode("utf-8", "replace")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    print("command: %s" % " ".join(cmd))
    print("exit: %d" % p.returncode)
    print("stderr: %s" % err.strip()[-1500:])
    ok = True
    if p.returncode == 0:
        print("FAIL: the command succeeded on bad input")
        ok = False
    elif p.returncode < 0 or p.returncode > 125:
        print("FAIL: the command crashed or was killed (status %d)" % p.returncode)
        ok = False
    if "Sanitizer" in err or "runtime error:" in err:
        print("FAIL: sanitizer report")
        ok = False
    # The reason must say what is wrong, not merely echo a path given on the command line
    # (the bad files' names describe their defect).
    paths = sorted((a for a in cmd[1:] if "/" in a), key=len, reverse=True)

    def unpathed(ln):
        for a in paths:
            ln = ln.replace(a, "<arg>")
        return ln
    if not any(pattern.search(unpathed(ln)) for ln in lines):
        print("FAIL: no stderr line matches /%s/" % sys.argv[1])
        ok = False
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
