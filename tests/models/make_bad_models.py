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
Hyper-parameters that must be refused before anything is sized from them (test_model_bad):
  gguf_head_dim_huge.gguf    key_length = value_length = rope.dimension_count = 2^31 - 2, no
                             rope_freqs
  hf_head_dim_huge/          head_dim 2^31 - 2
  hf_head_dim_wrap/          head_dim 2^32 + 16 (16 once truncated to int32)
  gguf_block_count_huge.gguf block_count 2^31 - 1
  gguf_block_count_bool.gguf block_count stored as the bool true
  hf_layers_huge/            num_hidden_layers 10^9
  gguf_rope_theta_inf.gguf   rope.freq_base = inf
  hf_rope_theta_inf/         rope_theta 1e999 (infinity once parsed)
  hf_rope_factor_inf/        rope_scaling.factor 1e999
  gguf_rope_freqs_inf.gguf   rope_freqs with an infinite divisor
  hf_bos_huge/               bos_token_id 10^15 (in both json files)
  gguf_tokenizer_long.gguf   384 tokenizer ids, 380 embedding rows
  hf_tokenizer_long/         the same in a folder
  gguf_attn_bias.gguf        a blk.0.attn_q.bias tensor (Llama 3 has none; herd cannot add it)
  hf_attn_bias/              model.layers.0.self_attn.q_proj.bias, attention_bias true
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


def edit_config(d, file="config.json", **changes):
    """Rewrites d/file with changes; a value "1e999" is written as that literal."""
    with open(os.path.join(d, file)) as f:
        c = json.load(f)
    for k, v in changes.items():
        if "." in k:
            a, b = k.split(".")
            c[a][b] = v
        else:
            c[k] = v
    text = json.dumps(c, indent=2).replace('"1e999"', "1e999")
    with open(os.path.join(d, file), "w") as f:
        f.write(text)


def hparams(out, cfg, store, hf, gg):
    """The hyper-parameter variants listed at the top."""
    import logging
    import gguf
    logging.getLogger("gguf.gguf_writer").setLevel(logging.ERROR)  # the overwrites are meant
    T = gguf.GGUFValueType
    big = 2**31 - 2

    def keys(**kv):
        def edit(w):
            for k, (v, t) in kv.items():
                w.add_key_value("llama." + k.replace("__", "."), v, t)
        return edit

    # (no rope_freqs: its length would be checked first; the RoPE table is what is sized)
    gg("gguf_head_dim_huge.gguf", drop=("rope_freqs.weight",),
       edit=keys(attention__key_length=(big, T.UINT32), attention__value_length=(big, T.UINT32),
                 rope__dimension_count=(big, T.UINT32)))
    edit_config(hf("hf_head_dim_huge", store), head_dim=big)
    edit_config(hf("hf_head_dim_wrap", store), head_dim=2**32 + 16)
    gg("gguf_block_count_huge.gguf", edit=keys(block_count=(2**31 - 1, T.UINT32)))
    gg("gguf_block_count_bool.gguf", edit=keys(block_count=(True, T.BOOL)))
    edit_config(hf("hf_layers_huge", store), num_hidden_layers=10**9)
    gg("gguf_rope_theta_inf.gguf", edit=keys(rope__freq_base=(float("inf"), T.FLOAT32)))
    edit_config(hf("hf_rope_theta_inf", store), rope_theta="1e999")
    edit_config(hf("hf_rope_factor_inf", store), **{"rope_scaling.factor": "1e999"})

    def inf_divisor(w):
        f = mm.llama3_rope_factors(cfg)
        f[3] = float("inf")
        w.add_tensor("rope_freqs.weight", f)
    gg("gguf_rope_freqs_inf.gguf", drop=("rope_freqs.weight",), edit=inf_divisor)
    d = hf("hf_bos_huge", store)
    edit_config(d, bos_token_id=10**15)
    edit_config(d, "generation_config.json", bos_token_id=10**15)

    # 380 embedding (and output) rows under the tiny tokenizer's 384 ids
    short = dict(cfg, vocab=380)
    st = dict(store)
    for n in ("model.embed_tokens.weight", "lm_head.weight"):
        a, dt = st[n]
        st[n] = (mm.np.ascontiguousarray(a[:380]), dt)
    hf("hf_tokenizer_long", st, short)
    mm.write_gguf(os.path.join(out, "gguf_tokenizer_long.gguf"), short, BASE, st,
                  os.path.join(out, "good/hf"))

    def bias(w):
        w.add_tensor("blk.0.attn_q.bias", mm.np.zeros(cfg["n_heads"] * mm.head_dim_of(cfg),
                                                      dtype=mm.np.float32))
    gg("gguf_attn_bias.gguf", edit=bias)
    st = dict(store)
    st["model.layers.0.self_attn.q_proj.bias"] = (
        mm.np.zeros(cfg["n_heads"] * mm.head_dim_of(cfg), dtype=mm.np.float32), "F32")
    edit_config(hf("hf_attn_bias", st), attention_bias=True)


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
    hparams(out, cfg, store, hf, gg)
    print("make_bad_models: wrote %s" % out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
