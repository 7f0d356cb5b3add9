#!/usr/bin/env python3
"""Makes the small seed corpora that tests/fuzz targets replay in CI (and that a libFuzzer
run starts from), one folder per target under tests/fuzz/corpus: valid inputs written by
independent tools where there are some (the gguf Python package, json), truncations and
corruptions of them, and hand-made edge cases. Deterministic; inputs that fuzzing found
(crashes fixed since, or new coverage worth keeping) are added by hand beside these and
are not touched by this script.

Usage: python3 tests/fuzz/make_corpus.py   (from the repository root)
"""
import glob
import json
import os
import shutil
import struct
import sys
import tempfile

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf import quants

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
gdir, sdir = os.path.join(root, "gguf"), os.path.join(root, "safetensors")
os.makedirs(gdir, exist_ok=True)
os.makedirs(sdir, exist_ok=True)
rng = np.random.default_rng(7)

tmp = os.path.join(gdir, "valid.gguf")
w = gguf.GGUFWriter(tmp, "llama")
w.add_uint32("llama.block_count", 1)
w.add_float32("llama.rope.freq_base", 500000.0)
w.add_array("tokenizer.ggml.tokens", ["a", "b"])
w.add_array("tokenizer.ggml.scores", [0.5, 1.5])
w.add_int64("x.i64", -3)
w.add_tensor("f32", rng.standard_normal((2, 32)).astype(np.float32))
w.add_tensor("q8", quants.quantize(rng.standard_normal((1, 64)).astype(np.float32), T.Q8_0),
             raw_dtype=T.Q8_0)
raw = rng.integers(0, 256, size=(1, 144), dtype=np.uint8)
raw[0, 0:4] = np.array([0.01, 0.01], dtype=np.float16).view(np.uint8)
w.add_tensor("q4k", raw, raw_dtype=T.Q4_K)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
data = open(tmp, "rb").read()
for cut in (0, 3, 8, 20, 40, 100, 200, len(data) // 2, len(data) - 1):
    open(os.path.join(gdir, f"cut_{cut}.gguf"), "wb").write(data[:cut])
for i, pos in enumerate((4, 8, 16, 24, 30, 60, 120, 250, 300)):
    b = bytearray(data)
    if pos < len(b):
        b[pos] ^= 0xff
        open(os.path.join(gdir, f"flip_{i}.gguf"), "wb").write(bytes(b))


def st(name, header, payload):
    h = json.dumps(header).encode()
    open(os.path.join(sdir, name), "wb").write(struct.pack("<Q", len(h)) + h + payload)


x = rng.standard_normal(6).astype(np.float32)
st("valid.safetensors", {"__metadata__": {"format": "pt"},
                         "w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
                         "b": {"dtype": "BF16", "shape": [4], "data_offsets": [24, 32]}},
   x.tobytes() + bytes(8))
st("i64.safetensors", {"w": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}}, bytes(8))
st("past.safetensors", {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}},
   bytes(8))
st("overlap.safetensors", {"a": {"dtype": "F16", "shape": [4], "data_offsets": [0, 8]},
                           "b": {"dtype": "F16", "shape": [4], "data_offsets": [4, 12]}},
   bytes(12))
open(os.path.join(sdir, "badjson.safetensors"), "wb").write(struct.pack("<Q", 5) + b"{\"a\":")
open(os.path.join(sdir, "hugelen.safetensors"), "wb").write(struct.pack("<Q", 1 << 62) + b"{}")
open(os.path.join(sdir, "short.safetensors"), "wb").write(b"\x02\x00")

# ---- whole models: a tiny Llama (make_model.py's writers) as GGUF and as an HF folder
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models"))
import make_model as mm  # noqa: E402

SEP = b"\n--herd-fuzz-file--\n"  # fuzz_main.h FUZZ_SEP
TINY = dict(dim=16, n_layers=1, n_heads=2, n_kv_heads=1, head_dim=None, ffn_dim=32, vocab=384,
            tied=True, dtype="F16", rope=mm.LLAMA31_ROPE, max_pos=2048, seed=5)


def out_dir(name):
    d = os.path.join(root, name)
    os.makedirs(d, exist_ok=True)
    return d


def put(d, name, data):
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


