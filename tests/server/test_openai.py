#!/usr/bin/env python3
"""test_openai.py - `herd serve` end to end on a tiny random model.

Drives the server with the official `openai` Python client (unmodified: models, chat and
completions, streaming, errors), with curl (health, auth, metrics, 404/405/413), and with
raw sockets (malformed HTTP and JSON; the server must answer or close, never die). Checks
usage counts, greedy determinism, stream == non-stream text, stop strings, logit_bias,
logprobs, the prefix cache, constrained decoding (response_format json_object and forced
tool calls must parse whatever the random weights say), disconnects freeing slots, and 503 +
Retry-After when the queue is full.

Usage: test_openai.py --herd build/herd --work DIR
"""
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

try:
    import openai
except ImportError:
    common.skip("the openai Python package is not installed (pip install openai)")

KEY = "test-key-123"
check = common.check


def client(srv, key=KEY):
    return openai.OpenAI(base_url=srv.base + "/v1", api_key=key, max_retries=0, timeout=60)


HELLO = [{"role": "user", "content": "Hello! Who are you?"}]
BAN = {}  # logit_bias that bans the model's end tokens, so a generation runs to max_tokens


# ---------------------------------------------------------------- openai client

def test_models(srv, c):
    models = c.models.list()
    ids = [m.id for m in models.data]
    check(len(ids) == 1, f"one model listed: {ids}")
    check(c.models.retrieve(ids[0]).id == ids[0], "models.retrieve")
    try:
        c.models.retrieve("no-such-model")
        check(False, "unknown model -> 404")
    except openai.NotFoundError:
        check(True, "")


def test_chat(srv, c, real):
    r = c.chat.completions.create(model="m", messages=HELLO, max_tokens=8, temperature=0)
    ch = r.choices[0]
    check(r.object == "chat.completion", "object")
    check(ch.message.role == "assistant", "role")
    check(isinstance(ch.message.content, str), "content is text")
    check(r.usage.prompt_tokens > 0, "prompt tokens counted")
    check(r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens, "total")
    if ch.finish_reason == "length":
        check(r.usage.completion_tokens == 8, f"length -> 8 tokens ({r.usage})")
    else:
        check(ch.finish_reason == "stop" and r.usage.completion_tokens <= 8, "stop early")
    r2 = c.chat.completions.create(model="m", messages=HELLO, max_tokens=8, temperature=0)
    check(r2.choices[0].message.content == ch.message.content, "greedy is deterministic")
    check(r2.usage.prompt_tokens_details.cached_tokens == r.usage.prompt_tokens - 1,
          f"prefix cache reuses the prompt ({r2.usage})")
    if real:
        check_prompt_count(r.usage.prompt_tokens)
    # seeded sampling is reproducible
    a = c.chat.completions.create(model="m", messages=HELLO, max_tokens=12, temperature=1.0,
                                  seed=42)
    b = c.chat.completions.create(model="m", messages=HELLO, max_tokens=12, temperature=1.0,
                                  seed=42)
    check(a.choices[0].message.content == b.choices[0].message.content, "same seed, same text")
    return ch.message.content


def check_prompt_count(n):
    """Independent count: the official template (jinja2) + the HF tokenizer."""
    try:
        import jinja2
        import tokenizers
    except ImportError:
        return
    d = common.shared_data()
    tmpl = os.path.join(d, "templates", "llama-3.1-instruct.jinja")
    tok = tokenizers.Tokenizer.from_file(os.path.join(d, "llama3", "tokenizer.json"))
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = lambda m: (_ for _ in ()).throw(Exception(m))
    text = env.from_string(open(tmpl).read()).render(
        messages=HELLO, bos_token="<|begin_of_text|>", add_generation_prompt=True)
    want = len(tok.encode(text, add_special_tokens=False).ids)
    check(n == want, f"prompt_tokens {n} == official template + tokenizer {want}")


