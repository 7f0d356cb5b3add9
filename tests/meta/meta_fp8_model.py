#!/usr/bin/env python3
"""meta_fp8_model.py - tiny checkpoints in the layout of Meta's original FP8 release of Llama
3.1 405B ("fp8_mixed" in llama-models), and their numpy reference.

The layout, from llama-models (models/llama3/quantization/loader.py, convert_to_fp8_quantized_
model, and models/quantize_impls.py, load_fp8 / ffn_swiglu_dynamic / fc_dynamic):
  consolidated.NN.pth   the state dict of model-parallel rank NN as in the BF16 release; the
                        FFN weights feed_forward.w1/w3/w2 of every layer but the first and
                        the last hold e4m3 values (float8_e4m3fn storages; a BF16 storage of
                        e4m3 values reads the same, since the loader first loads the state
                        dict into a BF16 model and then casts with weight.to(float8_e4m3fn))
  fp8_scales_NN.pt      torch.save of {"<layer>_feed_forward.<w1|w3|w2>_<NN>": float32 [rows]}:
                        fbgemm's per-row weight scales (quantize_fp8_per_row)
  activations           quantized per token by fbgemm's quantize_fp8_per_row with
                        fp8_activation_scale_ub = 1200 (the loader's default), then
                        f8f8bf16_rowwise: (q_x . q_w) * x_scale * w_scale
Everything else (attention, norms, embedding, output, the first and last FFN) is BF16.

  meta_fp8_model.py make OUT --models DIR
      From gqa2_untied_f32's configuration with 4 layers (so layers 1 and 2 are FP8), writes
      OUT/f8     params.json, tokenizer.json, consolidated.00.pth with float8_e4m3fn storages
                 (real torch.save when torch >= 2.1 is importable; else the byte-layout
                 mimic of make_meta_models.py, whose only difference from torch 2.x's
                 pickle is the GLOBAL torch.Float8_e4m3fnStorage torch 1.13 cannot write)
                 and fp8_scales_0.pt (real torch.save whenever torch is importable)
      OUT/bf16   the same with the FP8 weights stored as BF16 e4m3 values
      OUT/mp2    two shards (herd refuses its w2: see load_meta.c)
      OUT/ref_logits.npy, OUT/tokens.txt: fp8_model.py's reference (Meta's model in float32
                 numpy, FP8 linears through the fbgemm rules) on the golden's prompt
  meta_fp8_model.py check OUT --herd BIN [--case f8|bf16]
      `herd logits --all --kv-type f32` against the reference: max |d| <= 1e-4 * max(1,
      max |ref|) and the same argmax everywhere; `herd info` must report 6 FP8 matrices.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "models"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))

import fp8_model as f8m  # noqa: E402
import make_meta_models as mmm  # noqa: E402

CFG = "gqa2_untied_f32"
N_LAYERS = 4
UB = 1200.0


def torch_has_float8():
    try:
        import torch
        return hasattr(torch, "float8_e4m3fn")
    except ImportError:
        return False


def fp8_layers(n_layers):
    return range(1, n_layers - 1)


def make(out, models):
    import make_model as mm
    import reference_llama as ref
    from golden_model import read_golden
    cfg = dict(mm.CONFIGS[CFG], n_layers=N_LAYERS)
    conf = mm.hf_config_json(cfg)
    meta = mm.meta_weights(cfg)
    store, dtypes, f32w, scales = {}, {}, {}, {}
    for name, a in meta.items():
        parts = name.split(".")
        is_fp8 = (name.startswith("layers.") and int(parts[1]) in fp8_layers(N_LAYERS) and
                  parts[2] == "feed_forward")
        if is_fp8:
            codes, scale = f8m.quantize_weight(a)
            store[name], dtypes[name] = codes, "F8_E4M3"
            scales["%s_feed_forward.%s_0" % (parts[1], parts[3])] = scale.astype(np.float32)
            f32w[name] = f8m.FP8Linear(codes, scale, UB)
        else:
            store[name], f32w[name] = mm.round_to(a, "BF16")
            dtypes[name] = "BF16"
    have_torch = mmm.have_torch()
    hf_src = os.path.join(models, CFG, "hf")
    for case in ("f8", "bf16", "mp2"):
        d = os.path.join(out, case)
        if os.path.isdir(d):
            shutil.rmtree(d)
        os.makedirs(d)
        with open(os.path.join(d, "params.json"), "w") as f:
            json.dump(mmm.params_json(conf, cfg["ffn_dim"]), f, indent=2)
        shutil.copyfile(os.path.join(hf_src, "tokenizer.json"), os.path.join(d, "tokenizer.json"))
        st, dt = dict(store), dict(dtypes)
        if case == "bf16":  # e4m3 values in BF16 storages (exact: e4m3 is a subset of bf16)
            for name in st:
                if dt[name] == "F8_E4M3":
                    st[name], dt[name] = mm.round_to(f8m.e4m3_decode(st[name]), "BF16")[0], "BF16"
        n = 2 if case == "mp2" else 1
        for k in range(n):
            shard = mmm.shard_state(st, n, k)
            path = os.path.join(d, "consolidated.%02d.pth" % k)
            has_f8 = any(dt[x] == "F8_E4M3" for x in shard)
            if have_torch and (not has_f8 or torch_has_float8()):
                mmm.torch_save(shard, {x: dt[x] for x in shard}, path)
            else:
                mmm.mimic_save(shard, {x: dt[x] for x in shard}, path)
            sc = {}
            for key, v in scales.items():
                rows = v.reshape(-1)
                if n > 1 and ".w2_" not in key:  # w1/w3: rows split with the weight
                    rows = np.array_split(rows, n)[k]
                sc[key[:-2] + "_%d" % k] = np.ascontiguousarray(rows, np.float32)
            sp = os.path.join(d, "fp8_scales_%d.pt" % k)
            (mmm.torch_save if have_torch else mmm.mimic_save)(sc, "F32", sp)

    # the reference: Meta's layout, float32 numpy, FP8 linears through the fbgemm rules
    p = ref.Params(conf)
    m = ref.Model.__new__(ref.Model)
    m.cfg, m.p, m.dt = conf, p, np.float32
    w = {"tok_embeddings": f32w["tok_embeddings.weight"], "norm": f32w["norm.weight"],
         "output": f32w["output.weight"]}
    for i in range(p.n_layers):
        for key, meta_name in (("wq", "attention.wq"), ("wk", "attention.wk"),
                               ("wv", "attention.wv"), ("wo", "attention.wo"),
                               ("w1", "feed_forward.w1"), ("w3", "feed_forward.w3"),
                               ("w2", "feed_forward.w2"), ("attention_norm", "attention_norm"),
                               ("ffn_norm", "ffn_norm")):
            w["%d.%s" % (i, key)] = f32w["layers.%d.%s.weight" % (i, meta_name)]
    m.w = w
    m.freqs = ref.rope_freqs(p)
    header, _ = read_golden(os.path.join(HERE, "..", "golden", "model", CFG + ".golden"))
    tokens = header["tokens"]
    logits = ref.forward(m, tokens, 0, ref.Cache(m, len(tokens)))
    np.save(os.path.join(out, "ref_logits.npy"), logits.astype(np.float32))
    with open(os.path.join(out, "tokens.txt"), "w") as f:
        f.write(",".join(str(t) for t in tokens))
    with open(os.path.join(out, "WRITER"), "w") as f:
        f.write("weights: %s, float8 storages: %s, scales: %s\n" % (
            "torch" if have_torch else "mimic",
            "torch" if have_torch and torch_has_float8() else "mimic",
            "torch" if have_torch else "mimic"))
    print("meta_fp8_model: wrote %s/{f8,bf16,mp2} (%d FP8 matrices) and the reference logits"
          % (out, len(scales)))
    return 0


def check(out, herd, case, tol):
    ref = np.load(os.path.join(out, "ref_logits.npy"))
    d = os.path.join(out, case)
    res = os.path.join(out, "herd_logits_%s.bin" % case)
    p = subprocess.run([herd, "logits", "-m", d, "--tokens", "@" + os.path.join(out, "tokens.txt"),
                        "--all", "--kv-type", "f32", "-o", res],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        print(p.stderr.decode())
        return 1
    got = np.fromfile(res, dtype=np.float32).reshape(ref.shape)
    info = subprocess.run([herd, "info", d], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE).stdout.decode()
    if "fp8_matrices: 6" not in info:
        print("FAIL: herd info does not report the 6 FP8 matrices:\n" + info)
        return 1
    diff = float(np.abs(got - ref).max())
    bound = tol * max(1.0, float(np.abs(ref).max()))
    same = int((got.argmax(-1) == ref.argmax(-1)).sum())
    print("measured: meta fp8 (%s) max|dlogit| %.3g (bound %.3g), argmax equal at %d/%d"
          % (case, diff, bound, same, ref.shape[0]))
    ok = diff <= bound and same == ref.shape[0]
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def main():
    mmm.maybe_reexec()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cmd", choices=("make", "check"))
    ap.add_argument("out")
    ap.add_argument("--models")
    ap.add_argument("--herd")
    ap.add_argument("--case", default="f8", choices=("f8", "bf16"))
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    if a.cmd == "make":
        return make(a.out, a.models)
    return check(a.out, a.herd, a.case, a.tol)


if __name__ == "__main__":
    sys.exit(main())