tmp = tempfile.mkdtemp()
try:
    store = mm.hf_store_of(TINY)
    hf_dir = os.path.join(tmp, "hf")
    mm.write_hf(hf_dir, TINY, store, None)
    mm.write_gguf(os.path.join(tmp, "m.gguf"), TINY, "fuzz-tiny", store, hf_dir)
    model = open(os.path.join(tmp, "m.gguf"), "rb").read()
    files = {n: open(os.path.join(hf_dir, n), "rb").read()
             for n in ("config.json", "model.safetensors", "tokenizer.json",
                       "generation_config.json")}
    untied = dict(TINY, tied=False, seed=6, dtype="F32")
    ustore = mm.hf_store_of(untied)
    uhf = os.path.join(tmp, "uhf")
    mm.write_hf(uhf, untied, ustore, None, shards=2)
    ufiles = {n: open(os.path.join(uhf, n), "rb").read() for n in os.listdir(uhf)}
finally:
    shutil.rmtree(tmp)

d = out_dir("gguf_model")
put(d, "tiny.gguf", model)
for cut in (len(model) // 3, len(model) - 7):
    put(d, "cut_%d.gguf" % cut, model[:cut])
for i, pos in enumerate((12, 40, 90, 200)):
    b = bytearray(model)
    b[pos] ^= 0x41
    put(d, "flip_%d.gguf" % i, bytes(b))

d = out_dir("hf_model")
order = ("config.json", "model.safetensors", "tokenizer.json", "generation_config.json")
put(d, "tiny", SEP.join(files[n] for n in order))
put(d, "no_generation_config", SEP.join(files[n] for n in order[:3]))
put(d, "no_tokenizer", SEP.join(files[n] for n in order[:2]))
cfg = json.loads(files["config.json"])
cfg["rope_scaling"] = None
cfg["num_key_value_heads"] = 2
put(d, "wrong_kv_heads", SEP.join([json.dumps(cfg).encode()] + [files[n] for n in order[1:3]]))
put(d, "sharded", SEP.join([ufiles["config.json"], b"", ufiles["tokenizer.json"],
                            ufiles["generation_config.json"],
                            ufiles["model.safetensors.index.json"],
                            ufiles["model-00001-of-00002.safetensors"],
                            ufiles["model-00002-of-00002.safetensors"]]))
put(d, "bad_config", SEP.join([b'{"model_type": "llama", "hidden_size": 1e9}',
                               files["model.safetensors"]]))

# ---- tokenizers
tiny_json = json.dumps(mm.tiny_tokenizer_json(), ensure_ascii=False).encode()
d = out_dir("tokenizer_json")
put(d, "tiny.json", tiny_json)
j = mm.tiny_tokenizer_json()
j["model"]["vocab"] = dict([("", 384)] + list(j["model"]["vocab"].items()))
put(d, "empty_key.json", json.dumps(j, ensure_ascii=False))
j = mm.tiny_tokenizer_json()
j["normalizer"] = {"type": "NFC"}
put(d, "normalizer.json", json.dumps(j))
put(d, "escapes.json", tiny_json.replace(b'"\u0120t"', b'"\\u0120t"'))
put(d, "cut.json", tiny_json[:len(tiny_json) // 2])
put(d, "not_object.json", b"[1, 2, 3]")

def tiktoken_lines(tokens):
    import base64
    return b"".join(base64.b64encode(t) + b" %d\n" % i for i, t in enumerate(tokens))


base = [bytes([b]) for b in range(256)]
d = out_dir("tokenizer_model")
put(d, "bytes_only.model", tiktoken_lines(base))
put(d, "merges.model", tiktoken_lines(base + [b"ab", b"aba", b" the", b"  ", b"\n\n"]))
put(d, "crlf.model", tiktoken_lines(base).replace(b"\n", b"\r\n"))
put(d, "no_final_newline.model", tiktoken_lines(base)[:-1])
put(d, "dup_rank.model", tiktoken_lines(base) + b"YWI= 3\n")
put(d, "bad_base64.model", tiktoken_lines(base) + b"!!!! 256\n")
put(d, "empty.model", b"")

# ---- text to ids: flag byte (bit 0 parse_special, 1 heap only, 2 scan only) + text
d = out_dir("tokenize")
golden = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden", "tokenizer",
                      "llama3.golden")
lines = open(golden, encoding="utf-8").read().splitlines()[1:]
for i, line in enumerate(lines[::20]):
    c = json.loads(line)
    text = bytes.fromhex(c["hex"]) if "hex" in c else c["text"].encode()
    put(d, "golden_%02d" % i, bytes([1 if c.get("parse_special") else 0]) + text)
put(d, "long_word", b"\x02" + b"abcdefghijklmnopqrstuvwxyz" * 20)
put(d, "long_space", b"\x00" + b" " * 300 + b"x")
put(d, "invalid_utf8", b"\x04ok\xc3(\xed\xa0\x80z\xf0\x9f\x98")
put(d, "specials", b"\x01<|begin_of_text|>x<|eot_id|><|eot_id|<|python_tag|>")

# ---- chat: requests (the golden ones) and model outputs
d = out_dir("chat_render")
chat = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden", "chat")
for f in sorted(glob.glob(os.path.join(chat, "*.json"))):
    shutil.copyfile(f, os.path.join(d, os.path.basename(f)))
put(d, "messages_nul", b"system\0be brief\0user\0hi\0assistant\0hello\0user\0more")

d = out_dir("chat_output")
outputs = {
    "plain": "The answer is 42.",
    "json_call": '{"name": "get_weather", "parameters": {"city": "Paris", "days": 3}}',
    "json_arguments": '{"name": "f", "arguments": {"a": [1, 2, {"b": null}]}}',
    "two_calls": '{"name": "a", "parameters": {}}; {"name": "b", "parameters": {"x": "y"}}',
    "python_tag_json": '<|python_tag|>{"name": "search", "parameters": {"q": "x"}}',
    "builtin": '<|python_tag|>brave_search.call(query="weather in Paris")',
    "builtin_args": '<|python_tag|>wolfram_alpha.call(query="2+2", n=3, flag=True)',
    "code": "<|python_tag|>import math\nprint(math.pi)",
    "pythonic": '[get_weather(city="Paris"), get_time(tz="UTC", fmt=1.5)]',
    "after_stop": '{"name": "f", "parameters": {}}<|eom_id|>trailing',
    "broken": '{"name": "f", "parameters": {"a": ',
    "escapes": '{"name": "f\\u00e9", "parameters": {"s": "a\\"b\\n"}}',
}
for k, v in outputs.items():
    put(d, k, v)

# ---- server: flag byte (bit 0: /v1/completions, bit 1: a 3.2 model name) + body
d = out_dir("server_request")
reqs = {
    "chat": (0, {"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
    "chat_all": (0, {"messages": [{"role": "system", "content": "s"},
                                  {"role": "user", "content": [{"type": "text", "text": "a"}]}],
                     "stream": True, "stream_options": {"include_usage": True},
                     "max_tokens": 5, "temperature": 0.5, "top_p": 0.9, "seed": 3,
                     "stop": ["x", "yz"], "logit_bias": {"5": -100, "7": 2.5},
                     "logprobs": True, "top_logprobs": 3, "presence_penalty": 0.1,
                     "frequency_penalty": -0.2, "n": 1}),
    "json_object": (2, {"messages": [{"role": "user", "content": "json"}],
                        "response_format": {"type": "json_object"}}),
    "tools_required": (0, {"messages": [{"role": "user", "content": "w?"}],
                           "tools": [{"type": "function", "function": {
                               "name": "get_weather", "description": "d",
                               "parameters": {"type": "object", "properties": {
                                   "city": {"type": "string"}}}}},
                               {"type": "function", "function": {"name": "get_time"}}],
                           "tool_choice": "required"}),
    "tools_named": (0, {"messages": [{"role": "user", "content": "w?"}],
                        "tools": [{"type": "function", "function": {"name": "get_weather"}}],
                        "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}),
    "tool_turns": (0, {"messages": [
        {"role": "user", "content": "w?"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {
            "name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"}]}),
    "completion": (1, {"prompt": "Once upon", "max_tokens": 3, "echo": True, "stop": "\n"}),
    "completion_ids": (1, {"prompt": [1, 2, 3], "logprobs": 2}),
    "bad_types": (0, {"messages": "x", "max_tokens": "5", "temperature": -1}),
}
for k, (flag, body) in reqs.items():
    put(d, k, bytes([flag]) + json.dumps(body).encode())
put(d, "not_json", b"\x00{\"messages\": [")

# ---- JSON constraint: mode byte (bit 0 forced call, bits 1-2 alternatives, 3-5 chunk)
d = out_dir("json_constraint")
docs = {
    "object": (0, '{"a": 1, "b": [true, false, null], "c": {"d": "e\\u00e9\\n"}}'),
    "numbers": (8, '{"n": [-0, 0.5, 1e10, -2.5E-3, 12345678901234567890]}'),
    "nested": (16, '{"a": ' + "[" * 30 + "]" * 30 + "}"),
    "utf8": (0, '{"s": "caf\u00e9 \u4f60\u597d \U0001F600"}'),
    "partial": (24, '{"key": "val'),
    "call": (1, 'get_weather", "parameters": {"city": "Paris"}}'),
    "call_other": (5, 'get", "parameters": {}}'),
    "ws": (0, '{ \n\t"a" :\n 1 }'),
}
for k, (mode, doc) in docs.items():
    put(d, k, bytes([mode]) + doc.encode("utf-8", "surrogatepass"))

print("corpus written to", root)
