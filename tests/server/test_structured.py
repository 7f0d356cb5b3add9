#!/usr/bin/env python3
"""test_structured.py - structured output (issue 16): response_format json_schema and a
named tool call's arguments held to JSON Schema, token by token.

On a tiny random model (its weights write garbage, so every valid output comes from the
constraint): RANDOM_SCHEMAS random schemas (objects, nested objects, arrays with
minItems/maxItems, strings with min/maxLength, enum, const, formats date/date-time/uuid,
integers, numbers, booleans, null, anyOf [X, null], $ref to $defs) at several temperatures
and seeds, each output validated with the jsonschema package (format checks on); pydantic
models through the openai client's parse(); a named tool_choice whose arguments must
validate against the tool's parameters; unsupported keywords (pattern, minimum, ...) are a
400 naming them. It also prints tokens/s with and without a schema (not asserted).

Usage: test_structured.py --herd build/herd --work DIR [--schemas N]
"""
import argparse
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

try:
    import jsonschema
    import openai
except ImportError as e:
    common.skip(f"needs the openai and jsonschema packages ({e})")

check = common.check
WORDS = ["name", "age", "city", "tags", "items", "score", "ok", "id", "when", "kind", "note",
         "size", "child", "list", "value", "café", "a b", "quote\"d"]


def rand_schema(rng, depth, defs):
    kinds = ["string", "integer", "number", "boolean", "null", "enum", "const", "format",
             "optional"]
    if depth < 3:
        kinds += ["object", "array", "object", "ref"]
    k = rng.choice(kinds)
    if k == "string":
        s = {"type": "string"}
        if rng.random() < 0.5:
            s["minLength"] = rng.randint(0, 3)
        if rng.random() < 0.5:
            s["maxLength"] = rng.randint(s.get("minLength", 0), 12)
        return s
    if k in ("integer", "number", "boolean", "null"):
        return {"type": k, "description": f"a {k}"}
    if k == "enum":
        vals = rng.sample(["red", "green", "blue", 1, 12, 2.5, True, None, "x y", [1, 2],
                           {"k": 1}], rng.randint(1, 4))
        return {"enum": vals}
    if k == "const":
        return {"const": rng.choice(["fixed", 7, False, {"a": [1]}])}
    if k == "format":
        return {"type": "string", "format": rng.choice(["date", "date-time", "uuid"])}
    if k == "optional":  # Optional[X]: X of a type other than null
        inner = rng.choice([{"type": "string", "maxLength": 8}, {"type": "integer"},
                            {"type": "array", "items": {"type": "boolean"}},
                            {"enum": ["a", "b", 3]}, rand_object(rng, depth + 1, defs)])
        return {"anyOf": [inner, {"type": "null"}]} if rng.random() < 0.7 else \
            {"type": ["integer", "null"]}
    if k == "array":
        s = {"type": "array", "items": rand_schema(rng, depth + 1, defs)}
        if rng.random() < 0.6:
            s["minItems"] = rng.randint(0, 2)
        if rng.random() < 0.6:
            s["maxItems"] = rng.randint(s.get("minItems", 0), 4)
        return s
    if k == "ref":
        name = f"D{len(defs)}"
        defs[name] = {}  # reserved: a nested $ref gets another name
        defs[name] = rand_object(rng, depth + 1, defs)
        return {"$ref": f"#/$defs/{name}"}
    return rand_object(rng, depth + 1, defs)


def rand_object(rng, depth, defs):
    keys = rng.sample(WORDS, rng.randint(0 if depth else 1, 4))
    props = {k: rand_schema(rng, depth, defs) for k in keys}
    s = {"type": "object", "properties": props, "title": "T"}
    s["required"] = [k for k in keys if rng.random() < 0.7]
    if rng.random() < 0.5:
        s["additionalProperties"] = False
    return s


def random_schema(rng):
    defs = {}
    s = rand_object(rng, 0, defs)
    if defs:
        s["$defs"] = defs
    return s


def test_random(c, n, ban):
    rng = random.Random(1234)
    fc = jsonschema.FormatChecker()
    bad = 0
    for i in range(n):
        schema = random_schema(rng)
        temp = [0, 0.7, 1.0, 1.5][i % 4]
        fmt = {"type": "json_schema", "json_schema": {"name": "s", "schema": schema,
                                                      "strict": True}}
        try:
            r = c.chat.completions.create(model="m", messages=[{"role": "user",
                                                                "content": "Give data."}],
                                          response_format=fmt, max_tokens=160,
                                          temperature=temp, seed=i, logit_bias=ban)
            text = r.choices[0].message.content
            obj = json.loads(text)
            jsonschema.validate(obj, schema, format_checker=fc)
        except Exception as e:  # noqa: BLE001 - any failure is the finding
            bad += 1
            if bad <= 5:
                print(f"FAIL schema {i}: {json.dumps(schema)[:300]}\n  -> {e!r}"[:900])
    check(bad == 0, f"random schemas: {n - bad}/{n} outputs valid against their schema")