def test_stream(srv, c, greedy_text):
    s = c.chat.completions.create(model="m", messages=HELLO, max_tokens=8, temperature=0,
                                  stream=True, stream_options={"include_usage": True})
    text, finish, usage, n_chunks = "", None, None, 0
    for chunk in s:
        n_chunks += 1
        if chunk.usage:
            usage = chunk.usage
        for ch in chunk.choices:
            text += ch.delta.content or ""
            finish = ch.finish_reason or finish
    check(text == greedy_text, f"stream text == non-stream text ({text!r} vs {greedy_text!r})")
    check(finish in ("length", "stop"), f"stream finish_reason {finish}")
    check(usage is not None and usage.completion_tokens >= 1, "include_usage chunk")
    check(n_chunks >= 3, "several chunks")


def test_completions(srv, c):
    r = c.completions.create(model="m", prompt="Once upon a time", max_tokens=6,
                             temperature=0, logprobs=2)
    ch = r.choices[0]
    check(r.object == "text_completion", "completion object")
    lp = ch.logprobs
    check(lp is not None and len(lp.tokens) == r.usage.completion_tokens or
          ch.finish_reason == "stop", f"one logprob per token ({r.usage})")
    check(all(v <= 0 for v in lp.token_logprobs), "logprobs <= 0")
    check(all(len(t) <= 2 for t in lp.top_logprobs), "top_logprobs size")
    ids = c.completions.create(model="m", prompt=[1, 2, 3, 4], max_tokens=3, temperature=0)
    check(ids.usage.prompt_tokens == 4, "token-id prompt is used as is")
    e = c.completions.create(model="m", prompt="Echo me", max_tokens=2, echo=True,
                             temperature=0)
    check(e.choices[0].text.startswith("Echo me"), f"echo: {e.choices[0].text!r}")
    s = c.completions.create(model="m", prompt="Once upon a time", max_tokens=6,
                             temperature=0, stream=True)
    text = "".join(ch.choices[0].text for ch in s if ch.choices)
    check(text == ch.text, "completion stream == non-stream")


def test_stop_and_bias(srv, c):
    base = c.completions.create(model="m", prompt="The quick brown fox", max_tokens=12,
                                temperature=0)
    text = base.choices[0].text
    if len(text) >= 6:
        stop = text[3:6]
        r = c.completions.create(model="m", prompt="The quick brown fox", max_tokens=12,
                                 temperature=0, stop=[stop])
        check(r.choices[0].text == text[:text.index(stop)], f"stop at {stop!r}: "
              f"{r.choices[0].text!r} from {text!r}")
        check(r.choices[0].finish_reason == "stop", "stop -> finish stop")
    # +100 on one ordinary token: every generated token is that one
    r = c.chat.completions.create(model="m", messages=HELLO, max_tokens=5, temperature=1,
                                  logit_bias={"65": 100}, logprobs=True, top_logprobs=3)
    toks = [t.token for t in r.choices[0].logprobs.content]
    check(len(toks) == 5 and len(set(toks)) == 1, f"logit_bias forces a token: {toks}")
    check(all(len(t.top_logprobs) == 3 for t in r.choices[0].logprobs.content), "top_logprobs")
    check(r.usage.completion_tokens == len(toks), "logprob per generated token")


def test_utf8_stream(srv, c, model):
    """A forced lone lead byte (0xE2, byte-level token 'â') never yields broken UTF-8: each
    chunk is valid JSON text and the cut sequences come out as U+FFFD."""
    try:
        import tokenizers
    except ImportError:
        return
    tok = tokenizers.Tokenizer.from_file(os.path.join(model, "tokenizer.json"))
    lead = tok.token_to_id("\u00e2")
    if lead is None:
        return
    s = c.chat.completions.create(model="m", messages=HELLO, max_tokens=6, temperature=0,
                                  stream=True, logit_bias={str(lead): 100})
    text = "".join(ch.choices[0].delta.content or "" for ch in s if ch.choices)
    check(text and set(text) == {"\ufffd"}, f"lone lead bytes -> U+FFFD only: {text!r}")
    # a real multi-byte character split over byte tokens arrives whole
    e_acute = [tok.token_to_id("\u00c3"), tok.token_to_id("\u00a9")]  # UTF-8 of "é"
    r = c.completions.create(model="m", prompt=e_acute, max_tokens=1, temperature=0,
                             echo=True)
    check(r.choices[0].text.startswith("\u00e9"), f"echo joins bytes: {r.choices[0].text!r}")


