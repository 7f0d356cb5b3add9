#!/usr/bin/env python3
"""test_embed.py - POST /v1/embeddings against an independent numpy reference (issue 16).

The reference is scripts/reference_llama.py (a float32 numpy transcription of Meta's model,
no herd code) with its output projection replaced by the identity, so its "logits" are the
final hidden states after the final RMSNorm; pooled (mean of every token's row, or the
last token's) and L2-normalised here. Checked:
  - token inputs of 1 to 200 tokens, mean and last pooling (request field and --pooling),
    every vector within 1e-4 (relative, L2) of the reference, unit length;
  - string inputs equal the embedding of their /tokenize ids (BOS first) and the reference;
  - the official openai client: embeddings.create with a string, a list of strings, a token
    array, a list of token arrays, encoding_format float and base64 (the client's own
    decoding) giving the same vectors; order and index of 11 inputs over 3 slots; usage;
  - errors: empty string / array / token array, an input past the context (never
    truncated), dimensions other than the model's, a bad encoding_format, pooling, token id
    or shape, an unknown model (404), GET (405);
  - embeddings share the scheduler: a generation stream and embedding requests at once both
    complete, and the slots are free afterwards.
--speed prints inputs/s and tokens/s for a batch of inputs.

Usage: test_embed.py --herd build/herd --work DIR [--model DIR] [--speed]
"""
import argparse
import base64
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

check = common.check
# an f32 KV cache: the reference keeps keys and values in float32 (an f16 cache moves the
# vectors by ~3e-4, the rounding of the values it holds)
KV = ("--kv-type", "f32")


def reference(model_dir):
    """A function ids -> final normed hidden states [T, dim] (numpy, float32)."""
    import numpy as np
    sys.path.insert(0, os.path.join(common.ROOT, "scripts"))
    import reference_llama as ref
    m = ref.Model(model_dir)
    m.w["output"] = np.eye(m.p.dim, dtype=np.float32)

    def hidden(ids):
        cache = ref.Cache(m, len(ids))
        return ref.forward(m, ids, 0, cache)
    return hidden


def pooled(hidden, ids, pooling="mean"):
    import numpy as np
    h = hidden(ids).astype(np.float64)
    v = h.mean(axis=0) if pooling == "mean" else h[-1]
    return v / np.linalg.norm(v)


WORST = [0.0]


def rel_err(a, b):
    import numpy as np
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    e = float(np.linalg.norm(a - b) / np.linalg.norm(b))
    WORST[0] = max(WORST[0], e)
    return e


def embed(srv, body, timeout=60):
    s, _, b = srv.request("POST", "/v1/embeddings", body, timeout=timeout)
    return s, json.loads(b) if b else None


def vectors(resp):
    return [d["embedding"] for d in sorted(resp["data"], key=lambda d: d["index"])]


def check_reference(srv, hidden, vocab, dim):
    import numpy as np
    rng = np.random.default_rng(16)
    inputs = [rng.integers(0, vocab, n).tolist() for n in (1, 2, 5, 37, 200)]
    for pooling in ("mean", "last"):
        s, r = embed(srv, {"input": inputs, "pooling": pooling})
        check(s == 200, f"token inputs ({pooling}): status {s} {r}")
        if s != 200:
            continue
        check(r["object"] == "list" and len(r["data"]) == len(inputs), "list of 5 embeddings")
        check(r["usage"] == {"prompt_tokens": 245, "total_tokens": 245},
              f"usage counts every token: {r['usage']}")
        for ids, v in zip(inputs, vectors(r)):
            want = pooled(hidden, ids, pooling)
            e = rel_err(v, want)
            check(len(v) == dim, f"{len(v)} dimensions")
            check(e <= 1e-4, f"{pooling} pooling of {len(ids)} tokens: relative error {e:.2e}")
            check(abs(np.linalg.norm(v) - 1) < 1e-5, "unit length")
    # a string: BOS + its ids, as /tokenize with add_special gives them
    text = "Embeddings from herd: the final hidden state, pooled."
    s, _, b = srv.request("POST", "/tokenize", {"content": text, "add_special": True})
    ids = json.loads(b)["tokens"]
    s1, r1 = embed(srv, {"input": text})
    s2, r2 = embed(srv, {"input": ids})
    check(s1 == 200 and s2 == 200, f"string and token input: {s1} {s2}")
    if s1 == 200 and s2 == 200:
        check(r1["usage"]["prompt_tokens"] == len(ids), "a string's tokens include BOS")
        check(vectors(r1)[0] == vectors(r2)[0], "a string embeds as its /tokenize ids")
        e = rel_err(vectors(r1)[0], pooled(hidden, ids))
        check(e <= 1e-4, f"string input vs reference: relative error {e:.2e}")


