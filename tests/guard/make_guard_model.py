#!/usr/bin/env python3
"""make_guard_model.py - tiny Llama models with the real Llama 3 vocabulary whose greedy
answer to any Llama Guard prompt is known: they stand in for Llama Guard 3 in the tests
(a real Llama Guard model cannot be run here).

How the weights force the answer: every attention output (o_proj) and MLP output
(down_proj) is zero, so the residual stream at each position is the embedding of the token
there, and the next token depends on the current token alone. The tokens of the wanted
answer get one-hot embeddings on axes 0, 1, ...; lm_head's row for answer token j+1 reads
axis j (weight 10), and <|eot_id|>'s row reads the last answer token's axis. Every Llama
Guard prompt ends with <|end_header_id|> (axis 0), so greedy decoding gives
"\\n\\n" + ANSWER and then <|eot_id|>. Every other token embeds on the last axis, whose
lm_head column is 0: all logits 0, so argmax is id 0 ("!") - never reached from a guard
prompt.

Writes OUT/NAME/hf (config.json, generation_config.json, model.safetensors, the real
tokenizer.json, and a tokenizer_config.json whose chat_template is the official
Llama-Guard-3-8B one) for each model:
  guard_unsafe   answers "unsafe\\nS1,S10"
  guard_safe     answers "safe"
  guard_garbage  answers "I cannot" (unparseable)

Usage: make_guard_model.py OUT [--name NAME ...]
Needs numpy, tokenizers, and ../shared/data/llama3/tokenizer.json.
"""
import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "models"))
import make_model as mm  # noqa: E402

ANSWERS = {"guard_unsafe": "unsafe\nS1,S10", "guard_safe": "safe", "guard_garbage": "I cannot"}
END_HEADER = 128007
EOT = 128009
DIM = 16


def config(name):
    return dict(dim=DIM, n_layers=1, n_heads=2, n_kv_heads=1, head_dim=None, ffn_dim=32,
                vocab=128256, tied=False, dtype="BF16", rope=mm.LLAMA32_ROPE, max_pos=131072,
                seed=0, real_tokenizer=True, explicit_head_dim=True, name=name)


def weights(chain, cfg):
    """HF-layout float32 tensors for the chain END_HEADER -> chain[1] -> ... -> EOT."""
    dim, vocab, ffn = cfg["dim"], cfg["vocab"], cfg["ffn_dim"]
    hd = dim // cfg["n_heads"]
    assert len(chain) < dim and len(set(chain)) == len(chain), chain
    emb = np.zeros((vocab, dim), np.float32)
    emb[:, dim - 1] = 1.0
    head = np.zeros((vocab, dim), np.float32)
    for j, tok in enumerate(chain):
        emb[tok] = 0.0
        emb[tok, j] = 1.0
        nxt = chain[j + 1] if j + 1 < len(chain) else EOT
        head[nxt, j] = 10.0
    z = lambda r, c: np.zeros((r, c), np.float32)  # noqa: E731
    t = {"model.embed_tokens.weight": emb, "lm_head.weight": head,
         "model.norm.weight": np.ones(dim, np.float32)}
    h = "model.layers.0."
    t[h + "self_attn.q_proj.weight"] = z(cfg["n_heads"] * hd, dim)
    t[h + "self_attn.k_proj.weight"] = z(cfg["n_kv_heads"] * hd, dim)
    t[h + "self_attn.v_proj.weight"] = z(cfg["n_kv_heads"] * hd, dim)
    t[h + "self_attn.o_proj.weight"] = z(dim, cfg["n_heads"] * hd)
    t[h + "mlp.gate_proj.weight"] = z(ffn, dim)
    t[h + "mlp.up_proj.weight"] = z(ffn, dim)
    t[h + "mlp.down_proj.weight"] = z(dim, ffn)
    t[h + "input_layernorm.weight"] = np.ones(dim, np.float32)
    t[h + "post_attention_layernorm.weight"] = np.ones(dim, np.float32)
    return t


def make(out, name):
    tok_dir = mm.shared_tokenizer_dir()
    if tok_dir is None:
        raise SystemExit("make_guard_model: the Llama 3 tokenizer.json was not found")
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(tok_dir, "tokenizer.json"))
    ids = tok.encode("\n\n" + ANSWERS[name], add_special_tokens=False).ids
    cfg = config(name)
    store = {n: (mm.round_to(a, cfg["dtype"])[0], cfg["dtype"])
             for n, a in weights([END_HEADER] + ids, cfg).items()}
    hf = os.path.join(out, name, "hf")
    mm.write_hf(hf, cfg, store, tok_dir)
    # the official 8B chat template in tokenizer_config.json, as Meta's repository has it:
    # herd serve / herd render then use the guard format for this model's own chat prompts
    tc = os.path.join(hf, "tokenizer_config.json")
    conf = {}
    if os.path.isfile(tc):
        with open(tc, encoding="utf-8") as f:
            conf = json.load(f)
    with open(os.path.join(HERE, "templates", "llama-guard-3-8b.jinja"), encoding="utf-8") as f:
        conf["chat_template"] = f.read()
    with open(tc, "w", encoding="utf-8") as f:
        json.dump(conf, f, ensure_ascii=False, indent=2)
    return hf


def ensure(out):
    """The three models under out (written unless already there, current); {name: hf dir}."""
    dirs = {n: os.path.join(out, n, "hf") for n in sorted(ANSWERS)}
    for n, hf in dirs.items():
        tc = os.path.join(hf, "tokenizer_config.json")
        if not (os.path.isfile(os.path.join(hf, "config.json")) and os.path.isfile(tc) and
                "UNSAFE CONTENT" in open(tc, encoding="utf-8").read()):
            make(out, n)
    return dirs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--name", action="append", choices=sorted(ANSWERS))
    a = ap.parse_args()
    for n in a.name or sorted(ANSWERS):
        print("make_guard_model: %s -> %s" % (n, make(a.out, n)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
