#!/usr/bin/env python3
"""Interoperability of herd's GGUF code with the gguf Python package (llama.cpp's gguf-py):
1. a file written by herd's writer is read by gguf.GGUFReader: keys, values, tensor
   shapes, types and dequantized data (gguf.quants) all as herd wrote them;
2. a file written by gguf.GGUFWriter (every scalar type, arrays, tensors F32/F16/BF16/
   Q8_0/Q4_0/Q4_K/Q6_K) is read by herd's reader with the same values and data sums.
Exit 77 (skip) when the gguf package is missing.

Usage: gguf_py_check.py GGUF_TOOL WORKDIR
"""
import os
import subprocess
import sys

try:
    import numpy as np
    import gguf
    from gguf import GGMLQuantizationType as T
    from gguf import quants
except ImportError:
    print("SKIP: numpy/gguf Python packages not installed")
    sys.exit(77)

tool, work = sys.argv[1], sys.argv[2]
os.makedirs(work, exist_ok=True)
failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print("FAIL:", what)


# ---- 1. herd writes, gguf-py reads
path = os.path.join(work, "herd_written.gguf")
subprocess.run([tool, "write", path], check=True)
r = gguf.GGUFReader(path)
fields = {f.name: f for f in r.fields.values()}


def scalar(name):
    f = fields[name]
    return f.parts[f.data[0]][0]


def string(name):
    f = fields[name]
    return bytes(f.parts[f.data[0]]).decode()


check(string("general.architecture") == "llama", "general.architecture")
check(string("general.name") == "herd sample", "general.name")
check(scalar("llama.block_count") == 2, "llama.block_count")
check(scalar("herd.test.i32") == -123456, "herd.test.i32")
check(scalar("llama.rope.freq_base") == np.float32(500000.0), "freq_base")
check(bool(scalar("herd.test.bool")), "bool")
toks = [bytes(fields["tokenizer.ggml.tokens"].parts[i]).decode()
        for i in fields["tokenizer.ggml.tokens"].data]
check(toks == ["<s>", "\u0120the", "x"], f"tokens {toks}")
types = [int(fields["tokenizer.ggml.token_type"].parts[i][0])
         for i in fields["tokenizer.ggml.token_type"].data]
check(types == [3, 1, 1], f"token_type {types}")
scores = [float(fields["tokenizer.ggml.scores"].parts[i][0])
          for i in fields["tokenizer.ggml.scores"].data]
check(scores == [0.0, -1.5, 2.0], f"scores {scores}")
tensors = {t.name: t for t in r.tensors}
want = {"a.f32": (T.F32, [64, 3]), "b.f16": (T.F16, [64, 2]), "c.bf16": (T.BF16, [32]),
        "d.q8_0": (T.Q8_0, [32, 4]), "e.q4_k": (T.Q4_K, [256, 2]),
        "f.q6_k": (T.Q6_K, [256, 2])}
for name, (qt, shape) in want.items():
    t = tensors.get(name)
    check(t is not None, f"tensor {name} present")
    if t is None:
        continue
    check(t.tensor_type == qt, f"{name} type {t.tensor_type}")
    check(list(int(x) for x in t.shape) == shape, f"{name} shape {list(t.shape)}")
    check(t.data_offset % 32 == 0, f"{name} aligned")
a = quants.dequantize(tensors["a.f32"].data, T.F32).reshape(-1)
check(np.array_equal(a, np.arange(64 * 3, dtype=np.float32) * 0.25 - 3.0), "a.f32 data")
# herd's dump of its own file must agree with gguf-py's dequantization of it
out = subprocess.run([tool, "dump", path], check=True, capture_output=True, text=True).stdout
sums = {l.split()[1]: float(l.split()[5]) for l in out.splitlines() if l.startswith("tensor")}
for name, (qt, _) in want.items():
    t = tensors[name]
    ref = float(np.sum(quants.dequantize(t.data, qt).astype(np.float64)))
    check(abs(sums.get(name, 1e30) - ref) <= 1e-6 * max(1.0, abs(ref)),
          f"{name}: herd sum {sums.get(name)} vs gguf-py {ref}")