def check_client(srv, hidden, vocab):
    import numpy as np
    import openai
    client = openai.OpenAI(base_url=srv.base + "/v1", api_key="none")
    texts = [f"text number {i}: " + "word " * i for i in range(11)]
    r_f = client.embeddings.create(model="m", input=texts, encoding_format="float")
    r_b = client.embeddings.create(model="m", input=texts, encoding_format="base64")
    r_d = client.embeddings.create(model="m", input=texts)  # the client asks for base64
    check([d.index for d in r_f.data] == list(range(11)), "11 inputs in order over 3 slots")
    for a, b, c in zip(r_f.data, r_b.data, r_d.data):
        fa = np.asarray(a.embedding, dtype=np.float32)
        fb = b.embedding if isinstance(b.embedding, list) else None
        if fb is None:  # older clients hand back the base64 text when asked explicitly
            fb = np.frombuffer(base64.b64decode(b.embedding), dtype=np.float32)
        check(np.array_equal(fa, np.asarray(fb, dtype=np.float32)),
              f"input {a.index}: base64 equals float")
        check(np.array_equal(fa, np.asarray(c.embedding, dtype=np.float32)),
              f"input {a.index}: the client's default (base64) equals float")
    check(r_f.usage.prompt_tokens == r_f.usage.total_tokens > 11, "usage from the client")
    check(r_f.model == "m" and r_f.object == "list", "model and object")
    one = client.embeddings.create(model="m", input="hello", encoding_format="float")
    check(len(one.data) == 1 and one.data[0].index == 0, "one string")
    toks = [[1, 2, 3], [7, 8, 9, 10]]
    r_t = client.embeddings.create(model="m", input=toks, encoding_format="float")
    for ids, d in zip(toks, r_t.data):
        e = rel_err(d.embedding, pooled(hidden, ids))
        check(e <= 1e-4, f"client token arrays: relative error {e:.2e}")
    r_1 = client.embeddings.create(model="m", input=toks[1], encoding_format="float")
    check(r_1.data[0].embedding == r_t.data[1].embedding, "one token array")
    # raw base64: little-endian float32 bytes
    s, r = embed(srv, {"input": "hello", "encoding_format": "base64"})
    raw = base64.b64decode(r["data"][0]["embedding"])
    check(len(raw) == 4 * len(one.data[0].embedding), "base64 holds dim float32s")
    check(np.frombuffer(raw, dtype="<f4").tolist() ==
          np.asarray(one.data[0].embedding, dtype=np.float32).tolist(), "base64 bytes LE")
    # errors through the client
    try:
        client.embeddings.create(model="m", input="", encoding_format="float")
        check(False, "empty input accepted")
    except openai.BadRequestError as e:
        check("empty" in str(e), f"empty input: {e}")
    try:
        client.embeddings.create(model="other", input="x", encoding_format="float")
        check(False, "unknown model accepted")
    except openai.NotFoundError:
        check(True, "unknown model 404")


def check_errors(srv, vocab, dim, n_ctx):
    cases = [
        ({"input": ""}, "input", "empty"),
        ({"input": []}, "input", "empty array"),
        ({"input": [[]]}, "input", "empty"),
        ({"input": ["a", ""]}, "input", "input 1 is empty"),
        ({"input": [[1, 2], []]}, "input", "input 1 is empty"),
        ({}, "input", "required"),
        ({"input": 5}, "input", "must be"),
        ({"input": ["a", 1]}, "input", "only strings"),
        ({"input": [vocab]}, "input", "token ids"),
        ({"input": [1.5]}, "input", "token ids"),
        ({"input": [1] * (n_ctx + 1)}, "input", "context length"),
        ({"input": ["ok", [1] * (n_ctx + 1)]}, "input", "must hold only strings"),
        ({"input": [[1], [1] * (n_ctx + 1)]}, "input", "input 1 has"),
        ({"input": "word " * (n_ctx * 2)}, "input", "context length"),
        ({"input": "x", "dimensions": dim + 1}, "dimensions", str(dim)),
        ({"input": "x", "encoding_format": "int8"}, "encoding_format", "float"),
        ({"input": "x", "pooling": "max"}, "pooling", "mean"),
        ({"input": "a\u0000b"}, "input", "NUL"),
    ]
    for body, param, words in cases:
        s, r = embed(srv, body)
        err = (r or {}).get("error", {})
        check(s == 400 and err.get("param") == param and words in err.get("message", ""),
              f"{json.dumps(body)[:60]}: {s} {err}")
    s, r = embed(srv, {"input": [1] * n_ctx})
    check(s == 200, f"an input of exactly n_ctx tokens: {s}")
    s, r = embed(srv, {"input": "x", "dimensions": dim})
    check(s == 200, "dimensions equal to the model's")
    s, r = embed(srv, {"input": "x", "model": "nope"})
    check(s == 404 and r["error"]["code"] == "model_not_found", "unknown model 404")
    s, _, _ = srv.request("GET", "/v1/embeddings")
    check(s == 405, "GET is a 405")


