#!/usr/bin/env python3
"""summarize.py OUT_DIR - the markdown tables of bench/README.md from run_bench.sh's results.

Speed: per file, thread count and test (ppN prefill, tgN decode), herd and llama.cpp tokens/s
(mean ± sd over the repetitions), their ratio, and each engine's share of the machine's wall:
  decode wall  = measured read bandwidth (membw, same thread count) / bytes of weights read
                 per token (every weight except token_embd, which is only gathered unless it
                 is tied to the output);
  prefill wall = measured int8 VNNI peak (same thread count) / (2 x layer matmul weights),
                 i.e. the arithmetic of the layer matmuls of one token at int8 speed; for
                 float weights (F16/BF16/F32, multiplied in fp32 by both engines) the fp32
                 FMA peak instead;
  AMX wall     = the same with membw's AMX int8 tile peak, where the machine has AMX.
Rows "herd ISA" are herd with that kernel variant forced (run_bench.sh -X ISA).
Memory: file size, herd's KV cache, peak resident set of each process (/usr/bin/time %M).
"""
import glob
import json
import os
import re
import struct
import sys

GGUF_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
# ggml type -> (block elements, block bytes)
BLOCKS = {0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24),
          8: (32, 34), 12: (256, 144), 13: (256, 176), 14: (256, 210), 30: (1, 2)}


