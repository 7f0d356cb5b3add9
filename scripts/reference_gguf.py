#!/usr/bin/env python3
"""reference_gguf.py - reference_llama.py's numpy forward pass on a quantized GGUF file.

The weights are dequantized to float32 by the gguf package (gguf.quants.dequantize, the
Python transcription of ggml's block formats, written independently of herd) and the
hyper-parameters are read from the file's metadata, so any llama-architecture GGUF (Q4_1,
Q8_0, K-quants, ...) can be checked: SmolLM2-135M-Instruct's fidelity figures come from
here (scripts/fidelity_smollm2.py).

usage: reference_gguf.py FILE.gguf --tokens 1,2,3 [--all] -o logits.bin
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_llama as ref  # noqa: E402


def config_of(r):
    f = r.fields
    arch = f["general.architecture"].contents()

    def get(k, d=None):
        k = arch + "." + k
        return f[k].contents() if k in f else d
    n_heads = int(get("attention.head_count"))
    dim = int(get("embedding_length"))
    emb = [t for t in r.tensors if t.name == "token_embd.weight"][0]
    return {
        "hidden_size": dim, "num_hidden_layers": int(get("block_count")),
        "num_attention_heads": n_heads,
        "num_key_value_heads": int(get("attention.head_count_kv", n_heads)),
        "head_dim": int(get("attention.key_length", dim // n_heads)),
        "vocab_size": int(emb.shape[1]), "rms_norm_eps": float(get("attention.layer_norm_rms_epsilon")),
        "rope_theta": float(get("rope.freq_base", 10000.0)),
        "tie_word_embeddings": not any(t.name == "output.weight" for t in r.tensors),
    }


class GGUFModel(ref.Model):
    def __init__(self, path):
        import gguf
        r = gguf.GGUFReader(path)
        self.cfg = config_of(r)
        p = self.p = ref.Params(self.cfg)
        self.dt = np.float32
        t = {}
        for ti in r.tensors:
            shape = [int(x) for x in reversed(list(ti.shape))]
            a = gguf.quants.dequantize(np.asarray(ti.data), ti.tensor_type)
            t[ti.name] = np.asarray(a, dtype=np.float32).reshape(shape)
        w = {"tok_embeddings": t["token_embd.weight"], "norm": t["output_norm.weight"]}
        w["output"] = t.get("output.weight", t["token_embd.weight"])
        for i in range(p.n_layers):
            b = "blk.%d." % i
            for mine, theirs in (("wq", "attn_q"), ("wk", "attn_k"), ("wv", "attn_v"),
                                 ("wo", "attn_output"), ("w1", "ffn_gate"), ("w3", "ffn_up"),
                                 ("w2", "ffn_down"), ("attention_norm", "attn_norm"),
                                 ("ffn_norm", "ffn_norm")):
                w["%d.%s" % (i, mine)] = t[b + theirs + ".weight"]
        self.w = w
        self.freqs = ref.rope_freqs(p)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf")
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--all", action="store_true")
    ap.add_argument("-o", dest="out", required=True)
    a = ap.parse_args()
    m = GGUFModel(a.gguf)
    toks = ref.parse_tokens(a.tokens)
    lg = ref.forward(m, toks, 0, ref.Cache(m, len(toks)))
    np.asarray(lg if a.all else lg[-1:], dtype="<f4").tofile(a.out)


if __name__ == "__main__":
    main()
