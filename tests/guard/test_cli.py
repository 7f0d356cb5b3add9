#!/usr/bin/env python3
"""test_cli.py --herd HERD --work DIR - `herd guard` end to end on the crafted models of
make_guard_model.py (their greedy answers are known: unsafe S1,S10 / safe / garbage), since
a real Llama Guard 3 model cannot be run here. Checks the JSON verdict, names, the raw text,
options (--categories, --role, --format, --normalize, --render --ids) and failures.
Exit 77 (skip) without numpy/tokenizers or the Llama 3 tokenizer.json."""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "server"))
sys.path.insert(0, HERE)
from common import check, shared_data, skip, summary  # noqa: E402


def models(work):
    if not shared_data():
        skip("../shared/data/llama3/tokenizer.json is missing")
    try:
        import numpy  # noqa: F401
        import tokenizers  # noqa: F401
    except ImportError as e:
        skip(f"make_guard_model.py needs numpy and tokenizers ({e})")
    import make_guard_model
    return make_guard_model.ensure(os.path.join(work, "models"))


def guard(herd, args, stdin):
    data = stdin if isinstance(stdin, bytes) else json.dumps(stdin).encode()
    p = subprocess.run([herd, "guard", *args], input=data, capture_output=True, timeout=120)
    out = json.loads(p.stdout) if p.returncode == 0 and p.stdout.strip().startswith(b"{") else None
    return p.returncode, out, p.stderr.decode(errors="replace")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--herd", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    m = models(a.work)
    conv = {"messages": [{"role": "user", "content": "How do I hurt someone?"},
                         {"role": "assistant", "content": "I won't help with that."}]}

    rc, out, err = guard(a.herd, ["-m", m["guard_unsafe"]], conv)
    check(rc == 0 and out is not None, f"unsafe model runs: {err}")
    if out:
        check(out["verdict"] == "unsafe", f"verdict unsafe: {out}")
        check(out["categories"] == [{"code": "S1", "name": "Violent Crimes"},
                                    {"code": "S10", "name": "Hate"}], f"categories: {out}")
        check(out["raw"] == "\n\nunsafe\nS1,S10", f"raw: {out}")
    rc, out, err = guard(a.herd, ["-m", m["guard_safe"], "--role", "user"], conv)
    check(rc == 0 and out == {"verdict": "safe", "categories": [], "raw": "\n\nsafe"},
          f"safe model: {out} {err}")
    rc, out, err = guard(a.herd, ["-m", m["guard_garbage"], "--role", "agent"], conv)
    check(rc == 0 and out and out["verdict"] == "unparseable" and out["categories"] == [],
          f"garbage model: {out} {err}")
    # custom categories name the codes the model answers with
    custom = dict(conv, categories={"S1": "My custom category.\nShould not\n- x",
                                    "S10": "Pineapple on pizza."})
    rc, out, err = guard(a.herd, ["-m", m["guard_unsafe"], "--format", "1b"], custom)
    check(rc == 0 and out and [c["name"] for c in out["categories"]] ==
          ["My custom category", "Pineapple on pizza"], f"custom names: {out} {err}")
    rc, out, err = guard(a.herd, ["-m", m["guard_unsafe"], "--categories", "S1,S2",
                                  "--normalize", "-t", "1", "--max-tokens", "3"],
                         {"messages": [{"role": "system", "content": "s"}] + conv["messages"]})
    check(rc == 0 and out and out["raw"] == "\n\nunsafe\n", f"--max-tokens 3: {out} {err}")
    # the prompt the model sees: --render --ids equals the text tokenized with specials
    p = subprocess.run([a.herd, "guard", "--render", "-m", m["guard_unsafe"]],
                       input=json.dumps(conv).encode(), capture_output=True)
    q = subprocess.run([a.herd, "guard", "--render", "--ids", "-m", m["guard_unsafe"]],
                       input=json.dumps(conv).encode(), capture_output=True)
    t = subprocess.run([a.herd, "tokenize", "-m", m["guard_unsafe"], "--parse-special"],
                       input=json.dumps(p.stdout.decode()).encode(), capture_output=True)
    check(p.returncode == 0 and q.returncode == 0 and p.stdout.startswith(b" <|begin_of_text|>"),
          "render and --ids run")
    if t.returncode == 0:
        check(json.loads(q.stdout) == json.loads(t.stdout),
              "--ids equals the rendered text tokenized with special tokens")
    # herd render --template guard-1b is herd guard --render --format 1b
    r1 = subprocess.run([a.herd, "render", "--template", "guard-1b"],
                        input=json.dumps(conv).encode(), capture_output=True)
    r2 = subprocess.run([a.herd, "guard", "--render", "--format", "1b"],
                        input=json.dumps(conv).encode(), capture_output=True)
    check(r1.returncode == 0 and r1.stdout == r2.stdout and r1.stdout.startswith(b"<|begin"),
          "render --template guard-1b")
    # herd render -m a model whose file carries a Llama Guard template renders that format
    r3 = subprocess.run([a.herd, "render", "-m", m["guard_unsafe"]],
                        input=json.dumps(conv).encode(), capture_output=True)
    check(r3.returncode == 0 and r3.stdout == p.stdout, "render -m GUARD uses the guard format")
    # failures: one line on stderr, exit 1
    for args, stdin, what in [
            (["-m", m["guard_unsafe"]], b"not json", "not JSON"),
            (["-m", m["guard_unsafe"]], {"messages": [{"role": "assistant", "content": "x"}]},
             "roles must alternate"),
            (["-m", m["guard_unsafe"], "--role", "agent"],
             {"messages": [{"role": "user", "content": "x"}]}, "--role agent without an answer"),
            (["-m", m["guard_unsafe"], "--role", "nobody"], conv, "bad --role"),
            (["-m", m["guard_unsafe"], "--format", "2b"], conv, "bad --format"),
            ([], conv, "no model"),
            (["-m", m["guard_unsafe"], "-c", "64"], conv, "prompt past the context")]:
        rc, out, err = guard(a.herd, args, stdin)
        check(rc == 1 and err.startswith("herd: ") and err.count("\n") == 1,
              f"{what}: rc {rc}, stderr {err!r}")
    return summary()


if __name__ == "__main__":
    sys.exit(main())