def test_tools_accepted(srv, c):
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}}]
    for choice in ("auto", "none", "required", {"type": "function",
                                                "function": {"name": "get_weather"}}):
        r = c.chat.completions.create(model="m", messages=[
            {"role": "user", "content": "Weather in Paris?"}], tools=tools,
            tool_choice=choice, max_tokens=6, temperature=0)
        ch = r.choices[0]
        check(ch.finish_reason in ("stop", "length", "tool_calls"), f"tools {choice}")
        if ch.finish_reason == "tool_calls":
            check(ch.message.tool_calls[0].function.name, "tool call has a name")
    # a conversation with a tool call and its result renders
    r = c.chat.completions.create(model="m", messages=[
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 21}"}],
        tools=tools, max_tokens=4, temperature=0)
    check(r.choices[0].finish_reason in ("stop", "length", "tool_calls"), "tool result turn")
    s = c.chat.completions.create(model="m", messages=[
        {"role": "user", "content": "Weather?"}], tools=tools, max_tokens=4, stream=True)
    finishes = [ch.choices[0].finish_reason for ch in s if ch.choices]
    check(finishes[-1] in ("stop", "length", "tool_calls"), "tools + stream finishes")


TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
    {"type": "function", "function": {
        "name": "get_time", "description": "Local time in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
ASK = [{"role": "user", "content": "Weather in Paris?"}]


def test_json_object(srv, c):
    """response_format json_object: random weights write garbage, but the constrained
    output must still be one JSON object (the budget rule closes it before max_tokens)."""
    fmt = {"type": "json_object"}
    for i, (temp, tokens) in enumerate([(0, 48), (1.0, 48), (1.5, 64), (1.0, 16)]):
        r = c.chat.completions.create(model="m", messages=HELLO, max_tokens=tokens,
                                      temperature=temp, seed=100 + i, response_format=fmt)
        ch = r.choices[0]
        try:
            obj = json.loads(ch.message.content)
        except ValueError:
            obj = None
        check(isinstance(obj, dict), f"json_object T={temp}: a JSON object: "
              f"{ch.message.content!r}")
        check(ch.finish_reason == "stop", f"json_object T={temp}: finish {ch.finish_reason}")
        check(r.usage.completion_tokens <= tokens, "json_object within max_tokens")
    s = c.chat.completions.create(model="m", messages=HELLO, max_tokens=48, temperature=1.0,
                                  seed=7, response_format=fmt, stream=True)
    text = "".join(ch.choices[0].delta.content or "" for ch in s if ch.choices)
    try:
        check(isinstance(json.loads(text), dict), "json_object stream: a JSON object")
    except ValueError:
        check(False, f"json_object stream parses: {text!r}")


def check_call(r, names, what):
    ch = r.choices[0]
    check(ch.finish_reason == "tool_calls", f"{what}: finish {ch.finish_reason}")
    calls = ch.message.tool_calls or []
    check(len(calls) == 1, f"{what}: one tool call: {ch.message}")
    if calls:
        check(calls[0].function.name in names, f"{what}: name {calls[0].function.name}")
        try:
            args = json.loads(calls[0].function.arguments)
        except ValueError:
            args = None
        check(isinstance(args, dict), f"{what}: arguments {calls[0].function.arguments!r}")
        check(calls[0].id and calls[0].type == "function", f"{what}: id and type")


def test_forced_tools(srv, c):
    """tool_choice named / "required": the answer must be a call, whatever the weights."""
    named = {"type": "function", "function": {"name": "get_time"}}
    for i, temp in enumerate((0, 1.0)):
        r = c.chat.completions.create(model="m", messages=ASK, tools=TOOLS, tool_choice=named,
                                      max_tokens=48, temperature=temp, seed=11 + i)
        check_call(r, {"get_time"}, f"named T={temp}")
        r = c.chat.completions.create(model="m", messages=ASK, tools=TOOLS,
                                      tool_choice="required", max_tokens=64, temperature=temp,
                                      seed=21 + i)
        check_call(r, {"get_weather", "get_time"}, f"required T={temp}")
    s = c.chat.completions.create(model="m", messages=ASK, tools=TOOLS, tool_choice=named,
                                  max_tokens=48, temperature=1.0, seed=5, stream=True)
    calls, finish = {}, None  # deltas merged by index, as clients do (issue 16: in pieces)
    for ch in s:
        if ch.choices:
            for d in ch.choices[0].delta.tool_calls or []:
                m = calls.setdefault(d.index, {"name": "", "arguments": ""})
                m["name"] += d.function.name or ""
                m["arguments"] += d.function.arguments or ""
            finish = ch.choices[0].finish_reason or finish
    check(finish == "tool_calls" and len(calls) == 1 and calls[0]["name"] == "get_time",
          f"named + stream: {finish} {calls}")
    # "none": the tools are not even in the prompt, and no call comes back
    auto = c.chat.completions.create(model="m", messages=ASK, tools=TOOLS, max_tokens=1,
                                     temperature=0)
    none = c.chat.completions.create(model="m", messages=ASK, tools=TOOLS, tool_choice="none",
                                     max_tokens=1, temperature=0)
    plain = c.chat.completions.create(model="m", messages=ASK, max_tokens=1, temperature=0)
    check(none.usage.prompt_tokens == plain.usage.prompt_tokens < auto.usage.prompt_tokens,
          f"tool_choice none omits tools: {none.usage.prompt_tokens} "
          f"{plain.usage.prompt_tokens} {auto.usage.prompt_tokens}")
    check(not none.choices[0].message.tool_calls, "tool_choice none: no tool_calls")


def test_errors(srv, c):
    try:
        client(srv, "wrong-key").chat.completions.create(model="m", messages=HELLO)
        check(False, "bad key -> 401")
    except openai.AuthenticationError as e:
        check(e.status_code == 401 and e.body.get("code") == "invalid_api_key", "401 body")
    try:
        c.chat.completions.create(model="m", messages=[])
        check(False, "empty messages -> 400")
    except openai.BadRequestError as e:
        check(e.body.get("param") == "messages", f"param messages: {e.body}")
    try:
        c.chat.completions.create(model="m", messages=HELLO, max_tokens=10**6)
        check(False, "max_tokens past context -> 400")
    except openai.BadRequestError as e:
        check(e.body.get("code") == "context_length_exceeded", f"context code: {e.body}")
    try:
        c.chat.completions.create(model="m", messages=HELLO, temperature=5)
        check(False, "temperature 5 -> 400")
    except openai.BadRequestError as e:
        check(e.body.get("param") == "temperature", "param temperature")
    try:
        c.completions.create(model="m", prompt="x " * 5000, max_tokens=1)
        check(False, "prompt past context -> 400")
    except openai.BadRequestError as e:
        check(e.body.get("code") == "context_length_exceeded", "prompt too long")


# ---------------------------------------------------------------- curl

def curl(srv, *args):
    r = subprocess.run(["curl", "-s", "-o", "-", "-w", "\n%{http_code}", *args],
                       capture_output=True, text=True, timeout=60)
    body, _, code = r.stdout.rpartition("\n")
    return int(code or 0), body


def test_curl(srv, work):
    if not shutil.which("curl"):
        print("note: curl not found; curl cases skipped")
        return
    b = srv.base
    code, body = curl(srv, b + "/health")
    check(code == 200 and json.loads(body)["status"] == "ok", "curl /health without key")
    code, body = curl(srv, b + "/v1/models")
    check(code == 401 and "error" in json.loads(body), "no key -> 401")
    auth = ["-H", f"Authorization: Bearer {KEY}"]
    code, body = curl(srv, *auth, b + "/metrics")
    check(code == 200 and "herd_requests_total{" in body and
          "herd_time_to_first_token_seconds_bucket" in body and
          "herd_active_slots" in body, "metrics")
    code, body = curl(srv, *auth, b + "/v1/nope")
    check(code == 404 and json.loads(body)["error"]["type"] == "invalid_request_error", "404")
    code, body = curl(srv, *auth, b + "/v1/chat/completions")
    check(code == 405 and "error" in json.loads(body), "GET on POST endpoint -> 405")
    big = os.path.join(work, "big.json")
    with open(big, "w") as f:
        f.write('{"messages":[{"role":"user","content":"' + "a" * (300 << 10) + '"}]}')
    code, body = curl(srv, *auth, "-H", "Content-Type: application/json",
                      "--data-binary", "@" + big, b + "/v1/chat/completions")
    check(code == 413 and json.loads(body)["error"]["code"] == "request_too_large", "413")
    code, body = curl(srv, *auth, "-d", "{not json", b + "/v1/chat/completions")
    check(code == 400 and "error" in json.loads(body), "bad JSON -> 400")
    code, body = curl(srv, *auth, "-N", "-d", json.dumps(
        {"messages": HELLO, "max_tokens": 4, "stream": True}), b + "/v1/chat/completions")
    events = [l[6:] for l in body.split("\n") if l.startswith("data: ")]
    check(code == 200 and events and events[-1] == "[DONE]", "curl stream ends with [DONE]")
    check(all(json.loads(e)["object"] == "chat.completion.chunk" for e in events[:-1]),
          "every event is a chunk")


# ---------------------------------------------------------------- raw sockets

MALFORMED = [
    b"garbage\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n{\"a\"",
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999"
    b"\r\n\r\n",
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"zz\r\n",
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n" + b"X-A: " + b"b" * 100000 + b"\r\n\r\n",
    b"\x00\x01\x02\xff" * 100,
]

BAD_BODIES = [
    b"", b"null", b"[]", b"\"str\"", b"1e999", b"{\"messages\":null}",
    b"{\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}],\"max_tokens\":3}",
    b"{\"messages\":[{\"role\":\"user\",\"content\":\"\\ud800\"}],\"max_tokens\":2}",
    b"[" * 100000, b"{\"messages\":" + b"[" * 5000 + b"]" * 5000 + b"}",
    b"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":-5}",
    b"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":1e20}",
    b"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":{}}",
    b"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logit_bias\":{\"-1\":1}}",
    b"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logit_bias\":{\"99999999\":1}}",
    b"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"seed\":1e300}",
    b"{\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}],\"max_tokens\":3}",
    b"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]}",
    b"{\"prompt\":[1,2,3],\"max_tokens\":3}",
    b"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{}]}",
    b"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":\"x\",\"tool_choice\":7}",
]


