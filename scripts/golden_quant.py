#!/usr/bin/env python3
"""Golden vectors for herd's quant/ layer, made with the gguf Python package (llama.cpp's
own gguf-py, an independent reference: never herd's output).

Writes tests/golden/quant/gguf_py.bin:
    magic  b"HQGD"  | u32 version (1) | u32 record count
    record: u32 ggml type | u32 n (elements) | u32 flags
            flags bit 0: an f32[n] input follows and the blocks are gguf-py's quantization
                         of it (quantize must reproduce them byte for byte)
            [f32 input[n]] | u8 blocks[row bytes] | f32 dequant[n] (gguf-py's dequantize)
For types gguf-py cannot quantize (the K-quants) the blocks are random bytes with sane fp16
scales, so dequantization is still checked exactly. With --ggml-harness BIN, K-quant
records with flag bit 0 are added too, their blocks made by ggml's own C reference
quantizers (quantize_row_q4_K_ref, ...) through scripts/ggml_quant_harness.c built against
a ggml checkout outside this repository (see that file). Deterministic: fixed seeds.

Usage: python3 scripts/golden_quant.py [--ggml-harness BIN] [OUT]
"""
import subprocess
import tempfile
import struct
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants

MAGIC = b"HQGD"
VERSION = 1

# (type, can gguf-py quantize it)
TYPES = [
    (T.BF16, True),
    (T.Q4_0, True),
    (T.Q4_1, True),
    (T.Q5_0, True),
    (T.Q5_1, True),
    (T.Q8_0, True),
    (T.Q4_K, False),
    (T.Q5_K, False),
    (T.Q6_K, False),
]

N = 512  # two K-quant super-blocks, sixteen 32-element blocks


def inputs(rng):
    """Rows that exercise the edge cases: normal weights, a zero block, constant blocks,
    a negative extreme, tiny and large magnitudes."""
    rows = []
    rows.append(rng.standard_normal(N).astype(np.float32) * 0.02)
    x = rng.standard_normal(N).astype(np.float32)
    x[:32] = 0.0            # an all-zero block
    x[32:64] = 0.5          # a constant block
    x[64:96] = -x[64:96] ** 2  # all non-positive
    x[100] = -7.0           # the extreme is negative
    x[300:332] *= 1e-6      # tiny values
    x[400:432] *= 100.0     # large values
    rows.append(x)
    rows.append(rng.uniform(-1, 1, N).astype(np.float32))
    return rows


def random_blocks(rng, qtype, n):
    block_size, type_size = quants.GGML_QUANT_SIZES[qtype]
    nb = n // block_size
    raw = rng.integers(0, 256, size=(nb, type_size), dtype=np.uint8)
    # fp16 scale fields: small finite values so the dequantized numbers are ordinary.
    def put_f16(col):
        v = rng.uniform(-0.05, 0.05, nb).astype(np.float16).view(np.uint8).reshape(nb, 2)
        raw[:, col:col + 2] = v
    if qtype in (T.Q4_K, T.Q5_K):
        put_f16(0)
        put_f16(2)
    elif qtype == T.Q6_K:
        put_f16(type_size - 2)
    return raw.reshape(-1)


def ggml_quantize(harness, qtype, x):
    with tempfile.TemporaryDirectory() as d:
        x.astype("<f4").tofile(f"{d}/x.bin")
        subprocess.run([harness, str(int(qtype)), str(len(x)), f"{d}/x.bin", f"{d}/q.bin"],
                       check=True)
        return np.fromfile(f"{d}/q.bin", dtype=np.uint8)


def main():
    args = sys.argv[1:]
    harness = None
    if len(args) >= 2 and args[0] == "--ggml-harness":
        harness = args[1]
        args = args[2:]
    out = args[0] if args else "tests/golden/quant/gguf_py.bin"
    rng = np.random.default_rng(20240917)
    records = []
    for qtype, can_quant in TYPES:
        if can_quant:
            for x in inputs(rng):
                blocks = quants.quantize(x, qtype).reshape(-1)
                deq = quants.dequantize(blocks, qtype).reshape(-1).astype(np.float32)
                records.append((int(qtype), 1, x, blocks, deq))
        for _ in range(2):
            blocks = random_blocks(rng, qtype, N) if not can_quant else None
            if blocks is None:
                break
            deq = quants.dequantize(blocks, qtype).reshape(-1).astype(np.float32)
            records.append((int(qtype), 0, None, blocks, deq))
        if harness and not can_quant:
            for x in inputs(rng):
                blocks = ggml_quantize(harness, qtype, x)
                deq = quants.dequantize(blocks, qtype).reshape(-1).astype(np.float32)
                records.append((int(qtype), 1, x, blocks, deq))
    with open(out, "wb") as f:
        f.write(MAGIC + struct.pack("<II", VERSION, len(records)))
        for qtype, flags, x, blocks, deq in records:
            f.write(struct.pack("<III", qtype, N, flags))
            if flags & 1:
                f.write(x.astype("<f4").tobytes())
            f.write(blocks.astype(np.uint8).tobytes())
            f.write(deq.astype("<f4").tobytes())
    print(f"{out}: {len(records)} records")


if __name__ == "__main__":
    main()
