#!/usr/bin/env python3
"""golden_model.py - expected logits and greedy continuations for the test models.

For each configuration of tests/models/make_model.py this generates the model (into a
temporary folder unless --models DIR is given), runs the independent numpy reference
(scripts/reference_llama.py, float32, Meta's math) on a fixed token sequence, and writes
tests/golden/model/NAME.golden:

  bytes 0..7   magic "HERDGOLD"
  u32 LE       format version (1)
  u32 LE       length of the JSON header that follows (UTF-8)
  JSON header  config, weights_sha256 (sha256 of the HF safetensors files, name order),
               dtype, vocab, tokens, positions (rows stored), columns (null = every id),
               greedy (32 ids, no early stop), greedy_margins, stop_ids, prompt_salt, arrays (the binary
               arrays below, in order: name -> [numpy dtype, shape])
  arrays       little-endian: argmax int32 [n_tokens], margin float32 [n_tokens] (top1-top2
               of the reference, per position), logits float32 [len(positions),
               len(columns) or vocab]; the header's max_abs_ref is max |logit| over all
               positions and ids (the tolerance scale)

Short prompts store every position and every id. The long (8300-token) prompts store a
sample of positions plus the last ones; the real-vocabulary model stores a fixed sample of
ids plus each stored position's top 8. Every file stays well under 200 KB.

Usage: golden_model.py [--out tests/golden/model] [--config NAME ...] [--models DIR]
Regenerate only when the model generator or the reference changes on purpose; the test
compares weights_sha256 and fails on drift.
"""
import argparse
import json
import os
import struct
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "models"))
sys.path.insert(0, HERE)
import make_model  # noqa: E402
import reference_llama  # noqa: E402

MAGIC = b"HERDGOLD"
VERSION = 1
N_NEW = 32
LONG_LEN = 8300
MIN_GREEDY_MARGIN = 0.01

# Configurations with a golden; ctx64_f32 only serves the bad-input tests.
GOLDEN_CONFIGS = [n for n in make_model.CONFIGS if n != "ctx64_f32"]


def prompt_tokens(name, cfg, salt=0):
    """A fixed prompt: BOS, then ids drawn by the deterministic hash."""
    bos = make_model.bos_id(cfg)
    if name.startswith("long_"):
        n = LONG_LEN
        # The same prompt for both long models, so their goldens differ only by the factor.
        u = make_model.uniform(7 + salt, "long-prompt", n - 1)
    else:
        n = 24
        u = make_model.uniform(11 + salt, "prompt-" + name, n - 1)
    hi = 128000 if cfg.get("real_tokenizer") else make_model.TINY_BOS
    ids = ((u + 1.0) * 0.5 * hi).astype(np.int64) % hi
    return [bos] + [int(x) for x in ids]


