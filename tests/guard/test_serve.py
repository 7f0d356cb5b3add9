#!/usr/bin/env python3
"""test_serve.py --herd HERD --work DIR - `herd serve --guard` end to end with the official
openai client: the generating model is the tiny real-vocabulary random model, the guard one
of make_guard_model.py's crafted models, whose greedy verdict is known (a real Llama Guard
3 model cannot be run here).

Checked: a flagged request gets finish_reason "content_filter" with
choices[0].content_filter_results (check, verdict, categories with names) and no tokens
generated, streaming and not; --guard-on output cuts a flagged answer (plain: no content;
stream: no text reaches the client, the last chunk says content_filter); a safe guard
changes nothing (same text as a server without one, greedy); --guard-categories;
unparseable verdicts pass; /metrics counts verdicts; the access log names them; completions
are not screened; concurrent requests all get their verdicts.
Exit 77 (skip) without openai/numpy/gguf/tokenizers or the Llama 3 tokenizer.json."""
import argparse
import json
import os
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "server"))
sys.path.insert(0, HERE)
from common import Server, check, make_model, shared_data, skip, summary  # noqa: E402

try:
    import openai
except ImportError:
    openai = None

MSGS = [{"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Tell me about llamas."}]


def guard_models(work):
    import make_guard_model
    return make_guard_model.ensure(os.path.join(work, "models"))


def client(srv):
    return openai.OpenAI(base_url=srv.base + "/v1", api_key="none", max_retries=0)


def metric(srv, check_, verdict):
    _, _, body = srv.get("/metrics")
    key = 'herd_guard_verdicts_total{check="%s",verdict="%s"} ' % (check_, verdict)
    for line in body.decode().splitlines():
        if line.startswith(key):
            return int(line.split()[-1])
    return None


def chat(c, stream=False, **kw):
    kw.setdefault("max_tokens", 24)
    kw.setdefault("temperature", 0)
    if not stream:
        r = c.chat.completions.create(model="m", messages=MSGS, **kw)
        ch = r.choices[0]
        return ch.message.content, ch.finish_reason, ch.model_extra.get(
            "content_filter_results"), r.usage.completion_tokens
    text, finish, filt = "", None, None
    for ev in c.chat.completions.create(model="m", messages=MSGS, stream=True, **kw):
        if not ev.choices:
            continue
        ch = ev.choices[0]
        text += ch.delta.content or ""
        if ch.finish_reason:
            finish = ch.finish_reason
            filt = ch.model_extra.get("content_filter_results")
    return text, finish, filt, None


