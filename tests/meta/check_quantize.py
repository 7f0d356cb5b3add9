#!/usr/bin/env python3
"""check_quantize.py - `herd quantize` reads Meta's original folder as input: the Q8_0 GGUF
written from params.json + consolidated.NN.pth holds the same tensors, byte for byte, as the
one written from the HF folder of the same weights (the HF q/k permutation undone).

Usage: check_quantize.py HERD META_DIR HF_DIR WORK
"""
import os
import subprocess
import sys

import numpy as np


def main():
    herd, meta, hf, work = sys.argv[1:5]
    try:
        import gguf
    except ImportError:
        print("gguf package missing; skipped")
        return 77
    os.makedirs(work, exist_ok=True)
    out = {}
    for tag, src in (("meta", meta), ("hf", hf)):
        out[tag] = os.path.join(work, tag + "_q8_0.gguf")
        p = subprocess.run([herd, "quantize", src, out[tag], "--type", "q8_0", "-t", "1"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if p.returncode != 0:
            print(p.stdout.decode())
            return 1
    a, b = gguf.GGUFReader(out["meta"]), gguf.GGUFReader(out["hf"])
    tb = {t.name: t for t in b.tensors}
    if sorted(tb) != sorted(t.name for t in a.tensors):
        print("FAIL: tensor names differ")
        return 1
    for t in a.tensors:
        u = tb[t.name]
        if t.tensor_type != u.tensor_type or not np.array_equal(np.asarray(t.data), np.asarray(u.data)):
            print("FAIL: tensor %s differs" % t.name)
            return 1
    print("PASS: %d tensors identical (meta -> q8_0 == hf -> q8_0)" % len(a.tensors))
    return 0


if __name__ == "__main__":
    sys.exit(main())
