#!/usr/bin/env python3
"""compare_llamacpp.py - herd against llama.cpp on the same GGUF file, and both against the
independent numpy reference (scripts/reference_gguf.py: float32, weights dequantized by the
gguf package): the logits of every position of the chat prompts of fidelity_smollm2.py
(rendered by `herd render --ids`), top-1 agreement and mean KL for each pair. llama.cpp's
side is llamacpp_logits.c, built against a llama.cpp build beside the project (README.md
here says how).

usage: compare_llamacpp.py HERD LLAMACPP_LOGITS MODEL.gguf [--prompts N] [--threads T]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "scripts"))
import reference_gguf as rg  # noqa: E402
import reference_llama as ref  # noqa: E402
from fidelity_smollm2 import PROMPTS, lsm  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("herd")
    ap.add_argument("llamacpp_logits")
    ap.add_argument("model")
    ap.add_argument("--prompts", type=int, default=len(PROMPTS))
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    m = rg.GGUFModel(a.model)
    pairs = {"herd vs llama.cpp": [0, 0, []], "herd vs reference": [0, 0, []],
             "llama.cpp vs reference": [0, 0, []]}
    with tempfile.TemporaryDirectory() as tmp:
        oh, ol = os.path.join(tmp, "h.bin"), os.path.join(tmp, "l.bin")
        for q in PROMPTS[:a.prompts]:
            req = json.dumps({"messages": [{"role": "user", "content": q}]})
            ids = json.loads(subprocess.run([a.herd, "render", "-m", a.model, "--ids"],
                                            input=req, capture_output=True, text=True,
                                            check=True).stdout)
            tok = ",".join(map(str, ids))
            subprocess.run([a.herd, "logits", "-m", a.model, "--tokens", tok, "--all", "-o", oh,
                            "-t", str(a.threads)], capture_output=True, check=True)
            subprocess.run([a.llamacpp_logits, a.model, tok, ol, str(a.threads)],
                           capture_output=True, check=True)
            h = np.fromfile(oh, dtype=np.float32).reshape(len(ids), -1).astype(np.float64)
            lc = np.fromfile(ol, dtype=np.float32).reshape(len(ids), -1).astype(np.float64)
            r = ref.forward(m, ids, 0, ref.Cache(m, len(ids))).astype(np.float64)
            # KL(first || second): the first of each pair is the one compared against
            for name, (x, y) in {"herd vs llama.cpp": (lc, h), "herd vs reference": (r, h),
                                 "llama.cpp vs reference": (r, lc)}.items():
                p, lq = lsm(x), lsm(y)
                s = pairs[name]
                s[0] += int((x.argmax(-1) == y.argmax(-1)).sum())
                s[1] += len(ids)
                s[2].extend((np.exp(p) * (p - lq)).sum(-1).tolist())
    for name, (agree, total, kls) in pairs.items():
        print("%s: %s, %d prompts, %d positions: top-1 agreement %.4f, mean KL %.2e, max KL "
              "%.2e" % (os.path.basename(a.model), name, a.prompts, total, agree / total,
                        np.mean(kls), np.max(kls)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
