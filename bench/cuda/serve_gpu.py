#!/usr/bin/env python3
"""serve_gpu.py - herd serve with --device cuda, as a client sees it: P clients at once
send the same chat request (greedy), so the server's continuous batching runs P sequences
per GPU step; every answer must be 200 with text, and the number of distinct answers and
the aggregate completion tokens/s are printed. (Distinct answers can occur on the GPU: a
prompt prefilled alone or beside another goes through cuBLAS products of other shapes,
which round differently, and a random-weight model's near-tie logits turn that into other
greedy tokens; the CPU backend is batch-invariant.)

Usage: serve_gpu.py HERD MODEL [--parallel 8] [--tokens 64]
Exit 0 when every answer is a 200 with text, 1 otherwise.
"""
import argparse
import json
import re
import subprocess
import sys
import threading
import time
import urllib.request


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("herd")
    ap.add_argument("model")
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=64)
    a = ap.parse_args()
    cmd = [a.herd, "serve", "-m", a.model, "--port", "0", "--device", "cuda",
           "--parallel", str(a.parallel), "-c", "1024", "--alias", "m"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    first = proc.stderr.readline()
    m = re.search(r"http://(\[[^\]]+\]|[^:/\s]+):(\d+)", first)
    if not m:
        print("herd serve did not start:", first, proc.stderr.read() if proc.poll() else "")
        proc.kill()
        return 1
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    base = f"http://{m.group(1)}:{m.group(2)}"
    for _ in range(200):
        try:
            urllib.request.urlopen(base + "/health", timeout=2).read()
            break
        except OSError:
            time.sleep(0.1)
    body = json.dumps({"model": "m", "temperature": 0, "max_tokens": a.tokens,
                       "messages": [{"role": "user", "content": "Write a poem about GPUs."}]
                       }).encode()
    results = [None] * a.parallel

    def one(i):
        req = urllib.request.Request(base + "/v1/chat/completions", data=body,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                results[i] = (r.status, json.loads(r.read()))
        except Exception as e:  # noqa: BLE001 - reported below
            results[i] = (getattr(e, "code", -1), str(e))

    t0 = time.time()
    th = [threading.Thread(target=one, args=(i,)) for i in range(a.parallel)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    dt = time.time() - t0
    proc.terminate()
    proc.wait(timeout=30)
    ok = all(r and r[0] == 200 for r in results)
    texts = [r[1]["choices"][0]["message"]["content"] if ok else str(r) for r in results]
    toks = sum(r[1]["usage"]["completion_tokens"] for r in results) if ok else 0
    good = ok and all(texts)
    print(f"serve --device cuda: {a.parallel} clients, all 200 with text: {good}, distinct "
          f"answers: {len(set(texts))}, {toks} completion tokens in {dt:.2f} s = "
          f"{toks / dt:.1f} tok/s aggregate")
    for t in sorted(set(texts)):
        print("  ", repr(t[:100]))
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
