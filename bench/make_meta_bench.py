#!/usr/bin/env python3
"""make_meta_bench.py - random-weight Llama 3 shaped checkpoints in the forms issue 14 reads,
for load-time, memory and speed measurements (bench/README.md, "Meta .pth and FP8").

  --kind meta   Meta's original layout: params.json, tokenizer.model and --shards
                consolidated.NN.pth (torch.save's zip layout, BF16 storages), each tensor
                split as fairscale splits it (wq/wk/wv/w1/w3/output on rows, wo/w2 and
                tok_embeddings on columns, norms replicated)
  --kind hf     a Hugging Face folder with the same weights in one BF16 model.safetensors
                (q/k rows in HF's order, as convert_llama_weights_to_hf.py writes them)
  --kind fp8    a Hugging Face folder as transformers' fbgemm_fp8 saves it: every linear of
                the layers F8_E4M3 with an F32 weight_scale [out, 1], embeddings / lm_head
                BF16, quantization_config with activation_scale_ub 1200

The weights are a fixed pool of random bytes tiled into each tensor (BF16 values of about
0.01-0.03, e4m3 codes without NaNs or subnormals, scales 1e-3): the files mean nothing,
they have the bytes and shapes of the real ones. Written one tensor at a time at disk speed (at most 64 MB
in memory), so an 8B-shaped checkpoint needs no more RAM than a small one. The .pth writer
is the byte layout of torch.save (tests/meta/make_meta_models.py checks its pickle against
torch's); zip64 records are written since each shard passes 4 GiB.

Usage: make_meta_bench.py --shape 8b|3b|1b|tiny --kind meta|hf|fp8 [--shards 2]
                          --tokenizer-dir DIR (tokenizer.json / tokenizer.model) -o OUT_DIR
"""
import argparse
import collections
import io
import json
import os
import pickle
import shutil
import struct
import sys
import types
import zipfile

import numpy as np

SHAPES = {
    "8b": dict(dim=4096, n_layers=32, n_heads=32, n_kv_heads=8, ffn=14336, vocab=128256,
               tied=False, multiplier=1.3, multiple_of=1024),
    "3b": dict(dim=3072, n_layers=28, n_heads=24, n_kv_heads=8, ffn=8192, vocab=128256,
               tied=True, multiplier=1.0, multiple_of=256),
    "1b": dict(dim=2048, n_layers=16, n_heads=32, n_kv_heads=8, ffn=8192, vocab=128256,
               tied=True, multiplier=1.5, multiple_of=256),
    "tiny": dict(dim=256, n_layers=2, n_heads=4, n_kv_heads=2, ffn=768, vocab=128256,
                 tied=False, multiplier=1.0, multiple_of=256),  # checks of this script
}
POOL = 1 << 26  # bytes of random data tiled into every tensor


def pool_bytes(kind):
    rng = np.random.default_rng(1)
    if kind == "bf16":  # sign, exponent 120..121 (0.008-0.03), random mantissa
        n = POOL // 2
        bits = (rng.integers(0, 2, n, dtype=np.uint16) << 15) | \
               ((120 + rng.integers(0, 2, n, dtype=np.uint16)) << 7) | \
               rng.integers(0, 128, n, dtype=np.uint16)
        return bits.astype("<u2").tobytes()
    # e4m3 codes, NaNs (0x7f/0xff) moved; no subnormal codes (exponent 0): uniform random
    # bytes would make 1/16 of them subnormal, where weights quantized per row from trained
    # ones have ~1e-4, and the SIMD decode takes a microcode assist on each (see README)
    codes = rng.integers(0, 256, POOL, dtype=np.uint8)
    codes[(codes & 0x7F) == 0x7F] = 0x38
    codes[(codes & 0x78) == 0] |= 0x08
    return codes.tobytes()


def tiled(pool, nbytes):
    """Yields nbytes of the pool, repeated, in pieces of at most len(pool)."""
    while nbytes > 0:
        k = min(nbytes, len(pool))
        yield pool[:k]
        nbytes -= k


