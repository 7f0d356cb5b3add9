#!/usr/bin/env python3
"""test_robust.py - `herd serve` under abuse and shutdown, and its operations features.

Each check would have caught a defect seen with real clients (issue 16):
  - a chunked (or undeclared-length) body over --max-body is answered 413, read whole, not
    a broken pipe;
  - a flood of connections that send half a header: /health still answers, a request over
    the limits gets 503 + Retry-After (not a hang), and service resumes once they leave;
  - NUL and other control characters in message content are kept as text (the prompt is
    not cut) or, where cJSON's text would be used (a completion prompt), refused with 400;
  - strict JSON: trailing bytes are a 400; repeated keys keep the last value, as Python's
    json.loads (and so the chat template) sees them;
  - an unknown model name is a 404 (the served alias and no model are fine);
  - SIGTERM: running requests get --grace to finish; streams still running after it end
    with an error event and then [DONE] (a complete chunked body); exit code 0;
  - CORS (--cors-origins), X-Request-Id echoed or made, the access log in text and JSON
    lines, no libmicrohttpd chatter at the default log level, every flag in --help;
  - /tokenize and /detokenize round-trip as llama-server's do.
No check depends on timing: waits are polls with generous bounds that only stop a hang.

Usage: test_robust.py --herd build/herd --work DIR
"""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

check = common.check
BAN = {}
HELLO = [{"role": "user", "content": "Hello!"}]


def post(srv, path, body, headers=None, timeout=60):
    return srv.request("POST", path, body, headers=headers, timeout=timeout)


def chat(srv, **kw):
    body = {"messages": HELLO, "max_tokens": 4, "temperature": 0}
    body.update(kw)
    return post(srv, "/v1/chat/completions", body)


# ---------------------------------------------------------------- bodies

def raw_exchange(srv, head, chunks):
    """Sends head then each chunk, then reads the whole answer (status, body)."""
    s = socket.create_connection((srv.host, srv.port), timeout=60)
    try:
        s.sendall(head)
        for c in chunks:
            s.sendall(c)
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
            if b"\r\n\r\n" in data:
                hdr, rest = data.split(b"\r\n\r\n", 1)
                m = re.search(rb"Content-Length: (\d+)", hdr, re.I)
                if m and len(rest) >= int(m.group(1)):
                    break
        status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
        return status, data
    finally:
        s.close()


def test_body_limits(srv):
    limit = 4096
    payload = b'{"messages":[{"role":"user","content":"' + b"x" * (limit * 3) + b'"}]}'
    chunks = [b"%x\r\n%s\r\n" % (len(payload[i:i + 1000]), payload[i:i + 1000])
              for i in range(0, len(payload), 1000)] + [b"0\r\n\r\n"]
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
            b"application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    try:
        status, data = raw_exchange(srv, head, chunks)
    except OSError as e:
        status, data = 0, repr(e).encode()
    check(status == 413 and b"request_too_large" in data,
          f"chunked body over --max-body -> 413, read whole: {status} {data[:120]!r}")
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
            b"application/json\r\nContent-Length: %d\r\n\r\n" % len(payload))
    try:
        status, data = raw_exchange(srv, head, [payload])
    except OSError as e:
        status, data = 0, repr(e).encode()
    check(status == 413, f"declared body over --max-body -> 413: {status} {data[:80]!r}")
    s, _, b = chat(srv)
    check(s == 200, f"a small request still works after them: {s} {b[:100]!r}")


# ---------------------------------------------------------------- connection flood

def test_flood(herd, model):
    # 40 connections in all, 30 per client; the flood (all from 127.0.0.1) opens 150 that
    # send half a header: 30 are within the limits (closed after --timeout), the rest are
    # over them, and those past MHD's reserve wait for the short over-limit timeout.
    srv = common.Server(herd, model, "--parallel", 2, "--ctx", 512, "--max-conns", 40,
                        "--max-conns-per-client", 30, "--timeout", 3)
    flood = []
    try:
        for _ in range(150):
            try:
                s = socket.create_connection((srv.host, srv.port), timeout=30)
                s.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Half: ")
                flood.append(s)
            except OSError:
                break
        check(len(flood) >= 100, f"flood connections opened: {len(flood)}")
        try:
            h = srv.health()
            check(h["status"] == "ok", f"/health answers during the flood: {h}")
        except Exception as e:  # noqa: BLE001 - any failure is the finding
            check(False, f"/health during the flood: {e!r}")
        s, hdr, b = chat(srv)
        check(s == 503 and hdr.get("Retry-After") == "1",
              f"a request over the connection limits -> 503 + Retry-After: {s} {b[:100]!r}")
    finally:
        for s in flood:
            s.close()
    try:
        ok = False
        for _ in range(200):  # the server sees the closes; poll, no timing assumed
            s, _, b = chat(srv)
            if s == 200:
                ok = True
                break
            time.sleep(0.05)
        check(ok, f"service resumes after the flood: {s} {b[:100]!r}")
        check(srv.stop() == 0, "clean exit after the flood")
    finally:
        srv.stop()