def test_pydantic(c):
    try:
        from pydantic import BaseModel
    except ImportError:
        print("note: pydantic is not installed; parse() check skipped")
        return
    from typing import List, Literal, Optional

    class Address(BaseModel):
        street: str
        zip_code: Optional[str]

    class Person(BaseModel):
        name: str
        age: int
        kind: Literal["a", "b"]
        tags: List[str]
        home: Address
        score: Optional[float] = None

    parse = getattr(c.chat.completions, "parse", None) or c.beta.chat.completions.parse
    try:
        r = parse(model="m", messages=[{"role": "user", "content": "A person."}],
                  response_format=Person, max_tokens=300, temperature=1.0, seed=3)
        p = r.choices[0].message.parsed
        check(isinstance(p, Person) and isinstance(p.home, Address),
              f"openai parse() with a pydantic model: {p!r}")
    except Exception as e:  # noqa: BLE001
        check(False, f"openai parse() with a pydantic model: {e!r}")


def test_tool_args(c):
    params = {"type": "object", "properties": {
        "city": {"type": "string", "maxLength": 20},
        "days": {"type": "integer"},
        "unit": {"enum": ["C", "F"]},
        "when": {"type": "string", "format": "date"}},
        "required": ["city", "days", "unit", "when"], "additionalProperties": False}
    tools = [{"type": "function", "function": {"name": "forecast", "parameters": params}}]
    for i in range(2):
        r = c.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "Forecast?"}], tools=tools,
            tool_choice={"type": "function", "function": {"name": "forecast"}},
            max_tokens=200, temperature=1.0, seed=40 + i)
        calls = r.choices[0].message.tool_calls or []
        try:
            args = json.loads(calls[0].function.arguments)
            jsonschema.validate(args, params, format_checker=jsonschema.FormatChecker())
            ok = calls[0].function.name == "forecast"
        except Exception as e:  # noqa: BLE001
            ok, args = False, e
        check(ok, f"named tool call arguments follow the tool's schema: {args!r}")


def test_refusals(srv):
    cases = [({"type": "object", "properties": {"a": {"type": "string", "pattern": "^x"}}},
              "pattern"),
             ({"type": "object", "properties": {"n": {"type": "integer", "minimum": 3}}},
              "minimum"),
             ({"type": "object", "properties": {"s": {"type": "string", "format": "email"}}},
              "email"),
             ({"type": "object", "properties": {"x": {"anyOf": [{"type": "string"},
                                                                 {"type": "string"}]}}},
              "anyOf"),
             ({"type": "string"}, "object"),
             ({"type": "object", "properties": {"r": {"$ref": "http://x/y"}}}, "$ref")]
    for schema, word in cases:
        s, _, b = srv.request("POST", "/v1/chat/completions", {
            "messages": [{"role": "user", "content": "x"}], "max_tokens": 4,
            "response_format": {"type": "json_schema",
                                "json_schema": {"name": "s", "schema": schema}}})
        err = json.loads(b).get("error", {}) if s != 200 else {}
        check(s == 400 and word in err.get("message", "") and
              err.get("param") == "response_format",
              f"unsupported '{word}' -> 400 naming it: {s} {b[:200]!r}")
    tools = [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"n": {"type": "number", "multipleOf": 2}}}}}]
    s, _, b = srv.request("POST", "/v1/chat/completions", {
        "messages": [{"role": "user", "content": "x"}], "max_tokens": 4, "tools": tools,
        "tool_choice": {"type": "function", "function": {"name": "f"}}})
    check(s == 400 and b"multipleOf" in b, f"a tool schema keyword refused: {s} {b[:200]!r}")


def test_speed(c, ban):
    """tokens/s with and without a schema (printed, never asserted)."""
    schema = {"type": "object", "properties": {"items": {"type": "array", "items": {
        "type": "object", "properties": {"name": {"type": "string"}, "n": {"type": "integer"}},
        "required": ["name", "n"]}, "minItems": 3}}, "required": ["items"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}
    out = {}
    for label, extra in (("free", {}), ("json_object", {"response_format": {
            "type": "json_object"}}), ("json_schema", {"response_format": fmt})):
        t0 = time.time()
        n = 0
        for i in range(3):
            r = c.chat.completions.create(model="m", messages=[{"role": "user",
                                                                "content": "List."}],
                                          max_tokens=300, temperature=1.0, seed=i,
                                          logit_bias=ban, **extra)
            n += r.usage.completion_tokens
        out[label] = n / (time.time() - t0)
    print("tokens/s on the tiny model: " +
          ", ".join(f"{k} {v:.0f}" for k, v in out.items()))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--herd", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--schemas", type=int, default=60)
    ap.add_argument("--speed", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    model, _ = common.test_model(a.work)
    ban = common.ban_eos(model)
    srv = common.Server(a.herd, model, "--parallel", 2, "--ctx", 2048)
    try:
        c = openai.OpenAI(base_url=srv.base + "/v1", api_key="none", max_retries=0,
                          timeout=120)
        test_refusals(srv)
        test_random(c, a.schemas, ban)
        test_pydantic(c)
        test_tool_args(c)
        if a.speed:
            test_speed(c, ban)
        check(srv.stop() == 0, "clean exit")
    finally:
        srv.stop()
        if common.failed():
            print("server log:\n" + "".join(srv.log[-10:]))
    return common.summary()


if __name__ == "__main__":
    sys.exit(main())
