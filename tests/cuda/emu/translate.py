#!/usr/bin/env python3
"""translate.py - CUDA source to C++ for the emulator (tests/cuda/emu/README.md).

The one piece of CUDA syntax a C++ compiler cannot read is the launch, so this rewrites
    kernel<T, N><<<grid, block, smem, stream>>>(a, b, c)
into
    emu_launch(grid, block, smem, stream, &kernel<T, N>, a, b, c)
and leaves everything else to the emulator's headers. Usage: translate.py IN.cu OUT.cpp
"""
import re
import sys

LAUNCH = re.compile(r"([A-Za-z_]\w*(?:<[^;<>()]*>)?)\s*<<<")


def close_of(s, i, open_ch, close_ch):
    """Index of the bracket closing the one at s[i]."""
    depth = 0
    for j in range(i, len(s)):
        if s[j] == open_ch:
            depth += 1
        elif s[j] == close_ch:
            depth -= 1
            if depth == 0:
                return j
    raise SystemExit("translate.py: unbalanced %s at offset %d" % (open_ch, i))


def split_top(s):
    """s split at the commas outside parentheses."""
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    parts.append(cur.strip())
    return parts


def translate(src):
    out, pos = [], 0
    while True:
        m = LAUNCH.search(src, pos)
        if not m:
            out.append(src[pos:])
            return "".join(out)
        end_cfg = src.index(">>>", m.end())
        cfg = split_top(src[m.end():end_cfg])
        cfg += ["0", "0"][: max(0, 4 - len(cfg))]
        lp = src.index("(", end_cfg)
        rp = close_of(src, lp, "(", ")")
        args = src[lp + 1:rp].strip()
        out.append(src[pos:m.start()])
        out.append("emu_launch(%s, &%s%s)" % (", ".join(cfg), m.group(1),
                                              (", " + args) if args else ""))
        pos = rp + 1


def main():
    if len(sys.argv) != 3:
        raise SystemExit("usage: translate.py IN.cu OUT.cpp")
    with open(sys.argv[1]) as f:
        src = f.read()
    with open(sys.argv[2], "w") as f:
        f.write("/* generated from %s by tests/cuda/emu/translate.py */\n" % sys.argv[1])
        f.write(translate(src))


if __name__ == "__main__":
    main()
