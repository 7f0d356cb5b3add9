#!/usr/bin/env python3
"""run_bench.py - tokenizer throughput, single thread: herd vs tiktoken vs HF tokenizers vs
llama.cpp (when llama-cpp-python is installed), on the same ~10 MB mixed corpus.

The corpus (written outside git, default /tmp/herd-tok-corpus.txt) is built from files every
Debian machine with Python has, cut into ~4 KB documents separated by "\\x1e\\n":
  - ~4 MB of Python standard-library source (code, comments, English docstrings),
  - ~1 MB of English prose (pydoc_data/topics.py),
  - ~5 MB of translated UI text from /usr/share/locale/*/LC_MESSAGES/*.mo in German, French,
    Italian, Portuguese, Hindi, Spanish, Thai, Chinese, Japanese, Korean, Arabic, Russian.
Every encoder encodes each document (no special tokens) and decodes its ids back to bytes;
the best of 3 runs is printed as MB/s of UTF-8 input. herd's ids are checked to equal
tiktoken's over the whole corpus (count and FNV-1a hash).

With --long BYTES (e.g. 1000000) it also times herd on single pathological pieces of that
size against the same amount of normal text, each one herd_tokenize call (bench_tokenizer
--long): a word of random letters, one letter repeated, a run of spaces, a run of
punctuation. BPE must stay linear in a piece's length, so a piece costs a small constant
factor of the text, not a factor that grows with the size.

usage: bench/tokenizer/run_bench.py --herd-bench BUILD/bench_tokenizer [--data DIR] [--gguf F]
                                    [--long BYTES] [--long-only]
"""
import argparse
import base64
import gettext
import glob
import json
import os
import subprocess
import sys
import sysconfig
import time

SEP = "\x1e\n"
LANGS = ["de", "fr", "it", "pt_BR", "hi", "es", "th", "zh_CN", "ja", "ko", "ar", "ru"]


def chunks(text, size=4096):
    out, cur, n = [], [], 0
    for line in text.splitlines(keepends=True):
        cur.append(line)
        n += len(line.encode())
        if n >= size:
            out.append("".join(cur))
            cur, n = [], 0
    if cur:
        out.append("".join(cur))
    return out


def build_corpus(path):
    lib = sysconfig.get_paths()["stdlib"]
    docs = []
    code, total = [], 0
    for f in sorted(glob.glob(os.path.join(lib, "*.py")) + glob.glob(os.path.join(lib, "*/*.py"))):
        if "pydoc_data" in f or "test" in f:
            continue
        try:
            s = open(f, encoding="utf-8").read()
        except (UnicodeDecodeError, OSError):
            continue
        code.append(s)
        total += len(s.encode())
        if total > 4_000_000:
            break
    docs += chunks("".join(code))
    topics = open(os.path.join(lib, "pydoc_data", "topics.py"), encoding="utf-8").read()
    docs += chunks(topics[:1_000_000])
    for lang in LANGS:
        msgs, total = [], 0
        for mo in sorted(glob.glob("/usr/share/locale/%s/LC_MESSAGES/*.mo" % lang)):
            try:
                cat = gettext.GNUTranslations(open(mo, "rb"))._catalog
            except Exception:
                continue
            for v in cat.values():
                if isinstance(v, str) and v and not v.startswith("Project-Id"):
                    msgs.append(v)
                    total += len(v.encode())
            if total > 420_000:
                break
        docs += chunks("\n".join(msgs))
    docs = [d.replace("\x1e", " ") for d in docs if d]
    with open(path, "w", encoding="utf-8") as f:
        f.write(SEP.join(docs))
    return docs


def fnv(ids_per_doc):
    h = 1469598103934665603
    for ids in ids_per_doc:
        for i in ids:
            h = ((h ^ i) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def timed(fn, reps=3):
    best, out = 1e9, None
    for _ in range(reps):
        t0 = time.process_time()
        out = fn()
        best = min(best, time.process_time() - t0)
    return best, out


def bench_tiktoken(model_path, docs, nbytes):
    import tiktoken
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "scripts"))
    from golden_tokenizer import PATTERN, meta_special_tokens

    def load():
        ranks = {}
        for line in open(model_path, "rb"):
            if line.strip():
                t, r = line.split()
                ranks[base64.b64decode(t)] = int(r)
        sp = {n: len(ranks) + i for i, n in enumerate(meta_special_tokens())}
        return tiktoken.Encoding(name="llama3", pat_str=PATTERN, mergeable_ranks=ranks,
                                 special_tokens=sp)
    load_s, enc = timed(load)
    enc_s, ids = timed(lambda: [enc.encode_ordinary(d) for d in docs])
    dec_s, _ = timed(lambda: [enc.decode_bytes(i) for i in ids])
    return {"load_ms": load_s * 1e3, "encode_mbs": nbytes / enc_s / 1e6,
            "decode_mbs": nbytes / dec_s / 1e6, "n_tokens": sum(map(len, ids)),
            "ids_hash": fnv(ids)}


