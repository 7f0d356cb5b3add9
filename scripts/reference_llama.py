#!/usr/bin/env python3
"""reference_llama.py - an independent float32 numpy transcription of Meta's Llama 3 model.

Transcribed from meta-llama/llama-models, models/llama3/reference_impl/model.py (RMSNorm,
precompute_freqs_cis + apply_scaling, apply_rotary_emb on interleaved pairs, repeat_kv,
Attention with a KV cache and a causal mask, FeedForward w2(silu(w1 x) * w3 x),
TransformerBlock, Transformer), with two deliberate departures that the HF / GGUF
checkpoints need:
  - apply_scaling takes factor / low_freq_factor / high_freq_factor /
    original_max_position_embeddings from config.json (Meta's file hard-codes factor 8,
    which is wrong for Llama 3.2, whose factor is 32);
  - head_dim comes from config.json "head_dim" when present (else dim // n_heads).
Weights are read from a Hugging Face folder (config.json + safetensors, single or sharded,
F32 / F16 / BF16 widened exactly to float32) and q_proj / k_proj rows are permuted back from
HF's rotate-half order to Meta's interleaved order (the inverse of transformers'
convert_llama_weights_to_hf.py permute). A GGUF file can be read instead (--gguf; q/k are
already in Meta order there, and rope_freqs.weight is checked against the config).

All math is float32 like Meta's code: the RoPE angle is float32(position) * float32(freq)
rounded to float32 (torch.outer in float32), then cos / sin of that float32 angle.

--self-check also runs a second, separately written forward pass in the Hugging Face style
(rotate_half on the HF-ordered weights, no permutation, repeat by index) and reports the
largest difference, which checks the permutation handling.

Usage:
  reference_llama.py HF_DIR --tokens 1,2,3 [--all] [-o logits.bin] [--greedy N]
                     [--gguf FILE] [--self-check] [--f64]
  --tokens also takes @FILE (comma-separated ids). Logits are written as float32
  little-endian [positions x vocab] (last position unless --all); --greedy N prints the N
  greedily generated ids as a JSON array (no early stop).
Needs only numpy (and gguf for --gguf).
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np

ST_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "F64": np.float64}


def read_safetensors(path):
    """{name: float32 array} from one safetensors file."""
    with open(path, "rb") as f:
        raw = f.read()
    (hlen,) = struct.unpack_from("<Q", raw, 0)
    header = json.loads(raw[8:8 + hlen].decode("utf-8"))
    base = 8 + hlen
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        dt = ST_DTYPES[info["dtype"]]
        a = np.frombuffer(raw, dtype=np.dtype(dt).newbyteorder("<"), count=(e - b) //
                          np.dtype(dt).itemsize, offset=base + b).reshape(info["shape"])
        if info["dtype"] == "BF16":
            a = (a.astype(np.uint32) << np.uint32(16)).view(np.float32)
        out[name] = np.ascontiguousarray(a, dtype=np.float32)
    return out


def read_hf_tensors(hf_dir):
    idx = os.path.join(hf_dir, "model.safetensors.index.json")
    if os.path.isfile(idx):
        with open(idx) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    t = {}
    for fn in files:
        t.update(read_safetensors(os.path.join(hf_dir, fn)))
    return t


def unpermute_hf(w, n_heads):
    """HF rotate-half rows -> Meta interleaved rows (inverse of view(n, hd/2, 2, in).transpose(1, 2))."""
    rows, cols = w.shape
    return np.ascontiguousarray(
        w.reshape(n_heads, 2, rows // n_heads // 2, cols).transpose(0, 2, 1, 3).reshape(rows, cols))


class Params:
    def __init__(self, cfg):
        self.dim = cfg["hidden_size"]
        self.n_layers = cfg["num_hidden_layers"]
        self.n_heads = cfg["num_attention_heads"]
        self.n_kv_heads = cfg.get("num_key_value_heads", self.n_heads)
        self.head_dim = cfg.get("head_dim") or self.dim // self.n_heads
        self.vocab = cfg["vocab_size"]
        self.norm_eps = cfg["rms_norm_eps"]
        self.rope_theta = cfg.get("rope_theta", 10000.0)
        self.tied = cfg.get("tie_word_embeddings", False)
        rs = cfg.get("rope_scaling")
        self.scaling = None
        if rs is not None:
            kind = rs.get("rope_type", rs.get("type"))
            if kind != "llama3":
                raise ValueError("rope_scaling type %r is not Llama 3's" % kind)
            self.scaling = (float(rs["factor"]), float(rs["low_freq_factor"]),
                            float(rs["high_freq_factor"]),
                            float(rs["original_max_position_embeddings"]))


class Model:
    """Meta-layout float32 weights plus hyper-parameters."""

    def __init__(self, hf_dir, gguf_path=None, dtype=np.float32):
        with open(os.path.join(hf_dir, "config.json")) as f:
            self.cfg = json.load(f)
        p = self.p = Params(self.cfg)
        self.dt = dtype
        if gguf_path:
            self._load_gguf(gguf_path)
        else:
            self._load_hf(hf_dir)
        for k in self.w:
            self.w[k] = self.w[k].astype(dtype)
        self.freqs = rope_freqs(p)

    def _load_hf(self, hf_dir):
        p, t = self.p, read_hf_tensors(hf_dir)
        self.hf = t
        w = {"tok_embeddings": t["model.embed_tokens.weight"], "norm": t["model.norm.weight"]}
        w["output"] = t["model.embed_tokens.weight"] if p.tied else t["lm_head.weight"]
        for i in range(p.n_layers):
            h = "model.layers.%d." % i
            w["%d.wq" % i] = unpermute_hf(t[h + "self_attn.q_proj.weight"], p.n_heads)
            w["%d.wk" % i] = unpermute_hf(t[h + "self_attn.k_proj.weight"], p.n_kv_heads)
            w["%d.wv" % i] = t[h + "self_attn.v_proj.weight"]
            w["%d.wo" % i] = t[h + "self_attn.o_proj.weight"]
            w["%d.w1" % i] = t[h + "mlp.gate_proj.weight"]
            w["%d.w3" % i] = t[h + "mlp.up_proj.weight"]
            w["%d.w2" % i] = t[h + "mlp.down_proj.weight"]
            w["%d.attention_norm" % i] = t[h + "input_layernorm.weight"]
            w["%d.ffn_norm" % i] = t[h + "post_attention_layernorm.weight"]
        self.w = w

    def _load_gguf(self, path):
        import gguf
        r = gguf.GGUFReader(path)
        t = {}
        for ti in r.tensors:
            shape = [int(x) for x in reversed(list(ti.shape))]
            if ti.tensor_type == gguf.GGMLQuantizationType.BF16:
                a = (np.asarray(ti.data).view(np.uint16).astype(np.uint32) << 16).view(np.float32)
            else:
                a = np.asarray(ti.data).astype(np.float32)
            t[ti.name] = a.reshape(shape)
        p = self.p
        w = {"tok_embeddings": t["token_embd.weight"], "norm": t["output_norm.weight"]}
        w["output"] = t.get("output.weight", t["token_embd.weight"])
        for i in range(p.n_layers):
            b = "blk.%d." % i
            for mine, theirs in (("wq", "attn_q"), ("wk", "attn_k"), ("wv", "attn_v"),
                                 ("wo", "attn_output"), ("w1", "ffn_gate"), ("w3", "ffn_up"),
                                 ("w2", "ffn_down"), ("attention_norm", "attn_norm"),
                                 ("ffn_norm", "ffn_norm")):
                w["%d.%s" % (i, mine)] = t[b + theirs + ".weight"]
        if p.scaling is not None:
            base = base_freqs(p)
            got = base / t["rope_freqs.weight"].astype(np.float32)
            want = rope_freqs(p)
            if not np.allclose(got, want, rtol=1e-6, atol=0):
                raise ValueError("rope_freqs.weight disagrees with the config's llama3 scaling")
        self.w = w


def base_freqs(p):
    """1 / theta^(2i/d) in float32, as precompute_freqs_cis."""
    d = p.head_dim
    return (np.float32(1.0) / (np.float32(p.rope_theta) **
                               (np.arange(0, d, 2, dtype=np.float32)[: d // 2] / np.float32(d))))


def rope_freqs(p):
    """precompute_freqs_cis's freqs after apply_scaling, with the scaling read from the config."""
    freqs = base_freqs(p)
    if p.scaling is None:
        return freqs
    scale_factor, low_freq_factor, high_freq_factor, old_context_len = p.scaling
    f = np.float32
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    wavelen = f(2 * math.pi) / freqs
    new_freqs = np.where(wavelen > f(low_freq_wavelen), freqs / f(scale_factor), freqs)
    smooth = (f(old_context_len) / wavelen - f(low_freq_factor)) / f(high_freq_factor - low_freq_factor)
    mid = (wavelen >= f(high_freq_wavelen)) & (wavelen <= f(low_freq_wavelen))
    out = np.where(mid, (f(1) - smooth) * new_freqs / f(scale_factor) + smooth * new_freqs, new_freqs)
    return out.astype(np.float32)


