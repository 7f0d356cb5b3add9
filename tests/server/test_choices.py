#!/usr/bin/env python3
"""test_choices.py - n > 1 and prompt lists (issue 16).

Checked, on the tiny test model:
  - n = 4 on /v1/completions and /v1/chat/completions: indices 0..3, sampled choices not all
    equal, choice i of a seeded request is the n = 1 answer for seed + i (the documented
    scheme), the same request twice gives the same choices, usage counts the prompt once and
    sums the completions;
  - the prompt is computed once: /metrics' prompt tokens minus cached tokens grow by the
    prompt's length for n = 4 (the other choices copy its KV and logits);
  - n larger than the free slots (n = 5 on 2 slots) is queued and served;
  - streaming with n = 3 (openai client): chunks interleave with their index, every index
    gets its role chunk and one finish_reason, merged text equals the non-stream choices,
    include_usage totals;
  - prompt lists on /v1/completions: strings and token-id arrays, index = prompt * n + j,
    greedy choices equal the single-prompt answers, usage sums the prompts; echo per prompt;
  - json_object with n = 3: every choice parses; logprobs per choice;
  - refusals: n past --max-choices, prompts x n past it (param prompt), mixed prompt lists,
    n = 0 / 129, best_of;
  - a client hanging up on an n = 3 stream frees every slot.
--speed MODEL: time and prompt tokens of n = 1 vs n = 4 on a long prompt (one prefill).

Usage: test_choices.py --herd build/herd --work DIR [--speed MODEL]
"""
import argparse
import http.client
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

check = common.check
BAN = {}


def post(srv, path, body, timeout=60):
    s, _, b = srv.request("POST", path, body, timeout=timeout)
    return s, json.loads(b) if b else None


def texts(r):
    return [c.get("text", c.get("message", {}).get("content"))
            for c in sorted(r["choices"], key=lambda c: c["index"])]


def metric(srv, name):
    s, _, b = srv.get("/metrics")
    m = re.search(rf"^{name} (\S+)$", b.decode(), re.M)
    return float(m.group(1)) if m else 0.0


def check_n(srv):
    # top_p 1: on random weights the distribution is nearly flat, and top-p's sort order
    # then follows the last bits of the logits, which differ between a step of 4 rows and
    # one of 1 (the same math blocked differently); without the sort a seed decides alone
    body = {"prompt": "The river runs", "max_tokens": 12, "temperature": 1.0, "seed": 7,
            "top_p": 1.0,
            "logit_bias": BAN}
    s, r = post(srv, "/v1/completions", dict(body, n=4))
    check(s == 200, f"n=4 completions: {s} {r}")
    if s != 200:
        return
    check([c["index"] for c in r["choices"]] == [0, 1, 2, 3], "indices 0..3")
    t = texts(r)
    check(len(set(t)) > 1, f"sampled choices differ: {t}")
    s2, r2 = post(srv, "/v1/completions", dict(body, n=4))
    check(texts(r2) == t, "the same seeded request gives the same choices")
    one_prompt = None
    for i in range(4):
        s1, r1 = post(srv, "/v1/completions", dict(body, seed=7 + i))
        check(texts(r1)[0] == t[i], f"choice {i} is the n=1 answer for seed + {i}")
        one_prompt = r1["usage"]["prompt_tokens"]
    u = r["usage"]
    check(u["prompt_tokens"] == one_prompt, f"prompt counted once: {u}")
    check(u["completion_tokens"] == 48 and u["total_tokens"] == one_prompt + 48,
          f"completions summed: {u}")
    # one prefill: computed prompt tokens (prompt - cached) grow by the prompt once
    ids = list(range(10, 110))
    p0 = metric(srv, "herd_prompt_tokens_total") - metric(srv, "herd_prompt_cached_tokens_total")
    s, r = post(srv, "/v1/completions", {"prompt": ids, "n": 4, "max_tokens": 4,
                                         "temperature": 1.0, "logit_bias": BAN})
    srv.wait_idle()
    p1 = metric(srv, "herd_prompt_tokens_total") - metric(srv, "herd_prompt_cached_tokens_total")
    check(s == 200 and r["usage"]["prompt_tokens"] == 100, "n=4 usage: 100 prompt tokens")
    # a choice admitted after the first one's prefill takes the cached prefix and computes
    # only the last prompt token again (for its logits): 100 plus at most one per choice
    check(100 <= p1 - p0 <= 103,
          f"n=4 computed the 100-token prompt once ({p1 - p0:.0f} computed)")
    # chat
    cb = {"messages": [{"role": "user", "content": "Tell me something."}], "max_tokens": 8,
          "temperature": 1.0, "top_p": 1.0, "seed": 3, "n": 4, "logit_bias": BAN}
    s, r = post(srv, "/v1/chat/completions", cb)
    check(s == 200 and [c["index"] for c in r["choices"]] == [0, 1, 2, 3], "chat n=4")
    check(s == 200 and len(set(texts(r))) > 1, "chat choices differ")
    s1, r1 = post(srv, "/v1/chat/completions", dict(cb, n=1, seed=5))
    check(texts(r1)[0] == texts(r)[2], "chat choice 2 is seed + 2's answer")
    check(r["usage"]["prompt_tokens"] == r1["usage"]["prompt_tokens"], "chat prompt once")
    # json_object with n = 3; logprobs per choice
    s, r = post(srv, "/v1/chat/completions", dict(cb, n=3, max_tokens=40,
                                                  response_format={"type": "json_object"}))
    ok = s == 200 and all(isinstance(json.loads(x), dict) for x in texts(r))
    check(ok, "json_object: every choice is a JSON object")
    s, r = post(srv, "/v1/chat/completions", dict(cb, n=2, logprobs=True, top_logprobs=2))
    check(s == 200 and len(r["choices"]) == 2 and
          all(len(c["logprobs"]["content"]) > 0 for c in r["choices"]),
          "logprobs for every choice")


