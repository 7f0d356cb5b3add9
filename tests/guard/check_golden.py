#!/usr/bin/env python3
"""check_golden.py HERD GOLDEN_DIR - every case of make_golden.py's MANIFEST through
`herd guard --render --format F [options]`: the bytes must equal the official template's
render (NAME.txt), and a conversation the template refuses must be refused by herd too.
With a third argument, a Llama 3 tokenizer.json: the ids of `--render --ids` must equal the
Hugging Face tokenizer's encoding of the official text (special tokens parsed, no BOS added),
for every case whose messages hold no control-token text (those herd keeps as text, which is
the point of placing control tokens by id). Skipped without the tokenizers package.
Prints one line per failing case and a tally; exit 1 on any failure."""
import os
import subprocess
import sys


def main():
    herd, gdir = sys.argv[1], sys.argv[2]
    with open(os.path.join(gdir, "MANIFEST"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    if lines[0] != "herd-golden-guard 1":
        sys.exit("MANIFEST: expected 'herd-golden-guard 1', got %r" % lines[0])
    hf = None
    if len(sys.argv) > 3 and os.path.exists(sys.argv[3]):
        try:
            from tokenizers import Tokenizer
            hf = Tokenizer.from_file(sys.argv[3])
        except ImportError:
            print("tokenizers not installed: ids not compared")
    failed = n_ids = 0
    for line in lines[1:]:
        name, fmt, outcome, *opts = line.split(" ")
        with open(os.path.join(gdir, name + ".json"), "rb") as f:
            req = f.read()
        p = subprocess.run([herd, "guard", "--render", "--format", fmt] + opts, input=req,
                           capture_output=True)
        if outcome == "error":
            if p.returncode == 0:
                print("FAIL %s: the official template refuses this; herd rendered it" % name)
                failed += 1
            continue
        if p.returncode != 0:
            print("FAIL %s: herd refused: %s" % (name, p.stderr.decode(errors="replace").strip()))
            failed += 1
            continue
        with open(os.path.join(gdir, name + ".txt"), "rb") as f:
            want = f.read()
        if p.stdout != want:
            at = next((i for i, (a, b) in enumerate(zip(p.stdout, want)) if a != b),
                      min(len(p.stdout), len(want)))
            print("FAIL %s: differs at byte %d: herd %r, official %r" %
                  (name, at, p.stdout[max(0, at - 20):at + 40], want[max(0, at - 20):at + 40]))
            failed += 1
            continue
        text = want.decode("utf-8")
        if hf is None or text.count("<|") != 6:
            continue
        p = subprocess.run([herd, "guard", "--render", "--ids", "--tokenizer", sys.argv[3],
                            "--format", fmt] + opts, input=req, capture_output=True)
        ids = [int(x) for x in p.stdout.decode().strip(" []\n").split(",") if x.strip()]
        n_ids += 1
        if p.returncode != 0 or ids != hf.encode(text, add_special_tokens=False).ids:
            print("FAIL %s: ids differ from the Hugging Face tokenizer's" % name)
            failed += 1
    if hf is not None:
        print("ids compared with the Hugging Face tokenizer on %d cases" % n_ids)
    print("%d of %d golden guard prompts match" % (len(lines) - 1 - failed, len(lines) - 1))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
