#!/usr/bin/env python3
"""test_prompt.py - the server's chat prompt is exactly `herd render`'s and the official
template's, token for token, on requests whose numbers a generic JSON library rewrites.

For each request (tool schemas and assistant tool-call arguments carrying 1.0, 0.0, -0.0,
12345678901234567891 and 1e-07, which Python's json keeps as written and a double-based
library prints as 1, 0, 1.2345678901234567e+19, ...) three prompts must agree:
  server    `herd serve` on the tiny real-vocabulary model: usage.prompt_tokens, and the ids
            themselves through the prefix cache (below)
  render    `herd render -m MODEL --ids` on the same bytes
  official  the official template file rendered by jinja2 as transformers does
            (scripts/golden_chat.py's environment) and tokenized by the model's
            tokenizer.json with Hugging Face `tokenizers`
The ids: with one slot, the slot's cache holds the chat prompt S (plus what was generated).
A completions request whose prompt is the token ids O + [x] (O = the official ids) then
reports cached_tokens = min(common prefix of S.. and O + [x], len(O)), so cached_tokens ==
len(O) together with prompt_tokens == len(O) says S == O, every id. Only documented API
(usage.prompt_tokens_details.cached_tokens), no debug hook.

Also: JSON nested deeper than the chat parser's limit (but within cJSON's) is a 400 that
says so, and a prompt that cannot fit the context is refused as a 400 before it is
tokenized (a 256 KiB word that byte-pair merging would chew on for many seconds is
answered at once).

Usage: test_prompt.py --herd build/herd --work DIR
"""
import json
import os
import random
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "scripts"))
import common  # noqa: E402

try:
    import jinja2  # noqa: F401
    import tokenizers
    import golden_chat
except ImportError as e:
    common.skip(f"needs jinja2 and tokenizers ({e})")

check = common.check


DATE = {"date_string": "26 Jul 2024"}  # the 3.2 template would otherwise print today
SCHEMA = {"type": "function", "function": {
    "name": "set_level", "description": "Set a level",
    "parameters": {"type": "object", "properties": {
        "level": {"type": "number", "minimum": 0.0, "maximum": 1.0, "default": -0.0,
                  "exclusiveMinimum": 1e-07, "multipleOf": 0.5},
        "id": {"type": "integer", "maximum": 12345678901234567891, "examples": [1, 1.0]}},
        "required": ["level"]}}}
ARGS = {"level": 1.0, "floor": 0.0, "id": 12345678901234567891, "eps": 1e-07, "n": 3}
USER = {"role": "user", "content": "Set the level."}


def call(arguments):
    return {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "set_level", "arguments": arguments}}]}


RESULT = {"role": "tool", "tool_call_id": "call_1", "content": "{\"ok\": 1.0}"}
CASES = [
    ("schema", {"messages": [USER], "tools": [SCHEMA]}),
    ("args_object", {"messages": [USER, call(ARGS), RESULT], "tools": [SCHEMA]}),
    ("args_string", {"messages": [USER, call(json.dumps(ARGS)), RESULT], "tools": [SCHEMA]}),
    ("args_no_tools", {"messages": [USER, call(ARGS), RESULT]}),
    ("tool_choice_none", {"messages": [USER], "tools": [SCHEMA], "tool_choice": "none"}),
    ("tools_in_system", {"messages": [USER], "tools": [SCHEMA],
                         "chat_template_kwargs": {"tools_in_user_message": False}}),
]


def official(template, tok, body):
    """The official template as transformers renders it (after golden_chat.prepare's
    OpenAI-server conventions, tool_choice "none" included), then the tokenizer."""
    text = golden_chat.render(template, body.decode())
    return tok.encode(text, add_special_tokens=False).ids


def herd_render(herd, model, body):
    r = subprocess.run([herd, "render", "-m", model, "--ids"], input=body,
                       capture_output=True, timeout=120)
    if r.returncode != 0:
        return None, r.stderr.decode()
    return json.loads(r.stdout), r.stderr.decode()


