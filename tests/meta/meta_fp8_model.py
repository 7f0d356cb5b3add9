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
      OUT/mp2    two model-parallel shards, OUT/mp4 four (with 4 KV heads, one per rank):
                 each rank's FFN weights quantized on their own, as llama-models quantizes
                 the module a rank holds (w1/w3 rows, w2 columns with row scales of their own)
      OUT/ref_logits.npy (one shard), OUT/ref_logits_mpN.npy, OUT/tokens.txt: the reference
                 (Meta's model in float32 numpy, FP8 linears through the fbgemm rules) on the
                 golden's prompt. For the row-parallel w2 of N shards it computes what Meta's
                 ranks do: rank k quantizes its slice of the hidden activations per token,
                 multiplies by its columns and row scales, and the N products are added in
                 rank order (the all-reduce; float32 here and in herd, bf16 in Meta's code)
  meta_fp8_model.py check OUT --herd BIN [--case f8|bf16|mp2|mp4] [--mpi N]
      `herd logits --all --kv-type f32` against the reference: max |d| <= 1e-4 * max(1,
      max |ref|) and the same argmax everywhere; `herd info` must report 6 FP8 matrices.
      --mpi N: under `mpirun -np N` with N = the shard count, where rank r maps only its
      consolidated.r.pth (herd says so on stderr; 77 without mpirun).
  meta_fp8_model.py quantize OUT --herd BIN --case CASE
      `herd quantize` of the case to an f32 GGUF against the reference over the dequantized
      weights (each part's codes times its own row scales), same bound.
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


# case: (configuration overrides, model-parallel shards, FP8 weights stored as)
CASES = {"f8": ({}, 1, "F8_E4M3"), "bf16": ({}, 1, "BF16"), "mp2": ({}, 2, "F8_E4M3"),
         # four KV heads, so that each of the four ranks of Meta's code has one
         "mp4": ({"n_kv_heads": 4}, 4, "F8_E4M3")}


class FP8ColumnParts:
    """A row-parallel FP8 linear (w2) over S ranks: rank k multiplies its slice of x (its
    own per-token activation quantization) by its columns (its own row scales); the
    products are added in rank order, in float32 (the all-reduce)."""
    __array_ufunc__ = None

    def __init__(self, parts):
        self.parts = parts

    @property
    def T(self):
        return self

    def __rmatmul__(self, x):
        out, c0 = None, 0
        for lin in self.parts:
            c1 = c0 + lin.wq.shape[1]
            y = x[..., c0:c1] @ lin.T
            out = y if out is None else (out + y).astype(np.float32)
            c0 = c1
        return out


def case_weights(meta, n, n_layers):
    """Meta's rank k state dicts of the FP8 release, their fp8_scales_k dicts, and the
    reference's weights ({meta name: float32 array or FP8 linear}). Each rank's FFN weight
    is quantized on its own (fbgemm's per-row rule on the rank's slice), as llama-models
    quantizes the weights of the model-parallel module it holds."""
    import make_model as mm
    shards = [{} for _ in range(n)]
    dtypes, scales, ref_w = {}, [{} for _ in range(n)], {}
    for name, a in meta.items():
        parts = name.split(".")
        is_fp8 = (name.startswith("layers.") and int(parts[1]) in fp8_layers(n_layers) and
                  parts[2] == "feed_forward")
        d = mmm.split_dim(name)
        pieces = [a] if d is None or n == 1 else np.split(a, n, axis=d)
        if not is_fp8:
            dtypes[name] = "BF16"
            ref_w[name] = mm.round_to(a, "BF16")[1]
            for k in range(n):
                shards[k][name] = np.ascontiguousarray(mm.round_to(pieces[min(k, len(pieces) - 1)],
                                                                   "BF16")[0])
            continue
        dtypes[name] = "F8_E4M3"
        lins = []
        for k in range(n):
            codes, scale = f8m.quantize_weight(pieces[k])
            shards[k][name] = codes
            scales[k]["%s_feed_forward.%s_%d" % (parts[1], parts[3], k)] = scale.astype(np.float32)
            lins.append(f8m.FP8Linear(codes, scale, UB))
        if d == 1 and n > 1:  # w2: row-parallel
            ref_w[name] = FP8ColumnParts(lins)
        else:                 # w1, w3: column-parallel, the ranks' rows stacked (exact)
            ref_w[name] = f8m.FP8Linear(np.concatenate([shards[k][name] for k in range(n)]),
                                        np.concatenate([scales[k]["%s_feed_forward.%s_%d" % (
                                            parts[1], parts[3], k)] for k in range(n)]), UB)
    return shards, dtypes, scales, ref_w


def reference(conf, ref_w, tokens):
    """Meta's model in float32 numpy with the FP8 linears of ref_w."""
    import reference_llama as ref
    p = ref.Params(conf)
    m = ref.Model.__new__(ref.Model)
    m.cfg, m.p, m.dt = conf, p, np.float32
    w = {"tok_embeddings": ref_w["tok_embeddings.weight"], "norm": ref_w["norm.weight"],
         "output": ref_w["output.weight"]}
    for i in range(p.n_layers):
        for key, meta_name in (("wq", "attention.wq"), ("wk", "attention.wk"),
                               ("wv", "attention.wv"), ("wo", "attention.wo"),
                               ("w1", "feed_forward.w1"), ("w3", "feed_forward.w3"),
                               ("w2", "feed_forward.w2"), ("attention_norm", "attention_norm"),
                               ("ffn_norm", "ffn_norm")):
            w["%d.%s" % (i, key)] = ref_w["layers.%d.%s.weight" % (i, meta_name)]
    m.w = w
    m.freqs = ref.rope_freqs(p)
    return ref.forward(m, tokens, 0, ref.Cache(m, len(tokens)))


def ref_name(case):
    """The reference logits of a case: the one-shard cases share theirs."""
    return "ref_logits.npy" if CASES[case][1] == 1 else "ref_logits_%s.npy" % case


def make(out, models):
    import make_model as mm
    from golden_model import read_golden
    have_torch = mmm.have_torch()
    hf_src = os.path.join(models, CFG, "hf")
    header, _ = read_golden(os.path.join(HERE, "..", "golden", "model", CFG + ".golden"))
    tokens = header["tokens"]
    done_refs = set()
    for case, (over, n, stored) in CASES.items():
        cfg = dict(mm.CONFIGS[CFG], n_layers=N_LAYERS, **over)
        conf = mm.hf_config_json(cfg)
        shards, dtypes, scales, ref_w = case_weights(mm.meta_weights(cfg), n, N_LAYERS)
        d = os.path.join(out, case)
        if os.path.isdir(d):
            shutil.rmtree(d)
        os.makedirs(d)
        with open(os.path.join(d, "params.json"), "w") as f:
            json.dump(mmm.params_json(conf, cfg["ffn_dim"]), f, indent=2)
        shutil.copyfile(os.path.join(hf_src, "tokenizer.json"), os.path.join(d, "tokenizer.json"))
        for k in range(n):
            st, dt = dict(shards[k]), dict(dtypes)
            if stored == "BF16":  # e4m3 values in BF16 storages (exact: e4m3 is in bf16)
                for name in st:
                    if dt[name] == "F8_E4M3":
                        st[name] = mm.round_to(f8m.e4m3_decode(st[name]), "BF16")[0]
                        dt[name] = "BF16"
            path = os.path.join(d, "consolidated.%02d.pth" % k)
            has_f8 = any(dt[x] == "F8_E4M3" for x in st)
            if have_torch and (not has_f8 or torch_has_float8()):
                mmm.torch_save(st, {x: dt[x] for x in st}, path)
            else:
                mmm.mimic_save(st, {x: dt[x] for x in st}, path)
            sp = os.path.join(d, "fp8_scales_%d.pt" % k)
            (mmm.torch_save if have_torch else mmm.mimic_save)(scales[k], "F32", sp)
        if ref_name(case) not in done_refs:
            logits = reference(conf, ref_w, tokens)
            np.save(os.path.join(out, ref_name(case)), logits.astype(np.float32))
            done_refs.add(ref_name(case))
    with open(os.path.join(out, "tokens.txt"), "w") as f:
        f.write(",".join(str(t) for t in tokens))
    with open(os.path.join(out, "WRITER"), "w") as f:
        f.write("weights: %s, float8 storages: %s, scales: %s\n" % (
            "torch" if have_torch else "mimic",
            "torch" if have_torch and torch_has_float8() else "mimic",
            "torch" if have_torch else "mimic"))
    print("meta_fp8_model: wrote %s/{%s} and their reference logits" % (out, ",".join(CASES)))
    return 0


def check(out, herd, case, tol, mpi=0):
    ref = np.load(os.path.join(out, ref_name(case)))
    d = os.path.join(out, case)
    res = os.path.join(out, "herd_logits_%s%s.bin" % (case, "_np%d" % mpi if mpi else ""))
    cmd = [herd, "logits", "-m", d, "--tokens", "@" + os.path.join(out, "tokens.txt"), "--all",
           "--kv-type", "f32", "-o", res]
    if mpi:  # one rank per shard: each maps its own consolidated.NN.pth
        if not shutil.which("mpirun"):
            print("SKIP: no mpirun")
            return 77
        cmd = ["mpirun", "--oversubscribe", "-np", str(mpi)] + cmd + ["-t", "1"]
        if os.geteuid() == 0:
            cmd.insert(1, "--allow-run-as-root")
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        print(p.stderr.decode())
        return 1
    if mpi and "Meta shards handed to their ranks" not in p.stderr.decode():
        print("FAIL: the ranks did not take their own shards:\n" + p.stderr.decode())
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
    print("measured: meta fp8 (%s%s) max|dlogit| %.3g (bound %.3g), argmax equal at %d/%d"
          % (case, ", mpirun -np %d" % mpi if mpi else "", diff, bound, same, ref.shape[0]))
    ok = diff <= bound and same == ref.shape[0]
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def dequantized(lin):
    """An FP8 linear's weights dequantized (codes * row scale, per part) to float32: what a
    GGUF written by `herd quantize --type f32` holds."""
    parts = lin.parts if isinstance(lin, FP8ColumnParts) else [lin]
    return np.concatenate([(p.wq * p.scale[:, None]).astype(np.float32) for p in parts], axis=1)


def quantize(out, herd, case):
    """`herd quantize CASE f32`: the GGUF's weights are the checkpoint's dequantized FP8
    weights (each part's codes times its own row scales); its logits must match the numpy
    reference over those weights without activation quantization."""
    import make_model as mm
    from golden_model import read_golden
    over, n, _ = CASES[case]
    cfg = dict(mm.CONFIGS[CFG], n_layers=N_LAYERS, **over)
    conf = mm.hf_config_json(cfg)
    _, _, _, ref_w = case_weights(mm.meta_weights(cfg), n, N_LAYERS)
    for name, w in list(ref_w.items()):
        if isinstance(w, (f8m.FP8Linear, FP8ColumnParts)):
            ref_w[name] = dequantized(w)
    header, _ = read_golden(os.path.join(HERE, "..", "golden", "model", CFG + ".golden"))
    ref = reference(conf, ref_w, header["tokens"])
    g = os.path.join(out, "%s_f32.gguf" % case)
    res = os.path.join(out, "%s_f32_logits.bin" % case)
    for cmd in ([herd, "quantize", os.path.join(out, case), g, "--type", "f32", "-t", "1"],
                [herd, "logits", "-m", g, "--tokens", "@" + os.path.join(out, "tokens.txt"),
                 "--all", "--kv-type", "f32", "-o", res]):
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if p.returncode != 0:
            print(p.stdout.decode())
            return 1
    got = np.fromfile(res, dtype=np.float32).reshape(ref.shape)
    diff = float(np.abs(got - ref).max())
    bound = 1e-4 * max(1.0, float(np.abs(ref).max()))
    same = int((got.argmax(-1) == ref.argmax(-1)).sum())
    print("measured: meta fp8 (%s) -> f32 GGUF max|dlogit| %.3g (bound %.3g), argmax equal at "
          "%d/%d" % (case, diff, bound, same, ref.shape[0]))
    ok = diff <= bound and same == ref.shape[0]
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def main():
    mmm.maybe_reexec()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cmd", choices=("make", "check", "quantize"))
    ap.add_argument("out")
    ap.add_argument("--models")
    ap.add_argument("--herd")
    ap.add_argument("--case", default="f8", choices=tuple(CASES))
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--mpi", type=int, default=0, help="check: under mpirun -np N")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    if a.cmd == "make":
        return make(a.out, a.models)
    if a.cmd == "quantize":
        return quantize(a.out, a.herd, a.case)
    return check(a.out, a.herd, a.case, a.tol, a.mpi)


if __name__ == "__main__":
    sys.exit(main())
