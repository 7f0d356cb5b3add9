#!/usr/bin/env python3
"""load_test.py - a bounded soak of `herd serve` on loopback.

CLIENTS threads stream chat completions for SECONDS: prompts share a system prompt (so the
prefix cache is exercised), max_tokens varies, and about one request in five hangs up after
a few chunks. Passes when no request failed (every kept stream is HTTP 200, well-formed
chunks, a finish_reason and data: [DONE]), no slot is left busy afterwards, and the server's
resident memory is flat (growth after warm-up under --rss-slack MiB).

With --sigterm-at S the server gets SIGTERM S seconds in (with --grace 1 and a 5 ms step,
so some streams are still running when the grace ends): then every stream must either
complete or end with an error event followed by data: [DONE] (never a cut body), a request
arriving later is refused (connection refused or 503), and the server exits 0.

Usage: load_test.py --herd build/herd --work DIR [--clients 32] [--seconds 60]
                    [--sigterm-at S]
"""
import argparse
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

SYSTEM = "You are a helpful assistant that answers briefly. " * 4
QUESTIONS = ["What is the capital of France?", "Tell me a joke.", "Count to ten.",
             "Explain rain.", "Hello!", "Write a haiku about the sea.", "Why is the sky blue?"]


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok = self.hung_up = self.tokens = self.shut = self.refused = 0
        self.failures = []
        self.stopping = False  # SIGTERM sent: errors that end cleanly are expected

    def add(self, **kw):
        with self.lock:
            for k, v in kw.items():
                if k == "failure":
                    self.failures.append(v)
                else:
                    setattr(self, k, getattr(self, k) + v)


def one_request(srv, rng, stats):
    hang_up = rng.random() < 0.2
    body = {"model": "m", "stream": True, "max_tokens": rng.randint(8, 64),
            "stream_options": {"include_usage": True},
            "messages": [{"role": "system", "content": SYSTEM},
                         {"role": "user", "content": rng.choice(QUESTIONS)}]}
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=120)
    try:
        conn.request("POST", "/v1/chat/completions", json.dumps(body),
                     {"Content-Type": "application/json"})
        resp = conn.getresponse()
        if resp.status == 503 and stats.stopping:
            stats.add(refused=1)
            return
        if resp.status != 200:
            stats.add(failure=f"HTTP {resp.status}: {resp.read()[:200]!r}")
            return
        finish, done, usage, n, error = None, False, None, 0, None
        for data in common.sse_events(resp):
            if data == b"[DONE]":
                done = True
                break
            chunk = json.loads(data)
            if "error" in chunk:
                error = data
                continue
            if chunk.get("usage"):
                usage = chunk["usage"]
            for ch in chunk["choices"]:
                finish = ch.get("finish_reason") or finish
            n += 1
            if hang_up and n >= 3:
                conn.sock.shutdown(socket.SHUT_RDWR)
                stats.add(hung_up=1)
                return
        if error is not None:
            if stats.stopping and done:
                stats.add(shut=1)  # ended by the shutdown: an error event, then [DONE]
            else:
                stats.add(failure=f"error event (done={done}): {error[:200]!r}")
            return
        if not done or finish not in ("stop", "length") or not usage:
            stats.add(failure=f"stream ended badly: done={done} finish={finish} "
                              f"usage={usage}")
            return
        stats.add(ok=1, tokens=usage["completion_tokens"])
    except ConnectionRefusedError:
        if stats.stopping:
            stats.add(refused=1)
        else:
            stats.add(failure="connection refused")
    except (OSError, ValueError, http.client.HTTPException) as e:
        if not hang_up:
            stats.add(failure=f"{type(e).__name__}: {e}")
    finally:
        conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--herd", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--rss-slack", type=float, default=24.0, help="MiB")
    ap.add_argument("--sigterm-at", type=float, default=0, help="seconds; 0 = never")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    model = common.make_model(a.work, "gqa2_untied_f32")
    env = None
    args = ["--parallel", a.parallel, "--ctx", 512]
    if a.sigterm_at:
        env = dict(os.environ, HERD_SERVER_TEST_STEP_MS="5")
        args += ["--grace", 1]
    srv = common.Server(a.herd, model, *args, env=env)
    stats = Stats()
    end = time.time() + a.seconds
    rss = []

    def client(i):
        rng = random.Random(i)
        while time.time() < end and not (stats.stopping and stats.refused):
            one_request(srv, rng, stats)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(a.clients)]
    t0 = time.time()
    for t in threads:
        t.start()
    while time.time() < end:
        time.sleep(1)
        if srv.proc.poll() is not None:
            break
        if a.sigterm_at and time.time() - t0 >= a.sigterm_at:
            stats.stopping = True
            srv.proc.terminate()
            break
        rss.append((time.time() - t0, srv.rss_kib()))
    for t in threads:
        t.join()
    elapsed = time.time() - t0
    fails = list(stats.failures)
    if stats.stopping:
        try:
            code = srv.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            code = "none (still running)"
        if code != 0:
            fails.append(f"exit code {code} after SIGTERM under load")
        print(f"SIGTERM at {a.sigterm_at:.0f} s: {stats.shut} streams ended by the shutdown "
              f"(error event + [DONE]), {stats.refused} requests refused afterwards")
    elif srv.proc.poll() is not None:
        fails.append(f"server died with code {srv.proc.returncode}")
    else:
        if not srv.wait_idle(5.0):
            fails.append(f"slots leaked: {srv.health()}")
        _, _, metrics = srv.get("/metrics")
        if b"herd_active_slots 0\n" not in metrics:
            fails.append("metrics report active slots after the run")
        warm = [k for t, k in rss if t >= min(10.0, a.seconds / 3)]
        if warm:
            growth = (max(warm) - warm[0]) / 1024.0
            print(f"rss after warm-up: {warm[0] / 1024:.1f} MiB, max {max(warm) / 1024:.1f} "
                  f"MiB (growth {growth:.1f} MiB)")
            if growth > a.rss_slack:
                fails.append(f"memory grew {growth:.1f} MiB after warm-up")
        code = srv.stop()
        if code != 0:
            fails.append(f"exit code {code} after SIGTERM")
    srv.stop()
    print(f"{a.clients} clients, {elapsed:.0f} s: {stats.ok} completed, {stats.hung_up} hung up "
          f"mid-stream, {stats.tokens} tokens ({stats.tokens / elapsed:.0f} tokens/s)")
    if stats.ok < a.clients:
        fails.append(f"only {stats.ok} requests completed")
    for f in fails[:20]:
        print("FAIL:", f)
    if fails:
        print("server log:\n" + "".join(srv.log[-20:]))
    print(f"{1 if not fails else 0} passed, {1 if fails else 0} failed")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