def test_exact(srv, herd, model):
    _, log = herd_render(herd, model, b'{"messages":[{"role":"user","content":"x"}]}')
    name = "llama-3.2-instruct.jinja" if "Llama 3.2" in log else "llama-3.1-instruct.jinja"
    with open(os.path.join(common.shared_data(), "templates", name)) as f:
        template = f.read()
    tok = tokenizers.Tokenizer.from_file(os.path.join(model, "tokenizer.json"))
    for label, req in CASES:
        req = dict(req, max_tokens=1, temperature=0)
        req["chat_template_kwargs"] = dict(DATE, **req.get("chat_template_kwargs", {}))
        body = json.dumps(req).encode()
        want = official(template, tok, body)
        ids, err = herd_render(herd, model, body)
        check(ids == want, f"{label}: herd render --ids == official "
              f"({len(ids or [])} vs {len(want)} ids) {err[-200:] if ids is None else ''}")
        s, _, b = srv.request("POST", "/v1/chat/completions", body)
        check(s == 200, f"{label}: chat -> {s} {b[:200]!r}")
        if s != 200:
            continue
        n = json.loads(b)["usage"]["prompt_tokens"]
        check(n == len(want), f"{label}: server prompt_tokens {n} == official {len(want)}")
        probe = {"prompt": want + [13], "max_tokens": 1, "temperature": 0}
        s, _, b = srv.request("POST", "/v1/completions", probe)
        cached = json.loads(b)["usage"]["prompt_tokens_details"]["cached_tokens"] \
            if s == 200 else -1
        check(cached == len(want), f"{label}: the server's prompt ids are the official ids "
              f"(first {cached} of {len(want)} agree)")


def test_deep(srv):
    """Nested 201..1000 deep: cJSON reads it, the chat parser refuses it: a 400 that says
    why, never a 500."""
    for depth in (150, 199, 201, 500, 999):
        value = "[" * depth + "]" * depth
        body = ('{"messages":[{"role":"user","content":"hi"}],"max_tokens":1,'
                '"extra":' + value + '}').encode()
        s, _, b = srv.request("POST", "/v1/chat/completions", body)
        err = json.loads(b).get("error", {}) if s != 200 else {}
        if depth + 1 <= 200:
            check(s == 200, f"depth {depth}: accepted -> {s} {b[:200]!r}")
        else:
            check(s == 400 and "nest" in err.get("message", ""),
                  f"depth {depth}: 400 naming the nesting -> {s} {b[:200]!r}")
    check(srv.proc.poll() is None, "alive after deep JSON")


def test_too_long(srv):
    """A prompt that cannot fit is refused with context_length_exceeded before it is
    tokenized. 256 KiB of letters without a space is one pre-token piece, which byte-pair
    merging takes tens of seconds over; the byte bound (no token covers more than the
    longest token's bytes) refuses it at once, on both endpoints."""
    rng = random.Random(5)
    word = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(256 << 10))
    for path, body in (("/v1/chat/completions",
                        {"messages": [{"role": "user", "content": word}], "max_tokens": 1}),
                       ("/v1/completions", {"prompt": word, "max_tokens": 1})):
        t0 = time.time()
        s, _, b = srv.request("POST", path, json.dumps(body).encode(), timeout=600)
        dt = time.time() - t0
        err = json.loads(b).get("error", {}) if s != 200 else {}
        check(s == 400 and err.get("code") == "context_length_exceeded",
              f"{path}: 256 KiB word -> 400 context_length_exceeded: {s} {b[:200]!r}")
        check(dt < 5, f"{path}: refused before tokenizing ({dt:.2f} s)")
        print(f"note: {path}: a 256 KiB word refused in {dt:.3f} s")
    # just past the context: the byte bound cannot tell, the run-by-run count does
    body = {"messages": [{"role": "user", "content": "hello " * 1100}], "max_tokens": 1}
    s, _, b = srv.request("POST", "/v1/chat/completions", json.dumps(body).encode())
    err = json.loads(b).get("error", {}) if s != 200 else {}
    check(s == 400 and err.get("code") == "context_length_exceeded" and
          err.get("param") == "messages",
          f"prompt just past the context -> 400: {s} {b[:200]!r}")
    # and one that fits is served
    body = {"messages": [{"role": "user", "content": "hello " * 900}], "max_tokens": 1}
    s, _, b = srv.request("POST", "/v1/chat/completions", json.dumps(body).encode())
    check(s == 200, f"a prompt that fits -> 200: {s} {b[:200]!r}")


def main():
    a = common.herd_args()
    if not common.shared_data():
        common.skip("../shared/data/llama3/tokenizer.json is missing")
    model, _ = common.test_model(a.work)
    srv = common.Server(a.herd, model, "--parallel", 1, "--ctx", 1024, "--max-body", 1 << 20)
    try:
        test_exact(srv, a.herd, model)
        test_deep(srv)
        test_too_long(srv)
        check(srv.stop() == 0, "clean exit on SIGTERM")
    finally:
        srv.stop()
        if common.failed():
            print("server log:\n" + "".join(srv.log[-30:]))
    return common.summary()


if __name__ == "__main__":
    sys.exit(main())
