#!/usr/bin/env python3
"""make_models.py - the CUDA suite's extra test model, beside tests/models/make_model.py's.

The suite's tiny models have rows of 64 or 128 weights, too short for K-quant super-blocks
of 256: quantized to Q4_K_M or Q6_K they fall back to Q5_0 / Q8_0 tensors. This writes one
more configuration through make_model.py (same weights generator, same two formats) whose
rows are multiples of 256, so that its quantized copies hold real Q4_K / Q6_K tensors:

  cuda_k256_f32   dim 256, 2 layers, 4 query / 2 KV heads (head_dim 64), FFN 512,
                  vocabulary 384, untied, f32, Llama 3.1 RoPE scaling

Usage: make_models.py OUT      (writes OUT/cuda_k256_f32/{hf,model.gguf})
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models"))
import make_model  # noqa: E402  (tests/models/make_model.py)

CONFIG = dict(dim=256, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=None, ffn_dim=512,
              vocab=384, tied=False, dtype="F32", rope=make_model.LLAMA31_ROPE,
              max_pos=131072, seed=256)


def main():
    if len(sys.argv) != 2:
        print(__doc__.split("\n")[0], file=sys.stderr)
        print("usage: make_models.py OUT", file=sys.stderr)
        return 2
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    make_model.CONFIGS["cuda_k256_f32"] = CONFIG
    make_model.make(out, "cuda_k256_f32")
    print("make_models: cuda_k256_f32 -> %s" % os.path.join(out, "cuda_k256_f32"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