def test_input(herd, model, g):
    srv = Server(herd, model, "--guard", g["guard_unsafe"], "--guard-on", "input", "-t", "1")
    try:
        c = client(srv)
        for stream in (False, True):
            text, finish, filt, used = chat(c, stream)
            check(finish == "content_filter", f"input flagged (stream {stream}): {finish}")
            check(text == "", f"no content (stream {stream}): {text!r}")
            check(filt and filt["check"] == "input" and filt["verdict"] == "unsafe" and
                  filt["categories"] == [{"code": "S1", "name": "Violent Crimes"},
                                         {"code": "S10", "name": "Hate"}],
                  f"content_filter_results (stream {stream}): {filt}")
            if not stream:
                check(used == 0, f"no generation spent: {used} tokens")
        check(metric(srv, "input", "unsafe") == 2, "metrics count 2 unsafe inputs")
        check(metric(srv, "output", "unsafe") == 0, "no output check with --guard-on input")
        # completions are not screened (the guard reads conversations)
        r = c.completions.create(model="m", prompt="Hello", max_tokens=4, temperature=0)
        check(r.choices[0].finish_reason in ("length", "stop"), "completions pass")
        # concurrent requests: each gets its own verdict
        results = []

        def one():
            results.append(chat(client(srv))[1])
        ts = [threading.Thread(target=one) for _ in range(6)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        check(results == ["content_filter"] * 6, f"6 concurrent: {results}")
        srv.wait_idle()
    finally:
        check(srv.stop() == 0, "clean exit (no sanitizer report)")
    check(any("guard=input:unsafe:S1,S10" in line for line in srv.log),
          "access log names the verdict")


def test_output(herd, model, g):
    # the reference: no guard, greedy
    srv = Server(herd, model, "-t", "1")
    try:
        ref = chat(client(srv))[0]
        ref_stream = chat(client(srv), stream=True)[0]
    finally:
        check(srv.stop() == 0, "clean exit (no sanitizer report)")
    check(ref == ref_stream and len(ref) > 0, "reference answer")
    srv = Server(herd, model, "--guard", g["guard_safe"], "-t", "1")
    try:
        c = client(srv)
        for stream in (False, True):
            text, finish, filt, _ = chat(c, stream)
            check(text == ref and finish in ("length", "stop") and filt is None,
                  f"safe guard changes nothing (stream {stream}): {text!r} {finish}")
        check(metric(srv, "input", "safe") == 2 and metric(srv, "output", "safe") >= 2,
              "safe verdicts counted")
    finally:
        check(srv.stop() == 0, "clean exit (no sanitizer report)")
    srv = Server(herd, model, "--guard", g["guard_unsafe"], "--guard-on", "output", "-t", "1",
                 "--guard-categories", "S1,S10")
    try:
        c = client(srv)
        for stream in (False, True):
            text, finish, filt, _ = chat(c, stream)
            check(finish == "content_filter" and text == "",
                  f"flagged answer cut (stream {stream}): {text!r} {finish}")
            check(filt and filt["check"] == "output" and filt["verdict"] == "unsafe",
                  f"output filter results (stream {stream}): {filt}")
        check(metric(srv, "output", "unsafe") == 2 and metric(srv, "input", "unsafe") == 0,
              "output verdicts counted")
    finally:
        check(srv.stop() == 0, "clean exit (no sanitizer report)")
    # an unparseable verdict passes (only "unsafe" cuts), and is counted
    srv = Server(herd, model, "--guard", g["guard_garbage"], "-t", "1", "--access-log", "json")
    try:
        text, finish, filt, _ = chat(client(srv))
        check(text == ref and filt is None, f"unparseable passes: {finish}")
        check(metric(srv, "input", "unparseable") == 1, "unparseable counted")
    finally:
        check(srv.stop() == 0, "clean exit (no sanitizer report)")
    logs = [json.loads(line) for line in srv.log if line.startswith("{")]
    check(any(entry.get("guard", "").startswith("output:unparseable") for entry in logs),
          "JSON access log carries the verdict")


def test_served_guard(herd, g):
    """A Llama Guard model served itself (as vLLM would): chat requests get its format, the
    categories may come in chat_template_kwargs, the answer is the verdict text."""
    srv = Server(herd, g["guard_unsafe"], "-t", "1")
    try:
        r = client(srv).chat.completions.create(
            model="m", messages=MSGS[1:], temperature=0, max_tokens=10,
            extra_body={"chat_template_kwargs": {"excluded_category_keys": ["S2"]}})
        check(r.choices[0].message.content.strip() == "unsafe\nS1,S10" and
              r.choices[0].finish_reason == "stop", f"served guard answers: {r.choices[0]}")
        # the prompt is the guard format's, token for token
        st, _, body = srv.request("POST", "/tokenize", {"content": "x"})
        check(st == 200, "tokenize answers")
    finally:
        check(srv.stop() == 0, "clean exit (no sanitizer report)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--herd", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    if openai is None:
        skip("the openai package is not installed")
    if not shared_data():
        skip("../shared/data/llama3/tokenizer.json is missing")
    try:
        import numpy  # noqa: F401
        import tokenizers  # noqa: F401
    except ImportError as e:
        skip(f"needs numpy and tokenizers ({e})")
    model = make_model(a.work, "realvocab_tied_bf16")
    g = guard_models(a.work)
    test_input(a.herd, model, g)
    test_output(a.herd, model, g)
    test_served_guard(a.herd, g)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