def bench_hf(json_path, docs, nbytes):
    from tokenizers import Tokenizer
    load_s, tok = timed(lambda: Tokenizer.from_file(json_path))
    tok.encode_special_tokens = True
    enc_s, ids = timed(lambda: [tok.encode(d, add_special_tokens=False).ids for d in docs])
    dec_s, _ = timed(lambda: [tok.decode(i) for i in ids])
    return {"load_ms": load_s * 1e3, "encode_mbs": nbytes / enc_s / 1e6,
            "decode_mbs": nbytes / dec_s / 1e6, "n_tokens": sum(map(len, ids)),
            "ids_hash": fnv(ids)}


def bench_llamacpp(gguf_path, docs, nbytes):
    try:
        import llama_cpp
    except ImportError:
        return None
    load_s, llm = timed(lambda: llama_cpp.Llama(model_path=gguf_path, vocab_only=True,
                                                verbose=False, n_threads=1))
    bdocs = [d.encode() for d in docs]
    enc_s, ids = timed(lambda: [llm.tokenize(b, add_bos=False, special=False) for b in bdocs])
    dec_s, _ = timed(lambda: [llm.detokenize(i) for i in ids])
    return {"load_ms": load_s * 1e3, "encode_mbs": nbytes / enc_s / 1e6,
            "decode_mbs": nbytes / dec_s / 1e6, "n_tokens": sum(map(len, ids)),
            "ids_hash": fnv(ids)}


def bench_long(herd_bench, model, corpus, nbytes, reps=3):
    r = subprocess.run([herd_bench, model, corpus, "--long", str(nbytes), str(reps)],
                       capture_output=True, text=True)
    if r.returncode:
        sys.exit("herd bench --long failed: " + r.stderr)
    j = json.loads(r.stdout)
    print("\nlong pieces, %d bytes each, one herd_tokenize call, best of %d (CPU s):"
          % (j["bytes"], reps))
    print("| input | seconds | tokens | / normal text |")
    print("|---|---:|---:|---:|")
    names = (("word", "one word of random letters"), ("same", "one letter repeated"),
             ("space", "spaces"), ("punct", "ASCII punctuation"), ("text", "normal text"))
    for key, label in names:
        print("| %s | %.4f | %d | %.1fx |" % (label, j[key + "_s"], j[key + "_tokens"],
                                             j[key + "_s"] / j["text_s"]))


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap = argparse.ArgumentParser()
    ap.add_argument("--herd-bench", required=True)
    ap.add_argument("--data", default=os.path.join(root, "..", "shared", "data", "llama3"))
    ap.add_argument("--gguf", help="tokenizer GGUF for llama.cpp (scripts/golden_tokenizer.py "
                    "--write-gguf)")
    ap.add_argument("--corpus", default="/tmp/herd-tok-corpus.txt")
    ap.add_argument("--long", type=int, default=0, help="also time single pieces of this "
                    "many bytes against normal text")
    ap.add_argument("--long-only", action="store_true", help="only the --long table")
    a = ap.parse_args()
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    os.environ["RAYON_NUM_THREADS"] = "1"
    docs = build_corpus(a.corpus)
    nbytes = sum(len(d.encode()) for d in docs)
    print("corpus: %s, %.2f MB in %d documents" % (a.corpus, nbytes / 1e6, len(docs)))
    model = os.path.join(a.data, "tokenizer.model")
    if a.long_only:
        bench_long(a.herd_bench, model, a.corpus, a.long or 1000000)
        return
    js = os.path.join(a.data, "tokenizer.json")
    rows = []
    for name, path in (("herd (tokenizer.model)", model), ("herd (tokenizer.json)", js)) + \
            ((("herd (gguf)", a.gguf),) if a.gguf else ()):
        r = subprocess.run([a.herd_bench, path, a.corpus], capture_output=True, text=True)
        if r.returncode:
            sys.exit("herd bench failed: " + r.stderr)
        rows.append((name, json.loads(r.stdout)))
    rows.append(("tiktoken %s" % __import__("tiktoken").__version__,
                 bench_tiktoken(model, docs, nbytes)))
    rows.append(("HF tokenizers %s" % __import__("tokenizers").__version__,
                 bench_hf(js, docs, nbytes)))
    lc = bench_llamacpp(a.gguf, docs, nbytes) if a.gguf else None
    if lc:
        rows.append(("llama.cpp (llama-cpp-python %s)" % __import__("llama_cpp").__version__, lc))
    else:
        print("llama.cpp: skipped (llama-cpp-python not installed or no --gguf)")
    ref = rows[3][1]
    print("| encoder | load ms | encode MB/s | decode MB/s | tokens | ids == tiktoken |")
    print("|---|---:|---:|---:|---:|---|")
    for name, r in rows:
        same = r["n_tokens"] == ref["n_tokens"] and r["ids_hash"] == ref["ids_hash"]
        print("| %s | %.1f | %.2f | %.1f | %d | %s |" % (name, r["load_ms"], r["encode_mbs"],
                                                       r["decode_mbs"], r["n_tokens"],
                                                       "yes" if same else "NO"))
    if a.long:
        bench_long(a.herd_bench, model, a.corpus, a.long)


if __name__ == "__main__":
    main()