def cos_sin(freqs, positions, dt):
    """torch.polar(1, outer(t, freqs)) in float32: angle rounded to float32, then cos/sin."""
    ang = np.outer(np.asarray(positions, dtype=np.float32), freqs).astype(np.float32)
    if dt == np.float64:
        ang = np.outer(np.asarray(positions, dtype=np.float64), freqs.astype(np.float64))
    a64 = ang.astype(np.float64)
    return np.cos(a64).astype(dt), np.sin(a64).astype(dt)


def rms_norm(x, weight, eps):
    ms = np.mean(x * x, axis=-1, keepdims=True)
    return (x * (1.0 / np.sqrt(ms + x.dtype.type(eps)))).astype(x.dtype) * weight


def apply_rotary_emb(x, cos, sin):
    """x [T, H, hd] with interleaved (re, im) pairs; cos/sin [T, hd/2]."""
    xr, xi = x[..., 0::2], x[..., 1::2]
    c, s = cos[:, None, :], sin[:, None, :]
    out = np.empty_like(x)
    out[..., 0::2] = xr * c - xi * s
    out[..., 1::2] = xr * s + xi * c
    return out


def silu(x):
    return x / (x.dtype.type(1) + np.exp(-x))


class Cache:
    def __init__(self, m, max_len):
        p = m.p
        self.k = [np.zeros((max_len, p.n_kv_heads, p.head_dim), m.dt) for _ in range(p.n_layers)]
        self.v = [np.zeros((max_len, p.n_kv_heads, p.head_dim), m.dt) for _ in range(p.n_layers)]


