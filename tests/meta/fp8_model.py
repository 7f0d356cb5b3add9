#!/usr/bin/env python3
"""fp8_model.py - a tiny FP8 (fbgemm_fp8) Hugging Face checkpoint and its numpy reference.

  fp8_model.py make OUT --models DIR
      From make_model.py's gqa2_untied_f32 weights (DIR/gqa2_untied_f32/hf), writes OUT/hf:
      config.json with quantization_config {"quant_method": "fbgemm_fp8",
      "activation_scale_ub": UB, "modules_to_not_convert": ["lm_head",
      "model.layers.1.self_attn.o_proj"]}, and model.safetensors in which every other linear
      weight is float8_e4m3fn with a float32 weight_scale [out, 1] and input_scale_ub [1],
      quantized as transformers' fbgemm_fp8 quantizer does offline (per output row:
      scale = amax / 448, q = e4m3(w / scale), round to nearest even), while the embedding,
      the norms and the modules to leave unconverted stay BF16. Then runs the reference on
      the golden's prompt and writes OUT/ref_logits.npy.
  fp8_model.py check OUT --herd BIN
      Runs `herd logits --all --kv-type f32` on OUT/hf and compares with OUT/ref_logits.npy
      (max |d| <= 1e-4 * max(1, max |ref|), argmax equal everywhere), and checks that
      `herd info` reports the 13 FP8 matrices.
  fp8_model.py quantize OUT --herd BIN
      `herd quantize` from the FP8 folder to Q8_0, and that GGUF's logits stay close.
Also writes OUT/bad_not_convert and OUT/bad_no_qcfg, which herd must refuse.

The reference is scripts/reference_llama.py (Meta's model in float32 numpy) with every FP8
linear replaced by the fbgemm_fp8 path: each token's activation row quantized by
quantize_fp8_per_row's rules (amax clamped to [1e-12, activation_scale_ub], inv = 448 /
amax, q = e4m3(clamp(x * inv, -448, 448)), token scale 1 / inv), then
(q_x . q_w) * token scale * row scale. The product is summed in float64 here (herd sums in
float32; e4m3 products are exact in either), and the output is not rounded to bf16 (herd
keeps float32 activations, as for BF16 checkpoints).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "models"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))

CFG = "gqa2_untied_f32"
UB = 1200.0
NOT_CONVERT = ["lm_head", "model.layers.1.self_attn.o_proj"]


def e4m3_round(v):
    """float32 array -> nearest e4m3 values (ties to even), clamped to +-448."""
    v = np.clip(np.asarray(v, np.float32), -448.0, 448.0).astype(np.float32)
    a = np.abs(v)
    sub = np.rint(v * np.float32(512.0)) / np.float32(512.0)
    bits = v.view(np.uint32).astype(np.uint64)
    bits = ((bits + 0x7FFFF + ((bits >> 20) & 1)) & 0xFFF00000).astype(np.uint32)
    norm = bits.view(np.float32)
    return np.where(a < np.float32(2.0 ** -6), sub, norm).astype(np.float32)


def e4m3_codes(r):
    """Exact e4m3 values (float32) -> their byte codes."""
    r = np.asarray(r, np.float32)
    sign = (np.signbit(r).astype(np.uint8) << 7)
    a = np.abs(r)
    sub = np.rint(a * 512.0).astype(np.uint8)
    bits = a.view(np.uint32)
    e = ((bits >> 23).astype(np.int64) - 120).clip(0, 15).astype(np.uint8)
    m = ((bits >> 20) & 7).astype(np.uint8)
    return np.where(a < 2.0 ** -6, sub, (e << 3) | m).astype(np.uint8) | sign


def e4m3_decode(c):
    c = np.asarray(c, np.uint8)
    bits = ((c & 0x7F).astype(np.uint32) << 20)
    f = bits.view(np.float32) * np.float32(2.0 ** 120)
    return np.where(c & 0x80, -f, f).astype(np.float32)


def quantize_weight(w):
    """fbgemm_fp8 offline weight quantization: (codes [out, in] uint8, scale [out] f32)."""
    w = np.asarray(w, np.float32)
    amax = np.abs(w).max(axis=1).astype(np.float32)
    scale = (amax / np.float32(448.0)).astype(np.float32)
    scale = np.where(scale == 0, np.float32(1.0), scale).astype(np.float32)
    q = e4m3_round(w / scale[:, None])
    return e4m3_codes(q), scale


class FP8Linear:
    """x @ lin.T with the fbgemm_fp8 activation path (numpy defers to __rmatmul__)."""
    __array_ufunc__ = None

    def __init__(self, codes, scale, ub):
        self.wq = e4m3_decode(codes).astype(np.float64)
        self.scale = scale.astype(np.float32)
        self.ub = np.float32(ub)

    @property
    def T(self):
        return self

    def __rmatmul__(self, x):
        x = np.asarray(x, np.float32)
        amax = np.abs(x).max(axis=-1).astype(np.float32)
        amax = np.minimum(np.maximum(amax, np.float32(1e-12)), self.ub)
        inv = (np.float32(448.0) / amax).astype(np.float32)
        xs = (np.float32(1.0) / inv).astype(np.float32)
        q = e4m3_round(x * inv[..., None])
        acc = (q.astype(np.float64) @ self.wq.T).astype(np.float32)
        return (acc * xs[..., None] * self.scale[None, :]).astype(np.float32)


def module_of(hf_name):
    return hf_name[:-len(".weight")]


def skipped(module):
    return any(s in module for s in NOT_CONVERT)


def make(out, models):
    import make_model as mm
    import reference_llama as ref
    from golden_model import read_golden
    cfg = mm.CONFIGS[CFG]
    src = os.path.join(models, CFG, "hf")
    d = os.path.join(out, "hf")
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    with open(os.path.join(src, "config.json")) as f:
        conf = json.load(f)
    conf["torch_dtype"] = "bfloat16"
    conf["quantization_config"] = {"quant_method": "fbgemm_fp8", "activation_scale_ub": UB,
                                   "modules_to_not_convert": NOT_CONVERT}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(conf, f, indent=2)
    for fn in ("generation_config.json", "tokenizer.json"):
        shutil.copyfile(os.path.join(src, fn), os.path.join(d, fn))
    meta = mm.meta_weights(cfg)
    hf = mm.hf_tensors(cfg, meta)
    tensors, f32w = [], {}
    for name in sorted(hf):
        a = hf[name]
        if a.ndim == 2 and name != "model.embed_tokens.weight" and not skipped(module_of(name)):
            codes, scale = quantize_weight(a)
            tensors.append((name, codes, "F8_E4M3"))
            stem = name[:-len("weight")]
            tensors.append((stem + "weight_scale", scale.reshape(-1, 1), "F32"))
            tensors.append((stem + "input_scale_ub", np.array([UB], np.float32), "F32"))
            f32w[name] = FP8Linear(codes, scale, UB)
        else:
            s, back = mm.round_to(a, "BF16")
            tensors.append((name, s, "BF16"))
            f32w[name] = back
    mm.write_safetensors(os.path.join(d, "model.safetensors"), tensors)

    # The reference: Meta layout (q/k rows back from HF order; FP8 rows permute with their
    # scales, so the permuted linear is the same rows), float32 numpy.
    p = ref.Params(conf)
    m = ref.Model.__new__(ref.Model)
    m.cfg, m.p, m.dt = conf, p, np.float32
    w = {"tok_embeddings": f32w["model.embed_tokens.weight"], "norm": f32w["model.norm.weight"],
         "output": f32w["lm_head.weight"]}
    perm_q = ref.unpermute_hf(np.arange(p.n_heads * p.head_dim, dtype=np.float64)[:, None], p.n_heads)
    perm_k = ref.unpermute_hf(np.arange(p.n_kv_heads * p.head_dim, dtype=np.float64)[:, None],
                              p.n_kv_heads)
    for i in range(p.n_layers):
        h = "model.layers.%d." % i
        for mine, theirs, perm in (("wq", "self_attn.q_proj", perm_q), ("wk", "self_attn.k_proj", perm_k),
                                   ("wv", "self_attn.v_proj", None), ("wo", "self_attn.o_proj", None),
                                   ("w1", "mlp.gate_proj", None), ("w3", "mlp.up_proj", None),
                                   ("w2", "mlp.down_proj", None)):
            lin = f32w[h + theirs + ".weight"]
            if perm is not None:
                idx = perm[:, 0].astype(np.int64)
                if isinstance(lin, FP8Linear):
                    lin.wq, lin.scale = lin.wq[idx], lin.scale[idx]
                else:
                    lin = lin[idx]
            w["%d.%s" % (i, mine)] = lin
        w["%d.attention_norm" % i] = f32w[h + "input_layernorm.weight"]
        w["%d.ffn_norm" % i] = f32w[h + "post_attention_layernorm.weight"]
    m.w = w
    m.freqs = ref.rope_freqs(p)
    golden = os.path.join(HERE, "..", "golden", "model", CFG + ".golden")
    header, _ = read_golden(golden)
    tokens = header["tokens"]
    cache = ref.Cache(m, len(tokens))
    logits = ref.forward(m, tokens, 0, cache)
    np.save(os.path.join(out, "ref_logits.npy"), logits.astype(np.float32))
    with open(os.path.join(out, "tokens.txt"), "w") as f:
        f.write(",".join(str(t) for t in tokens))
    # Refused variants: an FP8 module listed in modules_to_not_convert; no quantization_config.
    for bad, edit in (("bad_not_convert", lambda c: c["quantization_config"][
                          "modules_to_not_convert"].append("mlp.gate_proj")),
                      ("bad_no_qcfg", lambda c: c.pop("quantization_config"))):
        bd = os.path.join(out, bad)
        if os.path.isdir(bd):
            shutil.rmtree(bd)
        shutil.copytree(d, bd)
        c = json.loads(json.dumps(conf))
        edit(c)
        with open(os.path.join(bd, "config.json"), "w") as f:
            json.dump(c, f, indent=2)
    print("fp8_model: wrote %s (%d FP8 linears) and the reference logits for %d tokens"
          % (d, sum(isinstance(v, FP8Linear) for v in f32w.values()), len(tokens)))
    return 0


def check(out, herd, tol):
    ref = np.load(os.path.join(out, "ref_logits.npy"))
    res = os.path.join(out, "herd_logits.bin")
    p = subprocess.run([herd, "logits", "-m", os.path.join(out, "hf"), "--tokens",
                        "@" + os.path.join(out, "tokens.txt"), "--all", "--kv-type", "f32", "-o", res],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        print(p.stderr.decode())
        return 1
    got = np.fromfile(res, dtype=np.float32).reshape(ref.shape)
    info = subprocess.run([herd, "info", os.path.join(out, "hf")], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE).stdout.decode()
    if "fp8_matrices: 13" not in info or "f8_e4m3 x 13" not in info:
        print("FAIL: herd info does not report the 13 FP8 matrices:\n" + info)
        return 1
    d = float(np.abs(got - ref).max())
    bound = tol * max(1.0, float(np.abs(ref).max()))
    same = int((got.argmax(-1) == ref.argmax(-1)).sum())
    print("measured: fp8 max|dlogit| %.3g (bound %.3g), argmax equal at %d/%d positions"
          % (d, bound, same, ref.shape[0]))
    ok = d <= bound and same == ref.shape[0]
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def quantize(out, herd):
    """herd quantize reads the FP8 folder: Q8_0 of the dequantized FP8 weights. Without the
    activation quantization the logits move by the FP8 activation error, so this checks
    only that the greedy choices mostly agree."""
    ref = np.load(os.path.join(out, "ref_logits.npy"))
    g = os.path.join(out, "fp8_q8_0.gguf")
    res = os.path.join(out, "q8_logits.bin")
    for cmd in ([herd, "quantize", os.path.join(out, "hf"), g, "--type", "q8_0", "-t", "1"],
                [herd, "logits", "-m", g, "--tokens", "@" + os.path.join(out, "tokens.txt"),
                 "--all", "-o", res]):
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if p.returncode != 0:
            print(p.stdout.decode())
            return 1
    got = np.fromfile(res, dtype=np.float32).reshape(ref.shape)
    same = int((got.argmax(-1) == ref.argmax(-1)).sum())
    d = float(np.abs(got - ref).max())
    print("measured: fp8 -> q8_0 max|dlogit| %.3g, argmax equal at %d/%d" % (d, same, ref.shape[0]))
    ok = same >= ref.shape[0] * 3 // 4 and d < 0.3 * max(1.0, float(np.abs(ref).max()))
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=("make", "check", "quantize"))
    ap.add_argument("out")
    ap.add_argument("--models")
    ap.add_argument("--herd")
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    if a.mode == "make":
        return make(a.out, a.models)
    if a.mode == "quantize":
        return quantize(a.out, a.herd)
    return check(a.out, a.herd, a.tol)


if __name__ == "__main__":
    sys.exit(main())
