#!/usr/bin/env python3
"""Makes the small seed corpus that tests/fuzz targets replay in CI (and that a libFuzzer
run starts from): a valid GGUF written by the gguf Python package, truncations and
corruptions of it, and valid and broken safetensors files. Deterministic.

Usage: python3 tests/fuzz/make_corpus.py   (from the repository root)
"""
import json
import os
import struct

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf import quants

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
gdir, sdir = os.path.join(root, "gguf"), os.path.join(root, "safetensors")
os.makedirs(gdir, exist_ok=True)
os.makedirs(sdir, exist_ok=True)
rng = np.random.default_rng(7)

tmp = os.path.join(gdir, "valid.gguf")
w = gguf.GGUFWriter(tmp, "llama")
w.add_uint32("llama.block_count", 1)
w.add_float32("llama.rope.freq_base", 500000.0)
w.add_array("tokenizer.ggml.tokens", ["a", "b"])
w.add_array("tokenizer.ggml.scores", [0.5, 1.5])
w.add_int64("x.i64", -3)
w.add_tensor("f32", rng.standard_normal((2, 32)).astype(np.float32))
w.add_tensor("q8", quants.quantize(rng.standard_normal((1, 64)).astype(np.float32), T.Q8_0),
             raw_dtype=T.Q8_0)
raw = rng.integers(0, 256, size=(1, 144), dtype=np.uint8)
raw[0, 0:4] = np.array([0.01, 0.01], dtype=np.float16).view(np.uint8)
w.add_tensor("q4k", raw, raw_dtype=T.Q4_K)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
data = open(tmp, "rb").read()
for cut in (0, 3, 8, 20, 40, 100, 200, len(data) // 2, len(data) - 1):
    open(os.path.join(gdir, f"cut_{cut}.gguf"), "wb").write(data[:cut])
for i, pos in enumerate((4, 8, 16, 24, 30, 60, 120, 250, 300)):
    b = bytearray(data)
    if pos < len(b):
        b[pos] ^= 0xff
        open(os.path.join(gdir, f"flip_{i}.gguf"), "wb").write(bytes(b))


def st(name, header, payload):
    h = json.dumps(header).encode()
    open(os.path.join(sdir, name), "wb").write(struct.pack("<Q", len(h)) + h + payload)


x = rng.standard_normal(6).astype(np.float32)
st("valid.safetensors", {"__metadata__": {"format": "pt"},
                         "w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
                         "b": {"dtype": "BF16", "shape": [4], "data_offsets": [24, 32]}},
   x.tobytes() + bytes(8))
st("i64.safetensors", {"w": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}}, bytes(8))
st("past.safetensors", {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}},
   bytes(8))
st("overlap.safetensors", {"a": {"dtype": "F16", "shape": [4], "data_offsets": [0, 8]},
                           "b": {"dtype": "F16", "shape": [4], "data_offsets": [4, 12]}},
   bytes(12))
open(os.path.join(sdir, "badjson.safetensors"), "wb").write(struct.pack("<Q", 5) + b"{\"a\":")
open(os.path.join(sdir, "hugelen.safetensors"), "wb").write(struct.pack("<Q", 1 << 62) + b"{}")
open(os.path.join(sdir, "short.safetensors"), "wb").write(b"\x02\x00")
print("corpus written to", root)