def raw(srv, data, timeout=10):
    s = socket.create_connection((srv.host, srv.port), timeout=timeout)
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            try:
                b = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not b:
                break
            out += b
        return out
    except OSError:  # the server hung up first (reset, broken pipe, not connected)
        return b""
    finally:
        s.close()


def test_malformed(srv):
    for m in MALFORMED:
        out = raw(srv, m)
        check(out == b"" or out.startswith(b"HTTP/1."), f"answer or close for {m[:40]!r}")
        check(srv.proc.poll() is None, f"alive after {m[:40]!r}")
    for path in ("/v1/chat/completions", "/v1/completions"):
        for body in BAD_BODIES:
            s, h, b = srv.request("POST", path, body)
            ok = s in (200, 400, 413)
            if s != 200:
                try:
                    ok = ok and "message" in json.loads(b)["error"]
                except ValueError:
                    ok = False
            check(ok, f"{path} {body[:50]!r} -> {s} {b[:120]!r}")
            check(srv.proc.poll() is None, "alive")
    check(srv.health()["status"] == "ok", "healthy after malformed input")


# ---------------------------------------------------------------- disconnects, queue

def start_stream(srv, max_tokens=900, path="/v1/chat/completions"):
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=60)
    body = {"messages": HELLO, "max_tokens": max_tokens, "stream": True, "temperature": 0,
            "logit_bias": BAN}
    conn.request("POST", path, json.dumps(body), {"Authorization": f"Bearer {KEY}",
                                                 "Content-Type": "application/json"})
    return conn, conn.getresponse()


