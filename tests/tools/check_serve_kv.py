#!/usr/bin/env python3
"""check_serve_kv.py - `herd serve` takes the options every model command shares.

-t, -c/--ctx and --kv-type are parsed once (tools/cli.c) for generate, logits, run, bench and
serve. Here, on tiny models (tests/mpi/make_mpi_models.py):
  - serve --kv-type q8_0 -c 256 -t 1 answers a completion, and its start line names a q8_0
    cache of 256 positions that is smaller than the f32 one of the same shape (proof that the
    option reached the context, not only the parser);
  - serve --kv-type q8_0 on a model whose head_dim (16) is not a whole number of Q8_0 blocks
    fails at start with the library's reason, as logits does.

usage: check_serve_kv.py HERD MODELS   (MODELS/mpi_k_f32/hf, MODELS/mpi_a_f32/hf)
"""
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "server"))
import common  # noqa: E402


def kv_line(srv):
    m = re.search(r"context (\d+) per slot, KV cache (\w+) ([\d.]+) MiB", srv.log[0])
    if not m:
        raise AssertionError("no KV cache in the start line: " + srv.log[0])
    return int(m.group(1)), m.group(2), float(m.group(3))


def main():
    herd, models = sys.argv[1], sys.argv[2]
    good = os.path.join(models, "mpi_k_f32", "hf")
    odd = os.path.join(models, "mpi_a_f32", "hf")
    if not os.path.isdir(good) or not os.path.isdir(odd):
        common.skip(f"{models} lacks the tiny models (kvcache_make fixture)")
    bad = 0
    sizes = {}
    for kv in ("q8_0", "f32"):
        srv = common.Server(herd, good, "--parallel", 1, "-c", 256, "-t", 1, "--kv-type", kv)
        try:
            n_ctx, name, mib = kv_line(srv)
            body = {"prompt": "hello", "max_tokens": 4, "temperature": 0}
            status, _, text = srv.request("POST", "/v1/completions", body)
        finally:
            rc = srv.stop()
        sizes[kv] = mib
        ok = status == 200 and n_ctx == 256 and name == kv and rc == 0
        bad += not ok
        print("serve --kv-type %s: HTTP %d, context %d, KV %s %.3f MiB, exit %d: %s" %
              (kv, status, n_ctx, name, mib, rc, "ok" if ok else "FAIL " + text[:200].decode()))
    if not sizes["q8_0"] < sizes["f32"]:
        print("FAIL: the q8_0 cache is not smaller than the f32 one: %s" % sizes)
        bad += 1
    r = subprocess.run([herd, "serve", "-m", odd, "--port", "0", "--kv-type", "q8_0"],
                       capture_output=True, text=True, timeout=120)
    ok = r.returncode != 0 and "32" in r.stderr and "head" in r.stderr
    bad += not ok
    print("serve --kv-type q8_0 with head_dim 16: exit %d, %r: %s" %
          (r.returncode, r.stderr.strip()[-200:], "ok" if ok else "FAIL"))
    print("%d failed" % bad)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
