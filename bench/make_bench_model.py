#!/usr/bin/env python3
"""make_bench_model.py - random-weight Llama 3 shaped GGUF files for speed measurements.

Writes GGUF v3 files that both herd and llama.cpp load: llama.* hyper-parameters, the
real Llama 3 tokenizer (tokenizer.ggml.*, from a Hugging Face tokenizer.json, so that
llama.cpp can build its vocabulary), rope_freqs for llama3 frequency scaling, and
random weights of the real shapes stored directly in the block layout of each type:

  f16    normal(0, 0.02) values
  bf16   normal(0, 0.02) values (the f32 values' top 16 bits)
  q8_0   random int8 quants, one fp16 scale per 32 weights
  q4_0   random nibbles, one fp16 scale per 32 weights
  q4_k_m llama.cpp's Q4_K_M mix (Q4_K, with Q6_K for output and for attn_v / ffn_down
         in the layers llama.cpp's use_more_bits picks); random K-quant blocks
  q6_k   random Q6_K blocks (output Q6_K)

Random quantized blocks cost nothing to make (no quantizer runs), so an 8B file is written
at disk speed, one tensor at a time (streaming: at most one tensor is held in memory).
Scales are fixed small fp16 values so that every weight is finite and about 0.02 in size;
the models mean nothing, they only have the bytes and shapes of the real ones.

Usage: make_bench_model.py --shape 8b|1b|tiny --type q4_0|q8_0|q4_k_m|q6_k|f16|bf16
                           --tokenizer tokenizer.json -o OUT.gguf
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import gguf

SHAPES = {
    # Llama 3.1 8B
    "8b": dict(dim=4096, n_layers=32, n_heads=32, n_kv_heads=8, hidden_dim=14336,
               vocab=128256, tied=False, ctx=131072),
    # Llama 3.2 1B: tied embeddings
    "1b": dict(dim=2048, n_layers=16, n_heads=32, n_kv_heads=8, hidden_dim=8192,
               vocab=128256, tied=True, ctx=131072),
    # for quick checks of this script (the real vocabulary keeps llama.cpp's tokenizer happy)
    "tiny": dict(dim=256, n_layers=2, n_heads=4, n_kv_heads=2, hidden_dim=768,
                 vocab=128256, tied=True, ctx=4096),
}

T = gguf.GGMLQuantizationType
# llama_ftype values (llama.h) for general.file_type
FTYPE = {"f16": 1, "bf16": 32, "q4_0": 2, "q8_0": 7, "q4_k_m": 15, "q6_k": 18}
BASE = {"f16": T.F16, "bf16": T.BF16, "q4_0": T.Q4_0, "q8_0": T.Q8_0, "q4_k_m": T.Q4_K, "q6_k": T.Q6_K}
# (elements per block, bytes per block)
BLOCK = {T.F16: (1, 2), T.BF16: (1, 2), T.F32: (1, 4), T.Q4_0: (32, 18), T.Q8_0: (32, 34),
         T.Q4_K: (256, 144), T.Q6_K: (256, 210)}

POOL_BYTES = 1 << 26  # random bytes tiled into tensors: fresh randomness per byte is not needed


def use_more_bits(i_layer, n_layers):
    """llama.cpp's rule for the layers that get more bits in the _M mixes."""
    return (i_layer < n_layers // 8 or i_layer >= 7 * n_layers // 8 or
            (i_layer - n_layers // 8) % 3 == 2)


def tensor_type(name, ftype, n_layers, tied):
    """The type llama.cpp's llama_tensor_get_type picks for a 2-D weight of a Llama model."""
    base = BASE[ftype]
    if base in (T.F16, T.BF16):
        return base
    is_output = name == "output.weight" or (tied and name == "token_embd.weight")
    if is_output:
        return base if base == T.Q8_0 else T.Q6_K
    if ftype == "q4_k_m":
        parts = name.split(".")
        if len(parts) == 4 and parts[0] == "blk":
            il = int(parts[1])
            if parts[2] in ("attn_v", "ffn_down") and use_more_bits(il, n_layers):
                return T.Q6_K
    return base


def rope_factors(head_dim, theta=500000.0, factor=8.0, low=1.0, high=4.0, old_ctx=8192):
    """Llama 3.1 per-dimension RoPE divisors, as the HF converter writes rope_freqs."""
    out = []
    for i in range(0, head_dim, 2):
        freq = 1.0 / (theta ** (i / head_dim))
        wavelen = 2 * math.pi / freq
        if wavelen < old_ctx / high:
            out.append(1.0)
        elif wavelen > old_ctx / low:
            out.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def tensor_list(s, ftype):
    """(name, numpy shape (rows, cols) or (n,), ggml type) in llama.cpp's order."""
    hd = s["dim"] // s["n_heads"]
    kv = s["n_kv_heads"] * hd
    out = [("token_embd.weight", (s["vocab"], s["dim"]))]
    out.append(("rope_freqs.weight", (hd // 2,)))
    for il in range(s["n_layers"]):
        p = f"blk.{il}."
        out += [(p + "attn_norm.weight", (s["dim"],)),
                (p + "attn_q.weight", (s["dim"], s["dim"])),
                (p + "attn_k.weight", (kv, s["dim"])),
                (p + "attn_v.weight", (kv, s["dim"])),
                (p + "attn_output.weight", (s["dim"], s["dim"])),
                (p + "ffn_norm.weight", (s["dim"],)),
                (p + "ffn_gate.weight", (s["hidden_dim"], s["dim"])),
                (p + "ffn_up.weight", (s["hidden_dim"], s["dim"])),
                (p + "ffn_down.weight", (s["dim"], s["hidden_dim"]))]
    out.append(("output_norm.weight", (s["dim"],)))
    if not s["tied"]:
        out.append(("output.weight", (s["vocab"], s["dim"])))
    typed = []
    for name, shape in out:
        t = T.F32 if len(shape) == 1 else tensor_type(name, ftype, s["n_layers"], s["tied"])
        typed.append((name, shape, t))
    return typed


def f16_bytes(x):
    return np.array([x], dtype=np.float16).view(np.uint8)


class Filler:
    """Makes the bytes of one random tensor of a given type."""

    def __init__(self, seed):
        rng = np.random.default_rng(seed)
        self.rng = rng
        self.pool = rng.integers(0, 256, POOL_BYTES, dtype=np.uint8)
        normal = (rng.standard_normal(POOL_BYTES // 2) * 0.02).astype(np.float32)
        self.f16pool = normal.astype(np.float16)
        self.bf16pool = (normal.view(np.uint32) >> 16).astype(np.uint16)

    def tiled(self, pool, n):
        start = int(self.rng.integers(0, len(pool)))
        reps = (start + n + len(pool) - 1) // len(pool)
        return np.tile(pool, reps)[start:start + n] if reps > 1 else pool[start:start + n].copy()

    def make(self, t, rows, cols):
        n = rows * cols
        if t == T.F16:
            return self.tiled(self.f16pool, n).view(np.uint8).reshape(rows, cols * 2)
        if t == T.BF16:
            return self.tiled(self.bf16pool, n).view(np.uint8).reshape(rows, cols * 2)
        bs, bb = BLOCK[t]
        nb = n // bs
        raw = self.tiled(self.pool, nb * bb).reshape(nb, bb)
        # Fixed scales keep every weight finite (random fp16 bytes would hold NaN/inf) and
        # about 0.02 in magnitude, as in trained Llama layers.
        if t == T.Q4_0:      # w = d * (q - 8), q uniform 0..15: std ~ 4.6 d
            raw[:, 0:2] = f16_bytes(0.02 / 4.6)
        elif t == T.Q8_0:    # w = d * q, q uniform int8: std ~ 74 d
            raw[:, 0:2] = f16_bytes(0.02 / 74)
        elif t == T.Q4_K:    # w = d * sc * q - dmin * m, sc/m 6-bit
            raw[:, 0:2] = f16_bytes(0.02 / (32 * 4.6))
            raw[:, 2:4] = f16_bytes(0.02 / (32 * 8))
        elif t == T.Q6_K:    # w = d * scale * (q - 32), scale int8; d is the last 2 bytes
            raw[:, 208:210] = f16_bytes(0.02 / (74 * 18))
        return raw.reshape(rows, (cols // bs) * bb)


def add_tokenizer(w, path, vocab_size):
    with open(path, encoding="utf-8") as f:
        tj = json.load(f)
    model = tj["model"]
    toks = [None] * vocab_size
    types = [1] * vocab_size  # 1 normal, 3 control (special), 4 user-defined, 5 unused
    for text, i in model["vocab"].items():
        if i < vocab_size:
            toks[i] = text
    for at in tj.get("added_tokens", []):
        i = at["id"]
        if i < vocab_size:
            toks[i] = at["content"]
            types[i] = 3 if at.get("special") else 4
    for i in range(vocab_size):
        if toks[i] is None:
            toks[i] = f"[PAD{i}]"
            types[i] = 5
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    w.add_string("tokenizer.ggml.model", "gpt2")
    w.add_string("tokenizer.ggml.pre", "llama-bpe")
    w.add_array("tokenizer.ggml.tokens", toks)
    w.add_array("tokenizer.ggml.token_type", types)
    w.add_array("tokenizer.ggml.merges", merges)
    w.add_uint32("tokenizer.ggml.bos_token_id", 128000)
    w.add_uint32("tokenizer.ggml.eos_token_id", 128009)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), required=True)
    ap.add_argument("--type", choices=sorted(FTYPE), required=True)
    ap.add_argument("--tokenizer", required=True, help="Llama 3 tokenizer.json")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("-o", "--out", required=True)
    a = ap.parse_args()

    s = SHAPES[a.shape]
    hd = s["dim"] // s["n_heads"]
    tensors = tensor_list(s, a.type)
    total = sum(math.prod(sh) // BLOCK[t][0] * BLOCK[t][1] for _, sh, t in tensors)
    free = os.statvfs(os.path.dirname(os.path.abspath(a.out)))
    if free.f_bavail * free.f_frsize < total + (1 << 30):
        sys.exit(f"make_bench_model: {total / 1e9:.1f} GB needed, not enough free disk")
    print(f"{a.out}: {a.shape} {a.type}, {len(tensors)} tensors, {total / 1e9:.2f} GB",
          file=sys.stderr)

    w = gguf.GGUFWriter(a.out, "llama")
    w.add_name(f"bench-llama3-{a.shape}-{a.type}-random")
    w.add_context_length(s["ctx"])
    w.add_embedding_length(s["dim"])
    w.add_block_count(s["n_layers"])
    w.add_feed_forward_length(s["hidden_dim"])
    w.add_head_count(s["n_heads"])
    w.add_head_count_kv(s["n_kv_heads"])
    w.add_rope_freq_base(500000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(hd)
    w.add_vocab_size(s["vocab"])
    w.add_file_type(FTYPE[a.type])
    w.add_quantization_version(2)
    add_tokenizer(w, a.tokenizer, s["vocab"])

    for name, shape, t in tensors:
        bs, bb = BLOCK[t]
        n = math.prod(shape)
        if t == T.F32:
            w.add_tensor_info(name, shape, np.float32, n * 4)
        else:  # the gguf package takes the byte shape of quantized data
            w.add_tensor_info(name, (shape[0], shape[1] // bs * bb), np.uint8, n // bs * bb,
                              raw_dtype=t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()

    fill = Filler(a.seed)
    done = 0
    for name, shape, t in tensors:
        if name == "rope_freqs.weight":
            data = rope_factors(hd)
        elif t == T.F32:
            data = np.ones(shape, dtype=np.float32)
        else:
            data = fill.make(t, shape[0], shape[1])
        w.write_tensor_data(data)
        done += data.nbytes
        print(f"\r  {done / 1e9:6.2f} / {total / 1e9:.2f} GB", end="", file=sys.stderr)
    w.close()
    print("", file=sys.stderr)


if __name__ == "__main__":
    main()
