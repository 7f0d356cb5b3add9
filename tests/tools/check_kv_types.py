#!/usr/bin/env python3
"""check_kv_types.py - the KV cache types against the numpy reference on one tiny model.

For --kv-type f32, f16 and q8_0: `herd logits --all` on a fixed prompt, compared with
scripts/reference_llama.py (float32, Meta's math). Each cache type has its own bound,
relative to max|ref|: f32 1e-4 (only summation order differs), f16 5e-3, q8_0 5e-2 (the
cache rounding: 2^-11 and ~2^-8 relative per element, a few layers deep). The f16 and q8_0
errors must also be larger than the f32 one — proof that the option reaches the cache.

usage: check_kv_types.py HERD MODEL_DIR   (MODEL_DIR/hf and MODEL_DIR/model.gguf)
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REF = os.path.join(HERE, "..", "..", "scripts", "reference_llama.py")
TOKENS = "5,17,200,3,99,42,7,311,250,8,64,128,1,2,3,4,5,6,7,8"
BOUND = {"f32": 1e-4, "f16": 5e-3, "q8_0": 5e-2}


def main():
    herd, model = sys.argv[1], sys.argv[2]
    n = len(TOKENS.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        ref_path = os.path.join(tmp, "ref.bin")
        subprocess.run([sys.executable, REF, os.path.join(model, "hf"), "--tokens", TOKENS,
                        "--all", "-o", ref_path], check=True, stdout=subprocess.DEVNULL)
        ref = np.fromfile(ref_path, np.float32).reshape(n, -1)
        scale = max(1.0, float(np.abs(ref).max()))
        err, bad = {}, 0
        for kv in ("f32", "f16", "q8_0"):
            out = os.path.join(tmp, kv + ".bin")
            subprocess.run([herd, "logits", "-m", os.path.join(model, "model.gguf"),
                            "--tokens", TOKENS, "--all", "--kv-type", kv, "-o", out],
                           check=True)
            got = np.fromfile(out, np.float32).reshape(n, -1)
            err[kv] = float(np.abs(got - ref).max()) / scale
            ok = err[kv] <= BOUND[kv]
            bad += not ok
            print("measured: kv %s: max|dlogit| %.3g of max|ref| (bound %g) %s" %
                  (kv, err[kv], BOUND[kv], "ok" if ok else "FAIL"))
        for kv in ("f16", "q8_0"):
            if not err[kv] > err["f32"]:
                print("FAIL: kv %s is no less exact than f32: the option did not apply" % kv)
                bad += 1
    print("%d passed, %d failed" % (5 - bad, bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
