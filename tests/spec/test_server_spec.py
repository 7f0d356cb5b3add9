#!/usr/bin/env python3
"""test_server_spec.py - `herd serve --draft` / `--lookup`: greedy answers are the target's
own, token for token, with several slots busy at once, and requests that read their rows
token by token (logprobs) still work beside speculating ones.

Three servers on the tiny random model gqa2_untied_f32: plain, --draft with the unrelated
tiny gqa1_tied_f32 (drafts mostly rejected: the rollback path) and with the target's own
file (drafts all kept), and --lookup 2 on a repetitive prompt. Each answers the same
/v1/completions requests (prompt ids, temperature 0, end-of-text banned so answers run to
max_tokens); two requests run concurrently in two slots.

Usage: test_server_spec.py --herd build/herd --work DIR
"""
import json
import os
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "server"))
import common  # noqa: E402

check = common.check

PROMPTS = [[1, 2, 3, 4, 5], [7, 8, 7, 8, 7, 8, 7, 8, 7], [100, 200, 300, 17]]


def answers(srv, bias, logprobs=False):
    """The texts of PROMPTS, the first two sent at once."""
    out = [None] * len(PROMPTS)

    def one(i):
        body = {"model": "m", "prompt": PROMPTS[i], "max_tokens": 40, "temperature": 0,
                "logit_bias": bias}
        if logprobs:
            body["logprobs"] = 1
        s, _, b = srv.request("POST", "/v1/completions", body)
        out[i] = json.loads(b)["choices"][0]["text"] if s == 200 else f"HTTP {s}: {b[:200]}"

    ts = [threading.Thread(target=one, args=(i,)) for i in (0, 1)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    one(2)
    return out


def main():
    a = common.herd_args()
    target = common.make_model(a.work, "gqa2_untied_f32")
    other = common.make_model(a.work, "gqa1_tied_f32")
    bias = common.ban_eos(target)
    base = common.Server(a.herd, target, "--parallel", "2", "-t", "1")
    try:
        want = answers(base, bias)
    finally:
        base.stop()
    check(all(w and not w.startswith("HTTP") for w in want), f"plain answers: {want}")
    for extra in (["--draft", other], ["--draft", target, "--draft-max", "4"],
                  ["--lookup", "2"]):
        srv = common.Server(a.herd, target, "--parallel", "2", "-t", "1", *extra)
        try:
            got = answers(srv, bias)
            check(got == want, f"{extra}: {got} != {want}")
            lp = answers(srv, bias, logprobs=True)  # these decode without drafts
            check(lp == want, f"{extra} with logprobs: {lp} != {want}")
            check(srv.wait_idle(), f"{extra}: slots still busy")
        finally:
            check(srv.stop() == 0, f"{extra}: clean shutdown")
    return common.summary()


if __name__ == "__main__":
    sys.exit(main())