def test_disconnect(srv):
    conns = []
    for _ in range(3):
        conn, resp = start_stream(srv)
        check(resp.status == 200, "stream starts")
        resp.read1(100)
        conns.append(conn)
    time.sleep(0.2)
    h = srv.health()
    check(h["slots_processing"] + h["queue"] >= 1, f"slots busy while streaming: {h}")
    for conn in conns:
        conn.sock.shutdown(socket.SHUT_RDWR)
        conn.close()
    check(srv.wait_idle(3.0), f"slots freed after disconnect: {srv.health()}")
    # non-streaming request whose client leaves while it waits
    s = socket.create_connection((srv.host, srv.port))
    body = json.dumps({"messages": HELLO, "max_tokens": 2000,
                       "logit_bias": BAN}).encode()
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
              KEY.encode() + b"\r\nContent-Type: application/json\r\nContent-Length: " +
              str(len(body)).encode() + b"\r\n\r\n" + body)
    time.sleep(0.3)
    s.close()
    check(srv.wait_idle(3.0), f"slot freed after a non-stream client left: {srv.health()}")


def test_queue_full(herd, model):
    # 20 ms per step keeps the one slot busy ~1 s however fast the tiny model runs, so the
    # second request waits in the queue and the third and fourth find it full
    srv = common.Server(herd, model, "--parallel", 1, "--queue", 1, "--ctx", 2048,
                        env=dict(os.environ, HERD_SERVER_TEST_STEP_MS="20"))
    try:
        results = []

        def one():
            s, h, b = srv.request("POST", "/v1/chat/completions", {
                "messages": HELLO, "max_tokens": 50, "temperature": 0,
                "logit_bias": BAN})
            results.append((s, h.get("Retry-After")))

        ts = [threading.Thread(target=one) for _ in range(4)]
        for t in ts:
            t.start()
            time.sleep(0.05)
        for t in ts:
            t.join()
        codes = sorted(s for s, _ in results)
        check(codes == [200, 200, 503, 503], f"queue limit -> 503: {codes}")
        check(all(ra == "1" for s, ra in results if s == 503), "503 has Retry-After")
        check(srv.stop() == 0, "clean exit on SIGTERM")
    finally:
        srv.stop()