def attention(m, i, x, start, cache, cos, sin):
    p, w, dt = m.p, m.w, m.dt
    T = x.shape[0]
    xq = (x @ w["%d.wq" % i].T).reshape(T, p.n_heads, p.head_dim)
    xk = (x @ w["%d.wk" % i].T).reshape(T, p.n_kv_heads, p.head_dim)
    xv = (x @ w["%d.wv" % i].T).reshape(T, p.n_kv_heads, p.head_dim)
    xq = apply_rotary_emb(xq, cos, sin)
    xk = apply_rotary_emb(xk, cos, sin)
    cache.k[i][start:start + T] = xk
    cache.v[i][start:start + T] = xv
    S = start + T
    keys, values = cache.k[i][:S], cache.v[i][:S]
    n_rep = p.n_heads // p.n_kv_heads
    out = np.empty((T, p.n_heads, p.head_dim), dt)
    scale = dt(1.0 / math.sqrt(p.head_dim)) if dt == np.float64 else None
    # Query rows in blocks to bound memory on long prompts; each row is independent.
    blk = 256
    for h in range(p.n_heads):
        kv = h // n_rep                          # repeat_kv: head h reads kv head h // n_rep
        kh, vh = keys[:, kv, :], values[:, kv, :]
        for r0 in range(0, T, blk):
            r1 = min(T, r0 + blk)
            q = xq[r0:r1, h, :]
            sc = q @ kh.T
            sc = sc / dt(math.sqrt(p.head_dim)) if scale is None else sc * scale
            # Causal mask: query at position start+r sees keys 0..start+r.
            qpos = start + np.arange(r0, r1)[:, None]
            sc = np.where(np.arange(S)[None, :] > qpos, -np.inf, sc).astype(dt)
            sc = sc - sc.max(axis=-1, keepdims=True)
            e = np.exp(sc)
            pr = e / e.sum(axis=-1, keepdims=True)
            out[r0:r1, h, :] = pr @ vh
    return out.reshape(T, p.n_heads * p.head_dim) @ w["%d.wo" % i].T


def forward(m, tokens, start, cache):
    """Logits [T, vocab] for tokens at positions start..start+T-1, appending to cache."""
    p, w = m.p, m.w
    tokens = np.asarray(tokens, dtype=np.int64)
    if tokens.min() < 0 or tokens.max() >= p.vocab:
        raise ValueError("token id out of range [0, %d)" % p.vocab)
    h = w["tok_embeddings"][tokens]
    cos, sin = cos_sin(m.freqs, np.arange(start, start + len(tokens)), m.dt)
    for i in range(p.n_layers):
        h = h + attention(m, i, rms_norm(h, w["%d.attention_norm" % i], p.norm_eps), start,
                          cache, cos, sin)
        x = rms_norm(h, w["%d.ffn_norm" % i], p.norm_eps)
        h = h + (silu(x @ w["%d.w1" % i].T) * (x @ w["%d.w3" % i].T)) @ w["%d.w2" % i].T
    h = rms_norm(h, w["norm"], p.norm_eps)
    return (h @ w["output"].T).astype(m.dt)


def logits_and_greedy(m, tokens, n_new):
    """(logits for every prompt position, n_new greedy ids, top1-top2 margins along the
    greedy path). Greedy never stops early: callers truncate at stop ids."""
    cache = Cache(m, len(tokens) + n_new)
    lg = forward(m, tokens, 0, cache)
    out, margins = [], []
    last = lg[-1]
    pos = len(tokens)
    for _ in range(n_new):
        srt = np.sort(last)
        margins.append(float(srt[-1] - srt[-2]))
        nxt = int(np.argmax(last))
        out.append(nxt)
        if len(out) == n_new:
            break
        last = forward(m, [nxt], pos, cache)[-1]
        pos += 1
    return lg, out, margins


