#!/usr/bin/env python3
"""make_bad_models.py - broken variants of a tiny test model, for herd's bad-input tests.

Writes into OUT/ (from the gqa2_untied_f32 configuration of make_model.py, 384 ids):
  hf_missing_tensor/     model.layers.1.mlp.up_proj.weight left out
  gguf_missing_tensor.gguf   blk.1.ffn_up.weight left out
  hf_wrong_shape/        model.layers.0.self_attn.k_proj.weight is [64, 64], not [32, 64]
  gguf_wrong_shape.gguf  blk.0.attn_k.weight transposed: ne [32, 64] instead of [64, 32]
  hf_arch_gpt2/          config.json says GPT2LMHeadModel / model_type gpt2
  gguf_arch_gpt2.gguf    general.architecture = "gpt2" (keys gpt2.*)
  hf_truncated/          model.safetensors cut to half its length
  gguf_truncated.gguf    the GGUF cut in the middle of its tensor data
  gguf_bad_magic.gguf    the first four bytes are not "GGUF"
  hf_no_config/          no config.json
  hf_bad_dtype/          one weight declared as I32 (same byte size, not a float type)
  hf_nan_weight/         one element of model.layers.1.mlp.up_proj.weight is NaN and one
                         of model.layers.0.self_attn.o_proj.weight +inf (herd quantize
                         must refuse it, naming the tensor)
The matching good model is OUT/good/ (hf/ and model.gguf) for the run-time cases (an id past
the vocabulary, a prompt past the context).

Usage: make_bad_models.py OUT
"""
import json
import os
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_model as mm  # noqa: E402

BASE = "gqa2_untied_f32"


def truncate(path, frac):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(int(size * frac))


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = sys.argv[1]
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    cfg = mm.CONFIGS[BASE]
    store = mm.hf_store_of(cfg)

    def hf(name, st, cfg_=cfg):
        d = os.path.join(out, name)
        mm.write_hf(d, cfg_, st, None)
        return d

    def gg(name, **kw):
        p = os.path.join(out, name)
        mm.write_gguf(p, cfg, BASE, store, good_hf, **kw)
        return p

    good_hf = hf("good/hf", store)
    gg("good/model.gguf")

    st = dict(store)
    del st["model.layers.1.mlp.up_proj.weight"]
    hf("hf_missing_tensor", st)
    gg("gguf_missing_tensor.gguf", drop=("blk.1.ffn_up.weight",))

    st = dict(store)
    k, dt = st["model.layers.0.self_attn.k_proj.weight"]
    big = mm.np.concatenate([k, k], axis=0)                 # [64, 64] instead of [32, 64]
    st["model.layers.0.self_attn.k_proj.weight"] = (big, dt)
    hf("hf_wrong_shape", st)
    gg("gguf_wrong_shape.gguf", reshape={"blk.0.attn_k.weight": (k.shape[1], k.shape[0])})

    d = hf("hf_arch_gpt2", store)
    with open(os.path.join(d, "config.json")) as f:
        c = json.load(f)
    c["architectures"] = ["GPT2LMHeadModel"]
    c["model_type"] = "gpt2"
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
    gg("gguf_arch_gpt2.gguf", arch="gpt2")

    d = hf("hf_truncated", store)
    truncate(os.path.join(d, "model.safetensors"), 0.5)
    p = gg("gguf_truncated.gguf")
    truncate(p, 0.8)
    p = gg("gguf_bad_magic.gguf")
    with open(p, "r+b") as f:
        f.write(b"GGUX")

    d = hf("hf_no_config", store)
    os.remove(os.path.join(d, "config.json"))

    # Declare o_proj of layer 0 as I32: same element size, so the offsets stay valid.
    d = hf("hf_bad_dtype", store)
    path = os.path.join(d, "model.safetensors")
    with open(path, "rb") as f:
        raw = f.read()
    (hlen,) = struct.unpack_from("<Q", raw, 0)
    header = json.loads(raw[8:8 + hlen])
    header["model.layers.0.self_attn.o_proj.weight"]["dtype"] = "I32"
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * (hlen - len(hj))
    assert len(hj) == hlen
    with open(path, "wb") as f:
        f.write(raw[:8] + hj + raw[8 + hlen:])

    st = dict(store)
    for name, at, v in (("model.layers.1.mlp.up_proj.weight", 7, float("nan")),
                        ("model.layers.0.self_attn.o_proj.weight", 3, float("inf"))):
        w, dt = st[name]
        w = w.copy()
        w.flat[at] = v
        st[name] = (w, dt)
    hf("hf_nan_weight", st)
    print("make_bad_models: wrote %s" % out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