def write_golden(path, header, arrays):
    header = dict(header)
    header["arrays"] = {k: [v.dtype.str, list(v.shape)] for k, v in arrays}
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    with open(path, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<II", VERSION, len(hj)))
        f.write(hj)
        for _, v in arrays:
            f.write(np.ascontiguousarray(v).tobytes())


def read_golden(path):
    """(header dict, {name: array}) - shared with tests/tools/compare_logits.py."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:8] != MAGIC:
        raise ValueError("%s: not a golden file (bad magic)" % path)
    ver, hlen = struct.unpack_from("<II", raw, 8)
    if ver != VERSION:
        raise ValueError("%s: golden version %d, expected %d" % (path, ver, VERSION))
    header = json.loads(raw[16:16 + hlen].decode("utf-8"))
    off, arrays = 16 + hlen, {}
    for name, (dt, shape) in header["arrays"].items():
        n = int(np.prod(shape)) if shape else 1
        a = np.frombuffer(raw, dtype=np.dtype(dt), count=n, offset=off).reshape(shape)
        arrays[name] = a
        off += a.nbytes
    return header, arrays


def compute(name, models_dir, salts):
    """Reference run on the first prompt (by salt) whose greedy path has no near-tie: a greedy
    step decided by less than MIN_GREEDY_MARGIN could legitimately flip under another
    summation order, and that never meets a stop id. Returns a dict, or None when the config is skipped or no salt works."""
    cfg = make_model.CONFIGS[name]
    hf = os.path.join(models_dir, name, "hf")
    m = reference_llama.Model(hf)
    for salt in salts:
        toks = prompt_tokens(name, cfg, salt)
        lg, greedy, gmargins = reference_llama.logits_and_greedy(m, toks, N_NEW)
        # ... and that runs all N_NEW steps without meeting a stop id (herd stops there).
        if min(gmargins) >= MIN_GREEDY_MARGIN and \
                not set(greedy) & set(make_model.stop_ids(cfg)):
            return dict(name=name, cfg=cfg, hf=hf, toks=toks, lg=lg, greedy=greedy,
                        gmargins=gmargins, salt=salt)
    return None


def write_result(r, out_dir):
    name, cfg, lg, salt, greedy, gmargins = (r["name"], r["cfg"], r["lg"], r["salt"],
                                             r["greedy"], r["gmargins"])
    srt = np.sort(lg, axis=1)
    argmax = np.argmax(lg, axis=1).astype(np.int32)
    margin = (srt[:, -1] - srt[:, -2]).astype(np.float32)
    T, V = lg.shape
    if T <= 64:
        positions = list(range(T))
    else:
        positions = sorted(set(list(range(0, T, 512)) + list(range(8184, 8200)) +
                               list(range(T - 8, T))))
    columns = None
    rows = lg[positions]
    if V > 4096:
        cols = set(range(0, V, 1024)) | set(range(128000, 128016))
        for row in rows:
            cols |= set(int(x) for x in np.argsort(row)[-8:])
        columns = sorted(cols)
        rows = rows[:, columns]
    header = {
        "config": name,
        "weights_sha256": make_model.weights_sha256(r["hf"]),
        "dtype": cfg["dtype"],
        "vocab": V,
        "tokens": r["toks"],
        "positions": positions,
        "columns": columns,
        "max_abs_ref": float(np.max(np.abs(lg))),
        "greedy": greedy,
        "greedy_margins": [round(x, 6) for x in gmargins],
        "stop_ids": make_model.stop_ids(cfg),
        "prompt_salt": salt,
        "n_new": N_NEW,
        "reference": "scripts/reference_llama.py (numpy float32, Meta reference_impl math)",
    }
    arrays = [("argmax", argmax), ("margin", margin),
              ("logits", np.ascontiguousarray(rows, dtype="<f4"))]
    path = os.path.join(out_dir, name + ".golden")
    write_golden(path, header, arrays)
    print("golden_model: %s: %d tokens, %d stored rows, %d bytes, max|logit| %.3g, "
          "min margin %.3g (positions), min greedy margin %.3g, salt %d, greedy %s" %
          (name, T, len(positions), os.path.getsize(path), header["max_abs_ref"],
           float(margin.min()), min(gmargins), salt, greedy[:8]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "golden", "model"))
    ap.add_argument("--config", action="append")
    ap.add_argument("--models", help="where to write the models (default: a temp folder)")
    a = ap.parse_args()
    names = a.config or GOLDEN_CONFIGS
    os.makedirs(a.out, exist_ok=True)
    tmp = None
    models = a.models
    if not models:
        tmp = tempfile.TemporaryDirectory()
        models = tmp.name
    for n in names:
        if not make_model.make(models, n):
            names = [x for x in names if x != n]
    long_pair = ["long_factor8_f32", "long_factor32_f32"]
    results = {}
    for n in names:
        if n in long_pair and all(x in names for x in long_pair):
            continue
        r = compute(n, models, range(50))
        if r is None:
            raise RuntimeError("%s: no prompt with a clear greedy path" % n)
        results[n] = r
    if all(x in names for x in long_pair):
        # One prompt for both long models, so that their goldens differ only by the factor.
        for salt in range(50):
            r8 = compute(long_pair[0], models, [salt])
            r32 = compute(long_pair[1], models, [salt]) if r8 else None
            if r8 and r32:
                results[long_pair[0]], results[long_pair[1]] = r8, r32
                break
        else:
            raise RuntimeError("long models: no prompt with a clear greedy path")
        a8, a32 = r8["lg"], r32["lg"]
        diff = np.argmax(a8, 1) != np.argmax(a32, 1)
        print("golden_model: factor 8 vs 32 on the same weights and prompt: argmax differs at "
              "%d of %d positions (%d beyond 8192), max|dlogit| %.3g" %
              (int(diff.sum()), len(diff), int(diff[8192:].sum()),
               float(np.abs(a8 - a32).max())))
    for n in names:
        write_result(results[n], a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