def check_shared(srv):
    """A generation stream and embeddings at once: both served by the same steps."""
    out = {}

    def gen():
        s, _, b = srv.request("POST", "/v1/completions",
                              {"prompt": "Once upon a time", "max_tokens": 64,
                               "temperature": 0, "logit_bias": common.BAN})
        out["gen"] = (s, json.loads(b))
    t = threading.Thread(target=gen)
    t.start()
    oks = 0
    for i in range(5):
        s, r = embed(srv, {"input": [f"side by side {i}", "more text " * 20]})
        oks += s == 200
    t.join(60)
    check(oks == 5, f"{oks}/5 embedding requests during generation")
    check(out.get("gen", (0,))[0] == 200, "the generation completed")
    check(srv.wait_idle(), "slots idle afterwards")


def speed(srv, vocab, sizes):
    import numpy as np
    rng = np.random.default_rng(1)
    for n_in, length in sizes:
        inputs = [rng.integers(0, vocab, length).tolist() for _ in range(n_in)]
        embed(srv, {"input": inputs[:4]}, timeout=600)
        t0 = time.time()
        s, r = embed(srv, {"input": inputs}, timeout=600)
        dt = time.time() - t0
        print(f"speed: {n_in} inputs x {length} tokens: {dt * 1000:.0f} ms, "
              f"{n_in / dt:.1f} inputs/s, {n_in * length / dt:.0f} tokens/s (status {s})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--herd", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--model", help="a model folder (default: the tiny test model)")
    ap.add_argument("--speed", action="store_true")
    a = ap.parse_args()
    try:
        import numpy  # noqa: F401
        import openai  # noqa: F401
    except ImportError as e:
        common.skip(f"needs numpy and openai ({e})")
    model = a.model or common.test_model(a.work)[0]
    n_ctx = 256
    if a.speed:  # any model (a GGUF file too): ids below 30000 exist in every Llama 3 vocab
        srv = common.Server(a.herd, model, "--parallel", "4", "--ctx", "512", "-t", "2")
        vocab = 384 if not a.model else 30000
        try:
            speed(srv, vocab, ((16, 16), (4, 128)) if a.model else ((64, 16), (16, 128)))
        finally:
            srv.stop()
        return 0
    with open(os.path.join(model, "config.json")) as f:
        cfg = json.load(f)
    vocab, dim = cfg["vocab_size"], cfg["hidden_size"]
    common.BAN = common.ban_eos(model)
    hidden = reference(model)
    srv = common.Server(a.herd, model, "--parallel", "3", "--ctx", str(n_ctx), *KV)
    try:
        check_reference(srv, hidden, vocab, dim)
        check_client(srv, hidden, vocab)
        check_errors(srv, vocab, dim, n_ctx)
        check_shared(srv)
    finally:
        check(srv.stop() == 0, "clean exit")
    # --pooling last: the server's default for requests that do not say
    srv = common.Server(a.herd, model, "--parallel", "1", "--ctx", str(n_ctx), *KV,
                        "--pooling", "last")
    try:
        ids = [3, 1, 4, 1, 5, 9, 2, 6]
        s, r = embed(srv, {"input": ids})
        e = rel_err(vectors(r)[0], pooled(hidden, ids, "last")) if s == 200 else 1
        check(e <= 1e-4, f"--pooling last: relative error {e:.2e}")
        s, r = embed(srv, {"input": ids, "pooling": "mean"})
        e = rel_err(vectors(r)[0], pooled(hidden, ids, "mean")) if s == 200 else 1
        check(e <= 1e-4, f"request pooling mean over --pooling last: {e:.2e}")
    finally:
        check(srv.stop() == 0, "clean exit")
    print(f"largest relative error against the reference: {WORST[0]:.2e}")
    return common.summary()


if __name__ == "__main__":
    sys.exit(main())