# ---- 2. gguf-py writes, herd reads
path2 = os.path.join(work, "py_written.gguf")
w = gguf.GGUFWriter(path2, "llama")
w.add_uint8("t.u8", 250)
w.add_int8("t.i8", -100)
w.add_uint16("t.u16", 65000)
w.add_int16("t.i16", -30000)
w.add_uint32("t.u32", 4000000000)
w.add_int32("t.i32", -2000000000)
w.add_float32("t.f32", 0.125)
w.add_uint64("t.u64", 1 << 50)
w.add_int64("t.i64", -(1 << 50))
w.add_float64("t.f64", 2.5)
w.add_bool("t.bool", True)
w.add_string("t.str", "héllo")
w.add_array("t.arr", [1, 2, 3])
w.add_array("t.sarr", ["a", "bc"])
rng = np.random.default_rng(3)
x = rng.standard_normal((4, 256)).astype(np.float32)
py_tensors = {
    "p.f32": (x, T.F32), "p.f16": (x.astype(np.float16), T.F16),
    "p.bf16": (quants.quantize(x, T.BF16), T.BF16), "p.q8_0": (quants.quantize(x, T.Q8_0), T.Q8_0),
    "p.q4_0": (quants.quantize(x, T.Q4_0), T.Q4_0),
}
for name, (arr, qt) in py_tensors.items():
    if qt in (T.F32, T.F16):
        w.add_tensor(name, arr)
    else:
        w.add_tensor(name, arr, raw_dtype=qt)
# K-quants: random blocks with small fp16 scales (gguf-py has no K quantizer)
for name, qt in (("p.q4_k", T.Q4_K), ("p.q6_k", T.Q6_K)):
    bs, ts = quants.GGML_QUANT_SIZES[qt]
    raw = rng.integers(0, 256, size=(4, ts), dtype=np.uint8)
    d = rng.uniform(-0.01, 0.01, 4).astype(np.float16).view(np.uint8).reshape(4, 2)
    if qt == T.Q4_K:
        raw[:, 0:2] = d
        raw[:, 2:4] = d
    else:
        raw[:, ts - 2:ts] = d
    w.add_tensor(name, raw, raw_dtype=qt)
    py_tensors[name] = (raw, qt)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
out = subprocess.run([tool, "dump", path2], capture_output=True, text=True)
check(out.returncode == 0, f"herd reads gguf-py's file: {out.stderr.strip()}")
kv = {}
tens = {}
for line in out.stdout.splitlines():
    p = line.split(" ", 3)
    if p[0] == "kv":
        kv[p[1]] = p[3]
    elif p[0] == "tensor":
        q = line.split()
        tens[q[1]] = (q[2], q[3], float(q[5]))
expect_kv = {"t.u8": "250", "t.i8": "-100", "t.u16": "65000", "t.i16": "-30000",
             "t.u32": "4000000000", "t.i32": "-2000000000", "t.f32": "0.125",
             "t.u64": str(1 << 50), "t.i64": str(-(1 << 50)), "t.f64": "2.5", "t.bool": "1",
             "t.str": "héllo", "t.sarr": "[8 x 2]", "general.architecture": "llama"}
for k, v in expect_kv.items():
    check(kv.get(k) == v, f"herd reads {k} = {kv.get(k)!r}, expected {v!r}")
check(kv.get("t.arr", "").endswith("x 3]"), f"t.arr {kv.get('t.arr')}")
for name, (arr, qt) in py_tensors.items():
    got = tens.get(name)
    check(got is not None, f"herd lists tensor {name}")
    if got is None:
        continue
    ref = float(np.sum(quants.dequantize(arr, qt).astype(np.float64)))
    check(got[1].startswith("256,4,"), f"{name} ne {got[1]}")
    check(abs(got[2] - ref) <= 1e-6 * max(1.0, abs(ref)), f"{name} sum {got[2]} vs {ref}")

print(f"gguf-py interop: {failures} failed")
sys.exit(1 if failures else 0)
