#!/usr/bin/env python3
"""golden_chat.py - expected chat prompts for herd's renderer, from the official templates.

Renders each conversation below with jinja2 configured exactly as Hugging Face transformers'
apply_chat_template configures it (transformers/utils/chat_template_utils.py:
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]),
tojson = json.dumps(x, ensure_ascii=False, indent=indent, separators=separators,
sort_keys=False), raise_exception raises TemplateError, strftime_now =
datetime.now().strftime) from the official Llama 3.1 / 3.2 Instruct template files, with
bos_token "<|begin_of_text|>".

Before rendering, the request goes through the conventions OpenAI-compatible servers
apply and herd_chat_render documents: tool-call "arguments" given as a JSON string are
json.loads'ed, a content list made only of {"type": "text"} parts is joined with "\\n", and
"tool_choice": "none" leaves "tools" out.

Writes tests/golden/chat/:
  MANIFEST            "herd-golden-chat 1" then one line per case: NAME TEMPLATE OUTCOME
                      (OUTCOME "ok" or "error": the template refuses the conversation)
  NAME.json           the request (what `herd render` reads on stdin)
  NAME.txt            the expected prompt (ok cases). "@TODAY@" stands for today's date
                      (strftime_now("%d %b %Y")) in 3.2 cases without a date_string.

Usage: scripts/golden_chat.py [--templates DIR] [--out DIR]
"""
import argparse
import json
import os
import sys
from datetime import datetime

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAGIC = "herd-golden-chat 1"
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def make_env(today):
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(fmt):
        return today if today is not None else datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def prepare(req):
    """The OpenAI-server conventions herd applies before the template sees the request."""
    if isinstance(req, dict) and req.get("tool_choice") == "none":
        req["tools"] = None
    msgs = req.get("messages")
    if not isinstance(msgs, list):
        return req
    for m in msgs:
        if not isinstance(m, dict):
            continue
        c = m.get("content")
        if isinstance(c, list) and c and all(
                isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
                for p in c):
            m["content"] = "\n".join(p["text"] for p in c)
        tcs = m.get("tool_calls")
        if isinstance(tcs, list):
            for tc in tcs:
                fn = tc.get("function") if isinstance(tc, dict) else None
                if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                    try:
                        fn["arguments"] = json.loads(fn["arguments"])
                    except ValueError:
                        pass
    return req


def render(template_text, req_text):
    req = prepare(json.loads(req_text))
    ctx = {
        "messages": req.get("messages"),
        "tools": req.get("tools"),
        "add_generation_prompt": req.get("add_generation_prompt", True),
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|eot_id|>",
    }
    ctx.update(req.get("chat_template_kwargs") or {})
    return make_env("@TODAY@").from_string(template_text).render(**ctx)


# ---------------------------------------------------------------- conversations