def tensors(s):
    """(meta name, hf name, [rows, cols] (torch shape), fairscale split: 0 rows, 1 cols,
    -1 replicated, linear?) in Meta's order."""
    d, hd = s["dim"], s["dim"] // s["n_heads"]
    kv = s["n_kv_heads"] * hd
    out = [("tok_embeddings.weight", "model.embed_tokens.weight", [s["vocab"], d], 1, False)]
    for l in range(s["n_layers"]):
        m, h = "layers.%d." % l, "model.layers.%d." % l
        out += [
            (m + "attention.wq.weight", h + "self_attn.q_proj.weight", [d, d], 0, True),
            (m + "attention.wk.weight", h + "self_attn.k_proj.weight", [kv, d], 0, True),
            (m + "attention.wv.weight", h + "self_attn.v_proj.weight", [kv, d], 0, True),
            (m + "attention.wo.weight", h + "self_attn.o_proj.weight", [d, d], 1, True),
            (m + "feed_forward.w1.weight", h + "mlp.gate_proj.weight", [s["ffn"], d], 0, True),
            (m + "feed_forward.w2.weight", h + "mlp.down_proj.weight", [d, s["ffn"]], 1, True),
            (m + "feed_forward.w3.weight", h + "mlp.up_proj.weight", [s["ffn"], d], 0, True),
            (m + "attention_norm.weight", h + "input_layernorm.weight", [d], -1, False),
            (m + "ffn_norm.weight", h + "post_attention_layernorm.weight", [d], -1, False),
        ]
    out.append(("norm.weight", "model.norm.weight", [d], -1, False))
    if not s["tied"]:
        out.append(("output.weight", "lm_head.weight", [s["vocab"], d], 0, False))
    return out


# ---- Meta .pth (torch.save's layout, streamed)

class _Storage:
    def __init__(self, key, cls, numel):
        self.key, self.cls, self.numel = key, cls, numel


class _Tensor:
    def __init__(self, storage, shape, rebuild):
        self.storage, self.shape, self.rebuild = storage, shape, rebuild

    def __reduce_ex__(self, proto):
        stride, acc = [], 1
        for n in reversed(self.shape):
            stride.insert(0, acc)
            acc *= n
        return (self.rebuild, (self.storage, 0, tuple(self.shape), tuple(stride), False,
                               collections.OrderedDict()))