# ----------------------------------------------------------------------------------------
# A second forward pass, Hugging Face style, for --self-check: HF-ordered q/k weights,
# rotate_half with cos/sin repeated over both halves, no KV cache, full causal attention.
# ----------------------------------------------------------------------------------------
def forward_hf_style(m, tokens):
    p, t, dt = m.p, m.hf, m.dt
    T = len(tokens)
    g = {k: v.astype(dt) for k, v in t.items()}
    x = g["model.embed_tokens.weight"][np.asarray(tokens)]
    freqs = m.freqs
    emb = np.concatenate([freqs, freqs])
    ang = (np.arange(T, dtype=np.float32)[:, None] * emb[None, :]).astype(np.float32)
    cos, sin = np.cos(ang.astype(np.float64)).astype(dt), np.sin(ang.astype(np.float64)).astype(dt)

    def rot_half(v):
        half = v.shape[-1] // 2
        return np.concatenate([-v[..., half:], v[..., :half]], axis=-1)

    def norm(v, wt):
        var = np.mean(v * v, axis=-1, keepdims=True)
        return wt * (v / np.sqrt(var + dt(p.norm_eps)))

    mask = np.triu(np.full((T, T), -np.inf, dtype=dt), 1)
    for i in range(p.n_layers):
        pre = "model.layers.%d." % i
        hsn = norm(x, g[pre + "input_layernorm.weight"])
        q = (hsn @ g[pre + "self_attn.q_proj.weight"].T).reshape(T, p.n_heads, p.head_dim).transpose(1, 0, 2)
        k = (hsn @ g[pre + "self_attn.k_proj.weight"].T).reshape(T, p.n_kv_heads, p.head_dim).transpose(1, 0, 2)
        v = (hsn @ g[pre + "self_attn.v_proj.weight"].T).reshape(T, p.n_kv_heads, p.head_dim).transpose(1, 0, 2)
        q = q * cos[None] + rot_half(q) * sin[None]
        k = k * cos[None] + rot_half(k) * sin[None]
        rep = p.n_heads // p.n_kv_heads
        k = np.repeat(k, rep, axis=0)
        v = np.repeat(v, rep, axis=0)
        sc = q @ k.transpose(0, 2, 1) / dt(math.sqrt(p.head_dim)) + mask[None]
        sc = np.exp(sc - sc.max(-1, keepdims=True))
        sc = sc / sc.sum(-1, keepdims=True)
        o = (sc @ v).transpose(1, 0, 2).reshape(T, p.n_heads * p.head_dim)
        x = x + o @ g[pre + "self_attn.o_proj.weight"].T
        hsn = norm(x, g[pre + "post_attention_layernorm.weight"])
        gt = hsn @ g[pre + "mlp.gate_proj.weight"].T
        x = x + (gt / (1 + np.exp(-gt)) * (hsn @ g[pre + "mlp.up_proj.weight"].T)) @ \
            g[pre + "mlp.down_proj.weight"].T
    x = norm(x, g["model.norm.weight"])
    head = g["model.embed_tokens.weight"] if p.tied else g["lm_head.weight"]
    return x @ head.T


def parse_tokens(s):
    if s.startswith("@"):
        with open(s[1:]) as f:
            s = f.read()
    return [int(x) for x in s.replace("\n", ",").split(",") if x.strip()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("hf_dir")
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--all", action="store_true")
    ap.add_argument("-o", "--output")
    ap.add_argument("--greedy", type=int, default=0)
    ap.add_argument("--gguf")
    ap.add_argument("--self-check", action="store_true")
    ap.add_argument("--f64", action="store_true", help="compute in float64 (diagnostics)")
    a = ap.parse_args()
    toks = parse_tokens(a.tokens)
    m = Model(a.hf_dir, a.gguf, np.float64 if a.f64 else np.float32)
    lg, ids, margins = logits_and_greedy(m, toks, a.greedy)
    if a.output:
        (lg if a.all else lg[-1:]).astype("<f4").tofile(a.output)
    if a.greedy:
        print(json.dumps(ids))
    if a.self_check:
        other = forward_hf_style(m, toks)
        d = float(np.max(np.abs(other - lg)))
        print("self-check: max|meta-style - hf-style| = %.3g (max|logit| %.3g)" %
              (d, float(np.max(np.abs(lg)))), file=sys.stderr)
        if d > 1e-4 * max(1.0, float(np.max(np.abs(lg)))):
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