def main():
    a = common.herd_args()
    model, real = common.test_model(a.work)
    BAN.update(common.ban_eos(model))
    srv = common.Server(a.herd, model, "--parallel", 4, "--ctx", 1024, "--max-body", 262144,
                        api_key=KEY)
    try:
        c = client(srv)
        test_models(srv, c)
        text = test_chat(srv, c, real)
        test_stream(srv, c, text)
        test_completions(srv, c)
        test_stop_and_bias(srv, c)
        if real:
            test_utf8_stream(srv, c, model)
        test_tools_accepted(srv, c)
        test_json_object(srv, c)
        test_forced_tools(srv, c)
        test_errors(srv, c)
        test_curl(srv, a.work)
        test_malformed(srv)
        check(srv.proc.poll() is None, "server alive at the end")
        check(srv.stop() == 0, "clean exit on SIGTERM")
    finally:
        srv.stop()
        if common.failed():
            print("server log:\n" + "".join(srv.log[-30:]))
    # 5 ms per step: the streams that clients abandon are still running when they leave
    srv = common.Server(a.herd, model, "--parallel", 4, "--ctx", 1024, api_key=KEY,
                        env=dict(os.environ, HERD_SERVER_TEST_STEP_MS="5"))
    try:
        test_disconnect(srv)
        check(srv.stop() == 0, "clean exit on SIGTERM after disconnects")
    finally:
        srv.stop()
    test_queue_full(a.herd, model)
    return common.summary()


if __name__ == "__main__":
    sys.exit(main())