def pth_pickle(shapes):
    """data.pkl for {name: shape} of BF16 tensors, storages "0", "1", ... in order."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*a):
        raise RuntimeError("never called")
    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    cls = type("BFloat16Storage", (), {})
    cls.__module__ = "torch"
    torch.BFloat16Storage = cls
    saved = {m: sys.modules.get(m) for m in ("torch", "torch._utils")}
    sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
    try:
        obj = collections.OrderedDict()
        for i, (name, shape) in enumerate(shapes.items()):
            numel = int(np.prod(shape))
            obj[name] = _Tensor(_Storage(str(i), cls, numel), list(shape), _rebuild_tensor_v2)

        class P(pickle.Pickler):
            def persistent_id(self, o):
                if isinstance(o, _Storage):
                    return ("storage", o.cls, o.key, "cpu", o.numel)
                return None
        buf = io.BytesIO()
        P(buf, protocol=2).dump(obj)
        return buf.getvalue()
    finally:
        for m, v in saved.items():
            if v is None:
                sys.modules.pop(m, None)
            else:
                sys.modules[m] = v


def zip_entry(z, raw, name, chunks, size):
    """One stored entry whose data starts 64-byte aligned, streamed from chunks."""
    zi = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    zi.compress_type = zipfile.ZIP_STORED
    zi.file_size = size
    big = size >= 0xFFFFFFFF or raw.tell() >= 0xFFFFFFFF
    fixed = 30 + len(name.encode()) + 4 + (20 if big else 0)
    pad = (-(raw.tell() + fixed)) % 64
    zi.extra = struct.pack("<HH", 0x4246, pad) + b"Z" * pad
    with z.open(zi, "w", force_zip64=big) as f:
        for c in chunks:
            f.write(c)


def write_pth(path, shapes, pool):
    archive = os.path.splitext(os.path.basename(path))[0]
    pkl = pth_pickle(shapes)
    with open(path, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED) as z:
        zip_entry(z, raw, archive + "/data.pkl", [pkl], len(pkl))
        zip_entry(z, raw, archive + "/byteorder", [b"little"], 6)
        for i, shape in enumerate(shapes.values()):
            n = int(np.prod(shape)) * 2
            zip_entry(z, raw, "%s/data/%d" % (archive, i), tiled(pool, n), n)
        zip_entry(z, raw, archive + "/version", [b"3\n"], 2)


def make_meta(s, shards, out, tok_dir):
    pool = pool_bytes("bf16")
    params = {"dim": s["dim"], "n_layers": s["n_layers"], "n_heads": s["n_heads"],
              "n_kv_heads": s["n_kv_heads"], "vocab_size": s["vocab"],
              "ffn_dim_multiplier": s["multiplier"], "multiple_of": s["multiple_of"],
              "norm_eps": 1e-5, "rope_theta": 500000.0, "use_scaled_rope": True}
    with open(os.path.join(out, "params.json"), "w") as f:
        json.dump(params, f, indent=2)
    shutil.copy(os.path.join(tok_dir, "tokenizer.model"), out)
    for k in range(shards):
        shapes = collections.OrderedDict()
        for name, _, shape, split, _ in tensors(s):
            sh = list(shape)
            if split >= 0 and len(sh) == 2:
                axis = 0 if split == 0 else 1
                if sh[axis] % shards:
                    sys.exit("%s: %d does not split into %d shards" % (name, sh[axis], shards))
                sh[axis] //= shards
            shapes[name] = sh
        path = os.path.join(out, "consolidated.%02d.pth" % k)
        write_pth(path, shapes, pool)
        print("wrote %s (%.2f GB)" % (path, os.path.getsize(path) / 1e9))


# ---- Hugging Face safetensors (BF16 or fbgemm_fp8)

def hf_config(s, fp8):
    c = {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
         "hidden_size": s["dim"], "num_hidden_layers": s["n_layers"],
         "num_attention_heads": s["n_heads"], "num_key_value_heads": s["n_kv_heads"],
         "intermediate_size": s["ffn"], "vocab_size": s["vocab"], "rms_norm_eps": 1e-5,
         "rope_theta": 500000.0, "max_position_embeddings": 131072,
         "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                          "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
         "tie_word_embeddings": s["tied"], "torch_dtype": "bfloat16",
         "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009]}
    if fp8:
        c["quantization_config"] = {"quant_method": "fbgemm_fp8", "activation_scale_ub": 1200.0,
                                    "modules_to_not_convert": ["lm_head"]}
    return c


def make_hf(s, out, tok_dir, fp8):
    bf, f8 = pool_bytes("bf16"), (pool_bytes("f8") if fp8 else None)
    scale_pool = np.full(POOL // 4, 1e-3, "<f4").tobytes()
    entries = []  # (name, dtype, shape, nbytes, pool)
    for _, name, shape, _, linear in tensors(s):
        n = int(np.prod(shape))
        if fp8 and linear:
            entries.append((name, "F8_E4M3", shape, n, f8))
            entries.append((name[:-len("weight")] + "weight_scale", "F32", [shape[0], 1],
                            shape[0] * 4, scale_pool))
        else:
            entries.append((name, "BF16", shape, n * 2, bf))
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name, dt, shape, nb, _ in entries:
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + nb]}
        off += nb
    hj = json.dumps(header).encode()
    hj += b" " * ((-len(hj)) % 8)
    path = os.path.join(out, "model.safetensors")
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)) + hj)
        for _, _, _, nb, pool in entries:
            for c in tiled(pool, nb):
                f.write(c)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(hf_config(s, fp8), f, indent=2)
    for t in ("tokenizer.json", "tokenizer_config.json"):
        if os.path.exists(os.path.join(tok_dir, t)):
            shutil.copy(os.path.join(tok_dir, t), out)
    print("wrote %s (%.2f GB)" % (path, os.path.getsize(path) / 1e9))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), required=True)
    ap.add_argument("--kind", choices=("meta", "hf", "fp8"), required=True)
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--tokenizer-dir", required=True)
    ap.add_argument("-o", "--out", required=True)
    a = ap.parse_args()
    s = SHAPES[a.shape]
    os.makedirs(a.out, exist_ok=True)
    if a.kind == "meta":
        make_meta(s, a.shards, a.out, a.tokenizer_dir)
    else:
        make_hf(s, a.out, a.tokenizer_dir, a.kind == "fp8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