# ---------------------------------------------------------------- JSON and text

def usage(resp):
    s, _, b = resp
    return json.loads(b)["usage"] if s == 200 else {"error": b[:200]}


def test_text_and_json(srv, real):
    words = " ".join(["river"] * 150)
    with_nul = usage(chat(srv, messages=[{"role": "user", "content": "A\u0000" + words}],
                          max_tokens=1))
    without = usage(chat(srv, messages=[{"role": "user", "content": "A" + words}],
                         max_tokens=1))
    check("prompt_tokens" in with_nul and "prompt_tokens" in without and
          with_nul["prompt_tokens"] >= without["prompt_tokens"],
          f"a NUL in content keeps the text after it: {with_nul} vs {without}")
    ctl = usage(chat(srv, messages=[{"role": "user", "content": "A\u0001\u001f" + words}],
                     max_tokens=1))
    check("prompt_tokens" in ctl and ctl["prompt_tokens"] >= without["prompt_tokens"],
          f"control characters kept: {ctl}")
    s, _, b = post(srv, "/v1/completions", {"prompt": "A\u0000" + words, "max_tokens": 1})
    check(s == 400 and json.loads(b)["error"]["param"] == "prompt",
          f"NUL in a completion prompt -> 400: {s} {b[:120]!r}")
    body = json.dumps({"messages": HELLO, "max_tokens": 2}).encode()
    for tail in (b"x", b"}", b" {}", b"\x00"):
        s, _, b = post(srv, "/v1/chat/completions", body + tail)
        check(s == 400, f"trailing {tail!r} after the JSON -> 400: {s}")
    s, _, _ = post(srv, "/v1/chat/completions", body + b" \r\n\t")
    check(s == 200, f"trailing blanks are fine: {s}")
    dup = (b'{"messages":[{"role":"user","content":"Hi"}],"temperature":0,'
           b'"logit_bias":' + json.dumps(BAN).encode() + b',"max_tokens":9,"max_tokens":3}')
    u = usage(post(srv, "/v1/chat/completions", dup))
    check(u.get("completion_tokens") == 3, f"repeated key: the last value wins: {u}")
    long_last = usage(post(srv, "/v1/chat/completions",
                           b'{"messages":[{"role":"user","content":"Hi","content":"' +
                           words.encode() + b'"}],"max_tokens":1}'))
    check(long_last.get("prompt_tokens", 0) > 100,
          f"repeated content key: the template sees the last one: {long_last}")
    s, _, b = post(srv, "/v1/chat/completions",
                   dup.replace(b'"max_tokens":3', b'"max_tokens":3,"stream":false,"stream":1'))
    check(s == 400, f"the last value is the one validated (stream: 1): {s}")


def test_model_names(srv):
    check(chat(srv, model="m")[0] == 200, "the served alias is accepted")
    s, _, b = chat(srv, model="gpt-4o")
    e = json.loads(b).get("error", {}) if s != 200 else {}
    check(s == 404 and e.get("code") == "model_not_found" and e.get("param") == "model",
          f"an unknown model -> 404 model_not_found: {s} {b[:120]!r}")
    body = {"messages": HELLO, "max_tokens": 2}
    check(post(srv, "/v1/chat/completions", body)[0] == 200, "no model is fine")
    s, _, _ = post(srv, "/v1/completions", {"model": "nope", "prompt": "x", "max_tokens": 1})
    check(s == 404, f"completions: unknown model -> 404: {s}")


# ---------------------------------------------------------------- tokenize

def test_tokenize(srv):
    s, _, b = post(srv, "/tokenize", {"content": "Hello world, again"})
    ids = json.loads(b).get("tokens") if s == 200 else None
    check(isinstance(ids, list) and ids and all(isinstance(i, int) for i in ids),
          f"/tokenize: {s} {b[:120]!r}")
    s, _, b = post(srv, "/detokenize", {"tokens": ids or []})
    check(s == 200 and json.loads(b).get("content") == "Hello world, again",
          f"/detokenize round trip: {s} {b[:120]!r}")
    plain = json.loads(post(srv, "/tokenize", {"content": "Hi"})[2])["tokens"]
    s, _, b = post(srv, "/tokenize", {"content": "Hi", "add_special": True,
                                      "with_pieces": True})
    toks = json.loads(b)["tokens"] if s == 200 else []
    check(len(toks) == len(plain) + 1 and all("id" in t and "piece" in t for t in toks) and
          [t["id"] for t in toks[1:]] == plain,
          f"/tokenize with_pieces and add_special (BOS first): {toks} vs {plain}")
    check(post(srv, "/detokenize", {"tokens": [-1]})[0] == 400, "/detokenize refuses bad ids")
    check(post(srv, "/tokenize", {"text": "x"})[0] == 400, "/tokenize needs content")
    check(srv.request("GET", "/tokenize")[0] == 405, "GET /tokenize -> 405")