def check_queue(herd, model):
    srv = common.Server(herd, model, "--parallel", "2", "--ctx", "256")
    try:
        s, r = post(srv, "/v1/completions", {"prompt": "Once", "n": 5, "max_tokens": 6,
                                             "temperature": 0.8, "top_p": 1.0, "seed": 1,
                                             "logit_bias": BAN})
        check(s == 200 and len(r["choices"]) == 5, f"n=5 over 2 slots queued and served: {s}")
        one = post(srv, "/v1/completions", {"prompt": "Once", "max_tokens": 6,
                                            "temperature": 0.8, "top_p": 1.0, "seed": 5,
                                            "logit_bias": BAN})[1]
        check(s == 200 and texts(r)[4] == texts(one)[0], "a queued choice keeps its seed")
        s, r = post(srv, "/v1/completions", {"prompt": "x", "n": 17})
        check(s == 400 and r["error"]["param"] == "n" and "--max-choices" in
              r["error"]["message"], f"n past --max-choices: {s} {r}")
        s, r = post(srv, "/v1/completions", {"prompt": ["a", "b", "c", "d", "e"], "n": 4})
        check(s == 400 and r["error"]["param"] == "prompt", f"prompts x n past the cap: {r}")
    finally:
        check(srv.stop() == 0, "clean exit")


def check_stream(srv):
    import openai
    client = openai.OpenAI(base_url=srv.base + "/v1", api_key="none")
    kw = dict(model="m", messages=[{"role": "user", "content": "Say things."}], max_tokens=10,
              temperature=1.0, seed=11, n=3, logit_bias=BAN)
    plain = client.chat.completions.create(**kw)
    text, finish, roles, order = {}, {}, {}, []
    usage = None
    for chunk in client.chat.completions.create(stream=True,
                                                stream_options={"include_usage": True}, **kw):
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            order.append(c.index)
            if c.delta.role:
                roles[c.index] = c.delta.role
            text[c.index] = text.get(c.index, "") + (c.delta.content or "")
            if c.finish_reason:
                check(c.index not in finish, f"one finish_reason for index {c.index}")
                finish[c.index] = c.finish_reason
    check(sorted(roles) == [0, 1, 2], "a role chunk per index")
    check(sorted(finish) == [0, 1, 2], f"a finish per index: {finish}")
    switches = sum(1 for a, b in zip(order, order[1:]) if a != b)
    check(switches > 3, f"chunks interleave ({switches} index switches)")
    for c in plain.choices:
        check(text.get(c.index) == c.message.content,
              f"stream index {c.index} equals the non-stream choice")
    check(usage is not None and usage.completion_tokens == plain.usage.completion_tokens and
          usage.prompt_tokens == plain.usage.prompt_tokens, f"stream usage totals: {usage}")
    # completions stream with a prompt list x n
    st = {}
    for chunk in client.completions.create(model="m", prompt=["Alpha", "Beta"], n=2,
                                           max_tokens=5, temperature=0, stream=True,
                                           logit_bias=BAN):
        for c in chunk.choices:
            st[c.index] = st.get(c.index, "") + c.text
    check(sorted(st) == [0, 1, 2, 3], "completions stream: 2 prompts x n=2")
    check(st.get(0) == st.get(1) and st.get(2) == st.get(3), "greedy choices of a prompt agree")


