#!/usr/bin/env python3
"""bench_server.py - aggregate generation throughput and time-to-first-token of `herd serve`
at several --parallel levels, each driven by as many streaming clients as slots.

Each client loops: one streaming chat completion with a fresh user message (so prefill is
real work; the prefix cache only helps with the template's shared head), greedy, end tokens
banned so every request produces exactly --max-tokens tokens. Every chunk carries logprobs,
one entry per token, so tokens are counted exactly as they arrive: aggregate tokens/s is
the tokens received inside the window over its length (requests still running at the end
count for what they delivered). The window opens once every client has its first token
(steady state: the start-up burst of P simultaneous prefills is left out; later requests'
prefills, interleaved with the others' decoding, are in). TTFT is from sending the request to the first content
chunk. Reports, never gates.

Usage: bench_server.py --herd build/herd --model MODEL.gguf [--levels 1,4,8,16]
                       [--seconds 30] [--max-tokens 64] [-t THREADS] [--json OUT]
"""
import argparse
import http.client
import json
import os
import random
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "tests", "server"))
import common  # noqa: E402

WORDS = ("river stone cloud lamp orange violin garden winter copper signal harbor maple "
         "engine lantern meadow silver thunder candle marble falcon").split()
END_IDS = (128001, 128008, 128009)


def one(srv, rng, max_tokens, arrivals=None, end=None, started=None):
    msg = "Write a story about " + " ".join(rng.choice(WORDS) for _ in range(24)) + "."
    body = {"messages": [{"role": "user", "content": msg}], "max_tokens": max_tokens,
            "temperature": 0, "stream": True, "stream_options": {"include_usage": True},
            "logprobs": True,
            "logit_bias": {str(i): -100 for i in END_IDS}}
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=600)
    t0 = time.time()
    conn.request("POST", "/v1/chat/completions", json.dumps(body),
                 {"Content-Type": "application/json"})
    resp = conn.getresponse()
    first, usage = None, None
    for data in common.sse_events(resp):
        if data == b"[DONE]":
            break
        chunk = json.loads(data)
        if chunk.get("usage"):
            usage = chunk["usage"]
        now = time.time()
        if first is None and any(c["delta"].get("content") for c in chunk["choices"]):
            first = now
            if started:
                started.release()
        if arrivals is not None:
            n = sum(len((c.get("logprobs") or {}).get("content") or [])
                    for c in chunk["choices"])
            arrivals.append((now, n))
        if end and now > end():
            break
    conn.close()
    return t0, first, time.time(), usage["completion_tokens"] if usage else 0


def level(herd, model, p, seconds, max_tokens, threads):
    args = ["--parallel", p, "--ctx", 1024]
    if threads:
        args += ["-t", threads]
    srv = common.Server(herd, model, *args)
    try:
        one(srv, random.Random(0), 4)  # warm-up: page in the weights
        done, lock, arrivals = [], threading.Lock(), []
        started = threading.Semaphore(0)  # one release per client at its first token
        far = time.time() + 3600
        window = {"end": far}

        def client(i):
            rng = random.Random(1000 + i)
            first = True
            while time.time() < window["end"]:
                r = one(srv, rng, max_tokens, arrivals, lambda: window["end"],
                        started if first else None)
                first = False
                with lock:
                    done.append(r)

        ts = [threading.Thread(target=client, args=(i,)) for i in range(p)]
        for t in ts:
            t.start()
        for _ in ts:  # steady state: every client is decoding
            started.acquire()
        start = time.time()
        end = start + seconds
        window["end"] = end
        for t in ts:
            t.join()
        tokens = sum(n for t, n in arrivals if start <= t <= end)
        ttft = sorted(r[1] - r[0] for r in done if r[1])
        return {"parallel": p, "clients": p, "requests": len([r for r in done if r[2] <= end]),
                "tokens_per_s": tokens / seconds,
                "ttft_p50_s": statistics.median(ttft) if ttft else None,
                "ttft_p90_s": ttft[max(0, -(-9 * len(ttft) // 10) - 1)] if ttft else None}
    finally:
        srv.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--herd", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--levels", default="1,4,8,16")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("-t", "--threads", type=int, default=0)
    ap.add_argument("--json")
    a = ap.parse_args()
    rows = []
    for p in [int(x) for x in a.levels.split(",")]:
        r = level(a.herd, a.model, p, a.seconds, a.max_tokens, a.threads)
        rows.append(r)
        print(json.dumps(r), file=sys.stderr)
    base = rows[0]["tokens_per_s"] or 1
    print("| --parallel | clients | requests | aggregate tokens/s | vs 1 stream | TTFT p50 | "
          "TTFT p90 |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['parallel']} | {r['clients']} | {r['requests']} | "
              f"{r['tokens_per_s']:.1f} | {r['tokens_per_s'] / base:.2f}x | "
              f"{r['ttft_p50_s'] * 1000:.0f} ms | {r['ttft_p90_s'] * 1000:.0f} ms |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