# ---------------------------------------------------------------- operations

def test_request_id_and_log(srv, json_log):
    s, h, _ = chat(srv, max_tokens=2)
    rid = h.get("X-Request-Id", "")
    check(s == 200 and len(rid) > 4, f"X-Request-Id made: {h}")
    s, h, _ = post(srv, "/v1/chat/completions", {"messages": HELLO, "max_tokens": 2},
                   headers={"X-Request-Id": "trace-abc.123"})
    check(h.get("X-Request-Id") == "trace-abc.123", f"X-Request-Id echoed: {h}")
    s, h, _ = srv.get("/health", auth=False)
    check(h.get("X-Request-Id"), "every response carries X-Request-Id")
    # the log line is written when MHD completes the request, just after the answer
    line = None
    for _ in range(100):
        found = [x for x in srv.log if "trace-abc.123" in x]
        if found:
            line = found[0]
            break
        time.sleep(0.05)
    if json_log:
        try:
            o = json.loads(line or "")
        except ValueError:
            o = {}
        check(o.get("method") == "POST" and o.get("path") == "/v1/chat/completions" and
              o.get("status") == 200 and o.get("completion_tokens") == 2 and
              o.get("prompt_tokens", 0) > 0 and "latency_ms" in o,
              f"JSON access log line: {line!r}")
    else:
        check(bool(line) and '"POST /v1/chat/completions" 200' in line and
              "completion=2" in line, f"text access log line: {line!r}")