def check_lists(srv):
    prompts = ["The sun", "A quick brown fox", "In 1999"]
    s, r = post(srv, "/v1/completions", {"prompt": prompts, "n": 2, "max_tokens": 6,
                                         "temperature": 0, "logit_bias": BAN})
    check(s == 200 and [c["index"] for c in r["choices"]] == list(range(6)), "3 prompts x 2")
    if s != 200:
        return
    total = 0
    for i, p in enumerate(prompts):
        s1, r1 = post(srv, "/v1/completions", {"prompt": p, "max_tokens": 6, "temperature": 0,
                                               "logit_bias": BAN})
        total += r1["usage"]["prompt_tokens"]
        check(texts(r)[2 * i] == texts(r1)[0] == texts(r)[2 * i + 1],
              f"prompt {i}: index {2 * i} and {2 * i + 1} are its greedy answer")
    check(r["usage"]["prompt_tokens"] == total, f"usage sums the prompts: {r['usage']}")
    check(r["usage"]["completion_tokens"] == 36, "completions summed over 6 choices")
    ids = [[1, 2, 3], [4, 5, 6, 7]]
    s, r = post(srv, "/v1/completions", {"prompt": ids, "max_tokens": 3, "temperature": 0,
                                         "logit_bias": BAN})
    check(s == 200 and len(r["choices"]) == 2 and r["usage"]["prompt_tokens"] == 7,
          "token-id prompt list")
    s1, r1 = post(srv, "/v1/completions", {"prompt": ids[1], "max_tokens": 3,
                                           "temperature": 0, "logit_bias": BAN})
    check(s == 200 and texts(r)[1] == texts(r1)[0], "token prompt 1 = its own answer")
    s, r = post(srv, "/v1/completions", {"prompt": ["One", "Two"], "max_tokens": 2,
                                         "temperature": 0, "echo": True, "logit_bias": BAN})
    check(s == 200 and texts(r)[0].startswith("One") and texts(r)[1].startswith("Two"),
          "echo per prompt")
    for body, param in (({"prompt": ["a", [1]]}, "prompt"), ({"prompt": [[1], "a"]}, "prompt"),
                        ({"prompt": "a", "n": 0}, "n"), ({"prompt": "a", "n": 129}, "n"),
                        ({"prompt": "a", "best_of": 2}, "best_of"),
                        ({"prompt": ["ok", "word " * 2000]}, "prompt")):
        s, r = post(srv, "/v1/completions", body)
        check(s == 400 and r["error"]["param"] == param, f"{json.dumps(body)[:50]}: {s} {r}")


def check_hangup(srv):
    body = json.dumps({"prompt": "Hang", "n": 3, "max_tokens": 200, "stream": True,
                       "temperature": 1.0, "logit_bias": BAN})
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=30)
    conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    resp.read1(100)
    conn.close()
    check(srv.wait_idle(10), "an n=3 stream hung up frees every slot")


def speed(herd, model):
    srv = common.Server(herd, model, "--parallel", "4", "--ctx", "2048", "-t", "2")
    try:
        ids = [(i * 7919) % 20000 + 100 for i in range(512)]
        for n in (1, 4, 1, 4):
            ids[0] += 1  # a new prompt each time: no prefix cache
            p0 = (metric(srv, "herd_prompt_tokens_total") -
                  metric(srv, "herd_prompt_cached_tokens_total"))
            t0 = time.time()
            s, r = post(srv, "/v1/completions", {"prompt": ids, "n": n, "max_tokens": 8,
                                                 "temperature": 1.0}, timeout=900)
            dt = time.time() - t0
            srv.wait_idle()
            p1 = (metric(srv, "herd_prompt_tokens_total") -
                  metric(srv, "herd_prompt_cached_tokens_total"))
            print(f"speed: n={n}: {dt * 1000:.0f} ms, usage prompt_tokens "
                  f"{r['usage']['prompt_tokens']}, completion_tokens "
                  f"{r['usage']['completion_tokens']}, prompt tokens computed {p1 - p0:.0f}")
    finally:
        srv.stop()


def main():
    global BAN
    ap = argparse.ArgumentParser()
    ap.add_argument("--herd", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--speed", metavar="MODEL")
    a = ap.parse_args()
    try:
        import openai  # noqa: F401
    except ImportError as e:
        common.skip(f"needs openai ({e})")
    if a.speed:
        speed(a.herd, a.speed)
        return 0
    model = common.test_model(a.work)[0]
    BAN = common.ban_eos(model)
    srv = common.Server(a.herd, model, "--parallel", "4", "--ctx", "256")
    try:
        check_n(srv)
        check_stream(srv)
        check_lists(srv)
        check_hangup(srv)
    finally:
        check(srv.stop() == 0, "clean exit")
    check_queue(a.herd, model)
    return common.summary()


if __name__ == "__main__":
    sys.exit(main())
