#!/usr/bin/env python3
"""make_mpi_models.py - tiny models whose shapes exercise tensor x pipeline splits.

Uses tests/models/make_model.py (same weight generator, same HF and GGUF writers) with
shapes the model goldens do not have: more layers (so several pipeline stages fit), KV-head
counts that are not powers of two, FFN sizes that split unevenly into quantisation blocks,
and a shape whose head groups and FFN are whole K-quant super-blocks (256).

Usage: make_mpi_models.py OUT      writes OUT/<name>/{hf,model.gguf} for each shape below
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "models"))
import make_model  # noqa: E402

R31 = make_model.LLAMA31_ROPE
SHAPES = {
    # 4 KV heads, 4 layers: TP 1/2/4, PP up to 4; FFN 224 = 7 Q8_0 blocks (uneven slices).
    "mpi_a_f32": dict(dim=128, n_layers=4, n_heads=8, n_kv_heads=4, head_dim=None,
                      ffn_dim=224, vocab=384, tied=False, dtype="F32", rope=R31,
                      max_pos=131072, seed=701),
    # 3 KV heads (odd), 6 layers, tied, bf16: TP 3 and 3 x 2, or pure PP for 4 ranks.
    "mpi_b_bf16": dict(dim=96, n_layers=6, n_heads=6, n_kv_heads=3, head_dim=32,
                       ffn_dim=256, vocab=384, tied=True, dtype="BF16", rope=R31,
                       max_pos=131072, seed=702, explicit_head_dim=True),
    # Head groups of 4 x 64 = 256 columns and an FFN of 2 x 256: K-quants split over TP 2.
    "mpi_k_f32": dict(dim=512, n_layers=2, n_heads=8, n_kv_heads=2, head_dim=None,
                      ffn_dim=512, vocab=384, tied=False, dtype="F32", rope=R31,
                      max_pos=131072, seed=703),
}


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    make_model.CONFIGS.update(SHAPES)
    for name in SHAPES:
        make_model.make(sys.argv[1], name)
        print("make_mpi_models: %s -> %s" % (name, os.path.join(sys.argv[1], name)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