def test_cors(herd, model):
    srv = common.Server(herd, model, "--parallel", 1, "--ctx", 512,
                        "--cors-origins", "http://a.example, http://b.example:3000")
    try:
        s, h, _ = srv.request("OPTIONS", "/v1/chat/completions", headers={
            "Origin": "http://b.example:3000", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        check(s == 204 and h.get("Access-Control-Allow-Origin") == "http://b.example:3000"
              and "POST" in h.get("Access-Control-Allow-Methods", "") and
              "authorization" in h.get("Access-Control-Allow-Headers", ""),
              f"CORS preflight: {s} {h}")
        s, h, _ = post(srv, "/v1/chat/completions", {"messages": HELLO, "max_tokens": 1},
                       headers={"Origin": "http://a.example"})
        check(s == 200 and h.get("Access-Control-Allow-Origin") == "http://a.example",
              f"CORS header on an allowed origin: {h}")
        s, h, _ = post(srv, "/v1/chat/completions", {"messages": HELLO, "max_tokens": 1},
                       headers={"Origin": "http://evil.example"})
        check(s == 200 and "Access-Control-Allow-Origin" not in h,
              f"no CORS header for another origin: {h}")
        check(srv.stop() == 0, "clean exit (CORS server)")
    finally:
        srv.stop()


def test_quiet_log(srv):
    # a client hanging up mid-request used to print libmicrohttpd's messages
    for _ in range(3):
        s = socket.create_connection((srv.host, srv.port), timeout=10)
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 500"
                  b"\r\n\r\n{\"mess")
        s.close()
    chat(srv, max_tokens=1)
    stray = [x for x in srv.log if x.strip() and not x.startswith("herd:")]
    check(not stray, f"only herd's own lines on stderr: {stray[:3]}")


def test_help(herd):
    r = subprocess.run([herd, "serve", "--help"], capture_output=True, text=True)
    src = os.path.join(common.ROOT, "tools", "cmd_serve.c")
    flags = set(re.findall(r'strcmp\(a, "(--[a-z-]+)"\)', open(src).read()))
    text = r.stdout
    missing = []
    for f in sorted(flags):
        # described: the flag starts a line of the option list with text after it
        if not re.search(r"^\s+(-\w+, )?" + re.escape(f) + r"\b[^\n]*\S+\s{2,}\S", text,
                         re.M) and not re.search(r"^\s+(-\w+, )?" + re.escape(f) +
                                                 r" [A-Z]+\s+\S", text, re.M):
            missing.append(f)
    check(r.returncode == 0 and len(flags) >= 15 and not missing,
          f"serve --help describes every flag: {len(flags)} flags, missing {missing}")


# ---------------------------------------------------------------- shutdown

def stream_until_end(srv, body, out, started):
    """Reads a stream to its end: out gets (events, done, errors, finish)."""
    events, done, errors, finish = 0, False, 0, None
    try:
        conn = http.client.HTTPConnection(srv.host, srv.port, timeout=120)
        conn.request("POST", "/v1/chat/completions", json.dumps(body),
                     {"Content-Type": "application/json"})
        resp = conn.getresponse()
        for data in common.sse_events(resp):
            events += 1
            if events == 2:
                started.release()
            if data == b"[DONE]":
                done = True
                break
            chunk = json.loads(data)
            if "error" in chunk:
                errors += 1
            for ch in chunk.get("choices", []):
                finish = ch.get("finish_reason") or finish
        out.append((events, done, errors, finish, None))
    except Exception as e:  # noqa: BLE001
        out.append((events, done, errors, finish, repr(e)))
        started.release()


def test_slow_answers(herd, model):
    # --timeout 1 with 40 ms steps: a plain request takes ~2 s to answer and a queued stream
    # waits ~2 s for its first token; both are being answered, so neither may be cut by the
    # idle timeout (it once was: MHD counts a blocked handler as idle)
    srv = common.Server(herd, model, "--parallel", 1, "--ctx", 1024, "--timeout", 1,
                        env=dict(os.environ, HERD_SERVER_TEST_STEP_MS="40"))
    out, started = [], threading.Semaphore(0)
    try:
        body = {"messages": HELLO, "max_tokens": 50, "logit_bias": BAN, "temperature": 0}
        t = threading.Thread(target=lambda: out.append(chat(srv, **{k: v for k, v in
                                                                     body.items()
                                                                     if k != "messages"})))
        t.start()
        time.sleep(0.2)  # only to queue the stream behind it; nothing is timed
        stream_until_end(srv, dict(body, stream=True), out, started)
        t.join(timeout=120)
        plain = [o for o in out if len(o) == 3]
        streamed = [o for o in out if len(o) == 5]
        check(plain and plain[0][0] == 200, f"a slow plain answer is not cut: {plain}")
        check(streamed and streamed[0][1] and streamed[0][2] == 0 and
              streamed[0][3] == "length", f"a queued stream is not cut: {streamed}")
        check(srv.stop() == 0, "clean exit (slow answers)")
    finally:
        srv.stop()


def test_sigterm(herd, model):
    # 20 ms per step: a 2000-token stream cannot end within the 5 s grace; a 4-token one,
    # two tokens from its end when the signal comes, ends long before it (even under ASan)
    srv = common.Server(herd, model, "--parallel", 3, "--ctx", 4096, "--grace", 5,
                        env=dict(os.environ, HERD_SERVER_TEST_STEP_MS="20"))
    out_long, out_short = [], []
    started = threading.Semaphore(0)
    try:
        long_body = {"messages": HELLO, "max_tokens": 2000, "stream": True,
                     "logit_bias": BAN, "temperature": 0}
        short_body = dict(long_body, max_tokens=4)
        ts = [threading.Thread(target=stream_until_end, args=(srv, long_body, out_long,
                                                               started)) for _ in range(2)]
        ts.append(threading.Thread(target=stream_until_end, args=(srv, short_body, out_short,
                                                                   started)))
        for t in ts:
            t.start()
        for _ in ts:
            started.acquire(timeout=60)
        srv.proc.send_signal(signal.SIGTERM)
        for t in ts:
            t.join(timeout=120)
        code = srv.proc.wait(timeout=60)
        check(code == 0, f"exit code 0 after SIGTERM: {code}")
        check(len(out_long) == 2 and all(d and e == 1 and x is None
                                         for _, d, e, _, x in out_long),
              f"streams past the grace end with one error event and [DONE]: {out_long}")
        check(len(out_short) == 1 and out_short[0][1] and out_short[0][2] == 0 and
              out_short[0][3] == "length",
              f"a stream that ends within the grace completes normally: {out_short}")
        logs = "".join(srv.log)
        check("stopping" in logs, "the server said it was stopping")
    finally:
        srv.stop()


def main():
    a = common.herd_args()
    model, real = common.test_model(a.work)
    BAN.update(common.ban_eos(model))
    test_help(a.herd)
    srv = common.Server(a.herd, model, "--parallel", 2, "--ctx", 1024, "--max-body", 4096,
                        "--access-log", "json")
    try:
        test_body_limits(srv)
        test_model_names(srv)
        test_tokenize(srv)
        test_request_id_and_log(srv, True)
        check(srv.stop() == 0, "clean exit")
    finally:
        srv.stop()
        if common.failed():
            print("server log:\n" + "".join(srv.log[-20:]))
    srv = common.Server(a.herd, model, "--parallel", 2, "--ctx", 1024)
    try:
        test_text_and_json(srv, real)
        test_request_id_and_log(srv, False)
        test_quiet_log(srv)
        check(srv.stop() == 0, "clean exit")
    finally:
        srv.stop()
    test_cors(a.herd, model)
    test_flood(a.herd, model)
    test_slow_answers(a.herd, model)
    test_sigterm(a.herd, model)
    return common.summary()


if __name__ == "__main__":
    sys.exit(main())