WEATHER = {"type": "function", "function": {
    "name": "get_current_weather",
    "description": "Get the current weather in a given location",
    "parameters": {"type": "object", "properties": {
        "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["location"]}}}
STOCK = {"type": "function", "function": {
    "name": "get_stock_price", "description": "Prix de l'action — «cotation» 株価",
    "parameters": {"type": "object", "properties": {
        "symbol": {"type": "string", "description": "Ticker, e.g. \"AAPL\"\\n or 'GOOG'\ttab"},
        "limit": {"type": "integer", "default": 10, "minimum": -0.0, "maximum": 1e16},
        "ratio": {"type": "number", "default": 1.0, "exclusiveMinimum": 1e-07,
                  "multipleOf": 0.1, "huge": 123456789012345678901234567890},
        "flags": {"type": "array", "items": {"type": "boolean"}, "default": [True, False, None]},
        "empty": {"type": "object", "properties": {}}},
        "required": []}}}
SYS = "You are a helpful assistant."
U1 = "What's the weather like in Paris today?"
CALL_W = {"type": "function", "id": "call_1",
          "function": {"name": "get_current_weather",
                       "arguments": {"location": "Paris, France", "unit": "celsius"}}}
CALL_W_STR = {"type": "function", "id": "call_1",
              "function": {"name": "get_current_weather",
                           "arguments": "{\"location\": \"Paris, France\",\n \"unit\":\"celsius\"}"}}


def msgs(*pairs):
    return [{"role": r, "content": c} for r, c in pairs]


def tool_conv(call, result="22 degrees and sunny", role="tool"):
    return [{"role": "system", "content": SYS}, {"role": "user", "content": U1},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": role, "tool_call_id": "call_1", "content": result}]


def case(name, tmpl, req, raw=None):
    return (name, tmpl, raw if raw is not None else json.dumps(req, ensure_ascii=False, indent=1))


BRAVE = {"type": "function", "function": {"name": "brave_search",
                                          "arguments": {"query": "current weather in Menlo Park"}}}
WOLF = {"type": "function", "function": {"name": "wolfram_alpha",
                                         "arguments": "{\"query\": \"solve x^2 - 4 = 0\"}"}}
BUILTIN = {"builtin_tools": ["brave_search", "wolfram_alpha"]}

CASES = [
    # --- Llama 3.1
    case("31_user_only", "3.1", {"messages": msgs(("user", "Hello!"))}),
    case("31_system_user", "3.1", {"messages": msgs(("system", SYS), ("user", "Hello!"))}),
    case("31_multi_turn", "3.1", {"messages": msgs(
        ("system", SYS), ("user", "Hi"), ("assistant", "Hello! How can I help?"),
        ("user", "Tell me a joke."), ("assistant", "Why did the chicken cross the road?"),
        ("user", "Why?"))}),
    case("31_no_generation_prompt", "3.1", {"messages": msgs(("user", "Hi"), ("assistant", "Hey")),
                                            "add_generation_prompt": False}),
    case("31_date_string", "3.1", {"messages": msgs(("user", "What day is it?")),
                                   "chat_template_kwargs": {"date_string": "03 Mar 2025"}}),
    case("31_tools_user_with_system", "3.1", {"messages": msgs(("system", SYS), ("user", U1)),
                                              "tools": [WEATHER]}),
    case("31_tools_user_no_system", "3.1", {"messages": msgs(("user", U1)), "tools": [WEATHER, STOCK]}),
    case("31_tools_in_system", "3.1", {"messages": msgs(("system", SYS), ("user", U1)),
                                       "tools": [WEATHER, STOCK],
                                       "chat_template_kwargs": {"tools_in_user_message": False}}),
    case("31_tool_call_json", "3.1", {"messages": tool_conv(CALL_W) + [
        {"role": "assistant", "content": "It is 22 degrees and sunny in Paris."},
        {"role": "user", "content": "Thanks!"}], "tools": [WEATHER]}),
    case("31_tool_call_string_args", "3.1", {"messages": tool_conv(CALL_W_STR), "tools": [WEATHER]}),
    case("31_tool_result_object", "3.1", {"messages": tool_conv(
        CALL_W, {"temperature": 22.0, "unit": "celsius", "sky": "sunny ☀", "rain": None}),
        "tools": [WEATHER]}),
    case("31_tool_result_number_ipython", "3.1", {"messages": tool_conv(CALL_W, 22, role="ipython"),
                                                  "tools": [WEATHER]}),
    case("31_tool_result_null", "3.1", {"messages": tool_conv(CALL_W, None), "tools": [WEATHER]}),
    case("31_tool_result_list", "3.1", {"messages": tool_conv(CALL_W, [1, 2.5, "x", True]),
                                        "tools": [WEATHER]}),
    case("31_tool_result_escapes", "3.1", {"messages": tool_conv(
        CALL_W, "line1\nline2 \"quoted\" back\\slash \u0001 tab\t é 中文"), "tools": [WEATHER]}),
    case("31_builtin_search_call", "3.1", {"messages": [
        {"role": "system", "content": SYS}, {"role": "user", "content": "Weather in Menlo Park?"},
        {"role": "assistant", "tool_calls": [BRAVE]},
        {"role": "ipython", "content": "{\"results\": [\"72F and sunny\"]}"}],
        "chat_template_kwargs": BUILTIN}),
    case("31_builtin_wolfram_string_args", "3.1", {"messages": [
        {"role": "user", "content": "Solve x^2-4=0"},
        {"role": "assistant", "content": "", "tool_calls": [WOLF]},
        {"role": "tool", "content": "x = ±2"},
        {"role": "assistant", "content": "x is 2 or -2."}],
        "chat_template_kwargs": BUILTIN}),
    case("31_builtin_code_interpreter_only", "3.1", {"messages": msgs(("system", SYS), ("user", "Plot sin(x)")),
                                                    "chat_template_kwargs": {"builtin_tools": ["code_interpreter"]}}),
    case("31_builtin_all_three", "3.1", {"messages": msgs(("user", "Search and compute")),
                                         "chat_template_kwargs": {"builtin_tools": [
                                             "brave_search", "code_interpreter", "wolfram_alpha"]}}),
    case("31_builtin_and_custom_tools", "3.1", {"messages": [
        {"role": "system", "content": SYS}, {"role": "user", "content": U1},
        {"role": "assistant", "tool_calls": [CALL_W]},
        {"role": "tool", "content": "22C"}], "tools": [WEATHER],
        "chat_template_kwargs": {"builtin_tools": ["brave_search", "wolfram_alpha"]}}),
    case("31_builtin_tools_in_system", "3.1", {"messages": msgs(("system", SYS), ("user", U1)),
                                               "tools": [WEATHER],
                                               "chat_template_kwargs": {"builtin_tools": ["brave_search"],
                                                                        "tools_in_user_message": False}}),
    case("31_whitespace_trim", "3.1", {"messages": msgs(
        ("system", " \n\t" + SYS + "  \n"), ("user", "\u3000\u00a0 padded question \u2003\r\n"),
        ("assistant", "\n\nanswer\n\n"), ("user", "   "))}),
    case("31_unicode_content", "3.1", {"messages": msgs(
        ("user", "Grüße 👋 — 日本語 <|eot_id|> ünïcödé \\u0041 \"q\""))}),
    case("31_numbers_in_tools", "3.1", {"messages": msgs(("user", "price?")), "tools": [STOCK]}),
    case("31_empty_tools_list", "3.1", {"messages": msgs(("user", "Hi")), "tools": []}),
    case("31_content_text_parts", "3.1", {"messages": [
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": [{"type": "text", "text": "Part one."},
                                     {"type": "text", "text": " Part two. "}]}]}),
    case("31_system_only", "3.1", {"messages": msgs(("system", SYS))}),
    case("31_assistant_prefill", "3.1", {"messages": msgs(("user", "Count to 3"), ("assistant", "1, 2,")),
                                         "add_generation_prompt": False}),
    case("31_missing_content", "3.1", {"messages": [{"role": "user"}]}),
    case("31_nonstring_content", "3.1", {"messages": [
        {"role": "system", "content": 42}, {"role": "user", "content": 3.5},
        {"role": "assistant", "content": True}, {"role": "user", "content": {"k": ["v", None]}}]}),
    case("31_custom_tools_kwarg", "3.1", {"messages": msgs(("user", U1)),
                                          "chat_template_kwargs": {"custom_tools": [WEATHER]}}),
    case("31_tools_first_message_not_user", "3.1", {"messages": msgs(
        ("system", SYS), ("assistant", "I start."), ("user", U1)), "tools": [WEATHER]}),
    case("31_tool_call_empty_and_nested_args", "3.1", {"messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "tool_calls": [{"type": "function", "function": {
            "name": "noop", "arguments": {}}}]},
        {"role": "tool", "content": ""},
        {"role": "assistant", "tool_calls": [{"type": "function", "function": {
            "name": "nested", "arguments": "{\"a\": [1, [2, {\"b\": 1.50}]], \"c\": {}, \"d\": []}"}}]}]}),
    case("31_duplicate_keys", "3.1", None, raw=(
        '{"messages": [{"role": "user", "content": "first", "content": "second"}],'
        ' "tools": [{"name": "f", "description": "a", "parameters": {}, "description": "b"}]}')),
    case("31_tool_call_id_role_tool_with_tool_calls", "3.1", {"messages": [
        {"role": "user", "content": "x"},
        {"role": "tool", "content": "ignored", "tool_calls": [CALL_W]}], "tools": [WEATHER]}),
    case("31_today_placeholder_not_used", "3.1", {"messages": msgs(("user", "date?")),
                                                  "chat_template_kwargs": {"date_string": "1 Jan 2030",
                                                                           "tools_in_user_message": 0}}),
    case("31_err_two_tool_calls", "3.1", {"messages": [
        {"role": "user", "content": U1}, {"role": "assistant", "tool_calls": [CALL_W, CALL_W]}]}),
    case("31_err_tools_without_user", "3.1", {"messages": msgs(("system", SYS)), "tools": [WEATHER]}),
    case("31_err_builtin_nonstring_arg", "3.1", {"messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "tool_calls": [{"type": "function", "function": {
            "name": "brave_search", "arguments": {"query": 5}}}]}],
        "chat_template_kwargs": {"builtin_tools": ["brave_search"]}}),
    # --- Llama 3.2
    case("32_system_user_date", "3.2", {"messages": msgs(("system", SYS), ("user", "Hello!")),
                                        "chat_template_kwargs": {"date_string": "21 Sep 2024"}}),
    case("32_today", "3.2", {"messages": msgs(("user", "What is today's date?"))}),
    case("32_multi_turn", "3.2", {"messages": msgs(
        ("system", SYS), ("user", "Hi"), ("assistant", "Hello!"), ("user", "Bye")),
        "chat_template_kwargs": {"date_string": "01 Oct 2024"}}),
    case("32_tools_user", "3.2", {"messages": tool_conv(CALL_W_STR), "tools": [WEATHER, STOCK],
                                  "chat_template_kwargs": {"date_string": "01 Oct 2024"}}),
    case("32_tools_in_system", "3.2", {"messages": msgs(("system", SYS), ("user", U1)),
                                       "tools": [WEATHER],
                                       "chat_template_kwargs": {"date_string": "01 Oct 2024",
                                                                "tools_in_user_message": False}}),
    case("32_builtin_ignored", "3.2", {"messages": [
        {"role": "user", "content": "search"}, {"role": "assistant", "tool_calls": [BRAVE]},
        {"role": "ipython", "content": {"r": 1}}],
        "chat_template_kwargs": {"date_string": "01 Oct 2024", "builtin_tools": ["brave_search"]}}),
    case("32_no_generation_prompt", "3.2", {"messages": msgs(("user", "Hi"), ("assistant", "Hey")),
                                            "add_generation_prompt": False,
                                            "chat_template_kwargs": {"date_string": "01 Oct 2024"}}),
    case("32_err_parallel_calls", "3.2", {"messages": [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "tool_calls": [CALL_W, CALL_W_STR]}], "tools": [WEATHER]}),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    shared = os.environ.get("HERD_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--templates", default=os.path.join(shared, "templates"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "golden", "chat"))
    a = ap.parse_args()
    tmpl = {}
    for v, f in (("3.1", "llama-3.1-instruct.jinja"), ("3.2", "llama-3.2-instruct.jinja")):
        path = os.path.join(a.templates, f)
        if not os.path.exists(path):
            sys.exit(f"golden_chat.py: {path} missing (llama.cpp models/templates/{f})")
        with open(path, encoding="utf-8") as fh:
            tmpl[v] = fh.read()
    os.makedirs(a.out, exist_ok=True)
    lines = [MAGIC]
    n_ok = 0
    for name, v, req_text in CASES:
        with open(os.path.join(a.out, name + ".json"), "w", encoding="utf-8") as fh:
            fh.write(req_text + "\n")
        try:
            out = render(tmpl[v], req_text)
            outcome = "ok"
        except Exception as e:  # the template refuses: herd must refuse too
            out, outcome = None, "error"
            print(f"{name}: template error: {e}", file=sys.stderr)
        txt = os.path.join(a.out, name + ".txt")
        if out is not None:
            with open(txt, "w", encoding="utf-8", newline="") as fh:
                fh.write(out)
            n_ok += 1
        elif os.path.exists(txt):
            os.remove(txt)
        lines.append(f"{name} {v} {outcome}")
    with open(os.path.join(a.out, "MANIFEST"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print(f"golden_chat.py: {len(CASES)} cases ({n_ok} renders) in {a.out}")


if __name__ == "__main__":
    main()