def gguf_tensors(path):
    """[(name, ne list, type, nbytes)] from a GGUF header, skipping metadata values fast."""
    with open(path, "rb") as f:
        data = f.read(64 << 20)  # headers with a 128k vocabulary are ~8 MB

    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return v[0]

    def skip_str():
        nonlocal pos
        n = take("Q")
        pos += n

    def skip_value(t):
        nonlocal pos
        if t == 8:
            skip_str()
        elif t == 9:
            at, n = take("I"), take("Q")
            if at == 8:
                for _ in range(n):
                    skip_str()
            else:
                pos += GGUF_SIZES[at] * n
        else:
            pos += GGUF_SIZES[t]

    assert data[:4] == b"GGUF", path
    pos = 8
    n_t, n_kv = take("Q"), take("Q")
    for _ in range(n_kv):
        skip_str()
        skip_value(take("I"))
    out = []
    for _ in range(n_t):
        n = take("Q")
        name = data[pos:pos + n].decode()
        pos += n
        nd = take("I")
        ne = [take("Q") for _ in range(nd)]
        t = take("I")
        take("Q")
        n_el = 1
        for x in ne:
            n_el *= x
        be, bb = BLOCKS[t]
        out.append((name, ne, t, n_el // be * bb))
    return out


def model_facts(path):
    ts = gguf_tensors(path)
    names = {t[0] for t in ts}
    tied = "output.weight" not in names
    per_token = sum(t[3] for t in ts if t[0] != "token_embd.weight" or tied)
    layer_params = float_params = 0
    for name, ne, t, _ in ts:
        if name.startswith("blk.") and len(ne) == 2:
            layer_params += ne[0] * ne[1]
            float_params += ne[0] * ne[1] if t in (0, 1, 30) else 0
    return {"file": os.path.getsize(path), "per_token": per_token,
            "layer_flop": 2 * layer_params, "tied": tied,
            "float": float_params * 2 > layer_params}


def membw(out):
    """{threads: {'read': GB/s, 'int8 vnni': GOP/s, ...}}, best of before/after runs."""
    best = {}
    for fn in glob.glob(os.path.join(out, "membw-*.txt")):
        for line in open(fn):
            m = re.match(r"(\S+(?: \S+)?)\s+threads=(\d+)\s+([\d.]+).*?([\d.]+) \(per cpu",
                         line)
            if m:
                kind, t, v = m.group(1).strip(), int(m.group(2)), float(m.group(3))
                d = best.setdefault(t, {})
                d[kind] = max(d.get(kind, 0.0), v)
                d[kind + " cpu"] = max(d.get(kind + " cpu", 0.0), float(m.group(4)))
    return best


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return []


def rss(path):
    try:
        return int(open(path).read().split()[-1]) * 1024
    except (OSError, ValueError, IndexError):
        return None


def row_of(rows, test):
    for r in rows:
        if (test[0] == "pp" and r.get("n_prompt") == test[1] and r.get("n_gen") == 0) or \
           (test[0] == "tg" and r.get("n_gen") == test[1] and r.get("n_prompt") == 0):
            return r
    return None


def fmt_ts(r):
    return "%.2f ± %.2f" % (r["avg_ts"], r["stddev_ts"]) if r else "—"


def main():
    out = sys.argv[1]
    bw = membw(out)
    mach = os.path.join(out, "machine.txt")
    speed, mem = [], []
    tags = sorted({os.path.basename(p).split(".")[0] for p in glob.glob(os.path.join(out, "*-t*.*.json"))})
    for tag in tags:
        name, t = tag.rsplit("-t", 1)
        t = int(t)
        herd = load_json(os.path.join(out, tag + ".herd.json"))
        llama = load_json(os.path.join(out, tag + ".llama.json"))
        path = herd[0]["model_filename"] if herd else (llama[0]["model_filename"] if llama else None)
        facts = model_facts(path) if path and os.path.exists(path) else None
        lim = bw.get(t, {})
        tests = [("pp", r["n_prompt"]) for r in herd + llama if r.get("n_prompt")] + \
                [("tg", r["n_gen"]) for r in herd + llama if r.get("n_gen")]
        variants = [("herd", herd)] + [
            ("herd " + os.path.basename(p).split(".")[1][5:], load_json(p))
            for p in sorted(glob.glob(os.path.join(out, tag + ".herd-*.json")))]
        for test in sorted(set(tests)):
            l = row_of(llama, test)
            wall = amx = None
            if facts and test[0] == "tg" and lim.get("read"):
                wall = lim["read"] * 1e9 / facts["per_token"]
            peak = lim.get("fp32 fma" if facts and facts["float"] else "int8 vnni")
            if facts and test[0] == "pp" and peak:
                wall = peak * 1e9 / facts["layer_flop"]
            if facts and test[0] == "pp" and not facts["float"] and lim.get("amx int8"):
                amx = lim["amx int8"] * 1e9 / facts["layer_flop"]
            for who, rows in variants:
                h = row_of(rows, test)
                if not h and who != "herd":
                    continue
                ratio = "%.2f×" % (h["avg_ts"] / l["avg_ts"]) if h and l and l["avg_ts"] else "—"
                share = lambda r, w: "%.0f%%" % (100 * r["avg_ts"] / w) if r and w else "—"
                speed.append("| %s | %d | %s%d | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                    name, t, test[0], test[1], who, fmt_ts(h), fmt_ts(l), ratio,
                    "%.1f" % wall if wall else "—", share(h, wall), share(l, wall),
                    "%.0f" % amx if amx else "—", share(h, amx)))
        if facts:
            hr, lr = rss(os.path.join(out, tag + ".herd.rss")), rss(os.path.join(out, tag + ".llama.rss"))
            kv = herd[0].get("kv_bytes", 0) if herd else 0
            gb = lambda x: "%.2f" % (x / 1e9) if x else "—"
            mem.append("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                name, t, gb(facts["file"]), gb(facts["per_token"]), gb(kv), gb(hr),
                "%.0f%%" % (100 * hr / (facts["file"] + kv)) if hr else "—", gb(lr),
                "%.2f" % herd[0]["load_s"] if herd else "—",
                "%.2f" % herd[0]["ttft_s"] if herd else "—"))
    if os.path.exists(mach):
        print("```\n" + open(mach).read().strip() + "\n```\n")
    print("Machine limits (membw, best of the runs before and after):\n")
    print("| threads | read GB/s | fp32 FMA GFLOP/s | bf16 dot GFLOP/s | int8 VNNI GOP/s "
          "| AMX int8 GOP/s | AMX bf16 GFLOP/s |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for t in sorted(bw):
        d = bw[t]
        cell = lambda k: "%.1f (%.1f per cpu-s)" % (d.get(k, 0), d.get(k + " cpu", 0)) \
            if k in d else "—"
        print("| %d | %s | %s | %s | %s | %s | %s |" % (
            t, cell("read"), cell("fp32 fma"), cell("bf16 dot"), cell("int8 vnni"),
            cell("amx int8"), cell("amx bf16")))
    print("\nThe walls below use the wall-clock rates (what the engines also got on this "
          "shared host); per cpu-second rates show what the cores do when they run.")
    print("\nSpeed (tokens/s, mean ± sd):\n")
    print("| model | -t | test | engine | herd | llama.cpp | herd / llama.cpp | wall | herd % of wall "
          "| llama.cpp % of wall | AMX wall | herd % of AMX wall |")
    print("|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(speed))
    print("\nMemory and start-up (GB = 1e9 bytes):\n")
    print("| model | -t | file | read per token | herd KV | herd peak RSS | herd RSS / (file + KV) | llama.cpp peak RSS | herd load s | herd TTFT s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(mem))


if __name__ == "__main__":
    main()
