#!/usr/bin/env python3
"""test_quantize_gguf.py MODELS OUT - reads herd quantize's outputs back with the gguf Python
package, an implementation independent of herd's reader and dequantizers:

  - every file opens with gguf.GGUFReader and holds the reference model's tensors;
  - each tensor's type is the one llama.cpp's llama_tensor_get_type picks (written again
    here from llama.cpp's rules, not from herd's code);
  - each tensor dequantized by gguf.quants matches the unquantized reference within a
    per-type NMSE bound, so the block bytes mean what GGUF says they mean;
  - general.file_type names the mix, and the tokenizer is copied unchanged.

Files come from test_quantize (MODELS/<name>/model.gguf -> OUT/<name>-<mix>.gguf).
"""
import os
import sys

import numpy as np

try:
    import gguf
    from gguf.quants import dequantize
except ImportError:
    print("skip: the gguf Python package is not installed")
    sys.exit(77)

T = gguf.GGMLQuantizationType
MIXES = {"q8_0": (7, T.Q8_0), "q4_0": (2, T.Q4_0), "q4_k_m": (15, T.Q4_K), "q6_k": (18, T.Q6_K)}
# (not realvocab_tied_bf16: GGUFReader takes ~30 s per file on its 280k merges; the C test
# covers it)
MODELS = ["gqa2_untied_f32", "gqa4_tied_bf16", "gqa8_untied_f16", "headdim_sharded_f32"]
# NMSE of one tensor vs its unquantized values, uniform random weights (bounds ~5x the
# errors these formats give on them)
BOUND = {T.Q8_0: 2e-4, T.Q6_K: 2e-3, T.Q5_0: 1e-2, T.Q4_K: 2e-2, T.Q4_0: 4e-2, T.F32: 0.0}
BLOCK = {T.Q8_0: 32, T.Q4_0: 32, T.Q5_0: 32, T.Q5_1: 32, T.Q4_K: 256, T.Q6_K: 256}


def more_bits(il, n):
    return il < n // 8 or il >= 7 * n // 8 or (il - n // 8) % 3 == 2


def expected_type(name, shape_ne, base, mix, n_layers, tied, src_type):
    if len(shape_ne) < 2 or not name.endswith("weight") or "_norm.weight" in name:
        return src_type
    ne0 = shape_ne[0]
    t = base
    if name == "output.weight" or (tied and name == "token_embd.weight"):
        if ne0 % BLOCK[base]:
            t = T.Q8_0
        elif base != T.Q8_0:
            t = T.Q6_K
    elif mix == "q4_k_m":
        parts = name.split(".")
        if parts[0] == "blk" and parts[2] in ("attn_v", "ffn_down") and \
                more_bits(int(parts[1]), n_layers):
            t = T.Q6_K
    if ne0 % BLOCK[t]:
        t = {T.Q4_K: T.Q5_0, T.Q6_K: T.Q8_0}.get(t, t)
        if ne0 % BLOCK.get(t, 1):
            t = T.F16
    return t


def values(t):
    return dequantize(np.asarray(t.data), t.tensor_type).astype(np.float64).reshape(-1)


def field(r, key):
    f = r.fields.get(key)
    return None if f is None else f.contents()


def main():
    models, out = sys.argv[1], sys.argv[2]
    npass = nfail = 0

    def check(cond, what):
        nonlocal npass, nfail
        if cond:
            npass += 1
        else:
            nfail += 1
            print("FAIL", what)

    for name in MODELS:
        ref_path = os.path.join(models, name, "model.gguf")
        if not os.path.exists(ref_path):
            print("skipping", name, "(not made)")
            continue
        ref = gguf.GGUFReader(ref_path)
        rt = {t.name: t for t in ref.tensors}
        n_layers = int(field(ref, "llama.block_count"))
        tied = "output.weight" not in rt
        for mix, (ftype, base) in MIXES.items():
            path = os.path.join(out, "%s-%s.gguf" % (name, mix))
            if not os.path.exists(path):
                check(False, "%s: missing (test_quantize did not write it)" % path)
                continue
            r = gguf.GGUFReader(path)
            check(field(r, "general.file_type") == ftype, "%s: general.file_type" % path)
            check(field(r, "general.architecture") == "llama", "%s: architecture" % path)
            check(field(r, "tokenizer.ggml.tokens") == field(ref, "tokenizer.ggml.tokens"),
                  "%s: tokens differ" % path)
            check(sorted(t.name for t in r.tensors) == sorted(rt), "%s: tensor names" % path)
            for t in r.tensors:
                src = rt.get(t.name)
                if src is None:
                    continue
                want = expected_type(t.name, list(src.shape), base, mix, n_layers, tied,
                                     src.tensor_type)
                check(t.tensor_type == want, "%s: %s is %s, want %s" %
                      (path, t.name, t.tensor_type.name, want.name))
                check(list(t.shape) == list(src.shape), "%s: %s shape" % (path, t.name))
                a, b = values(src), values(t)
                if a.shape != b.shape:
                    check(False, "%s: %s size" % (path, t.name))
                    continue
                e = float(np.sum((a - b) ** 2) / max(np.sum(a * a), 1e-30))
                bound = BOUND.get(t.tensor_type, 1e-5)
                check(e <= bound, "%s: %s (%s) NMSE %.2e > %.0e" %
                      (path, t.name, t.tensor_type.name, e, bound))
    print("%d passed, %d failed" % (npass, nfail))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
