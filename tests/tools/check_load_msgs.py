#!/usr/bin/env python3
"""check_load_msgs.py - what a person sees while a model loads or fails to (issue 13).

  - a model file over 1 GB: herd says it is loading it and how big it is (the weights are
    read through once with a percentage on a terminal), and a file that is not a model
    fails with a message naming the file and what was expected;
  - a missing file: the message names it and what -m takes;
  - herd --version prints the version.
The 1 GB file is sparse (no disk used). No time is asserted.
"""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tally import check, failed, summary  # noqa: E402

HERD = sys.argv[1]



with tempfile.TemporaryDirectory() as d:
    big = os.path.join(d, "big.gguf")
    with open(big, "wb") as f:
        f.truncate(1_050_000_000)
    p = subprocess.run([HERD, "generate", "-m", big, "-p", "hi"], capture_output=True,
                       text=True, timeout=300)
    check(p.returncode != 0 and "herd: loading %s (1.1 GB)" % big in p.stderr,
          "a large file is announced with its size")
    check(big in p.stderr.splitlines()[-1] and "GGUF" in p.stderr.splitlines()[-1],
          "a file that is not a model: %s" % p.stderr.splitlines()[-1])
    p = subprocess.run([HERD, "run", "-m", os.path.join(d, "nothere.gguf"), "-p", "hi"],
                       capture_output=True, text=True, timeout=60)
    check(p.returncode != 0 and "nothere.gguf: no such file or folder (-m takes a GGUF file"
          in p.stderr, "a missing file: %s" % p.stderr.strip())
p = subprocess.run([HERD, "--version"], capture_output=True, text=True)
check(p.returncode == 0 and p.stdout.startswith("herd "), "herd --version: %s" %
      p.stdout.strip())
sys.exit(summary())
