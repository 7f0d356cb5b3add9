#!/usr/bin/env python3
"""golden_tokenizer.py - builds the tokenizer golden corpus from two independent references.

Builds >= 500 diverse strings (the 8 Llama 3.1 languages, CJK, Arabic, code, emoji ZWJ
sequences and skin tones, digit and whitespace runs, tabs, CRLF, capital contractions, lone
combining marks, special-token look-alikes, seeded random mixes of tricky code points),
encodes each with
  - tiktoken, Meta's tokenizer.model and Meta's pattern (the reference Meta ships), and
  - Hugging Face tokenizers with tokenizer.json (encode_special_tokens on, no BOS),
and writes tests/golden/tokenizer/llama3.golden: a magic/version line, then one JSON object
per case, {"text": ..., "ids": [...]} (plus "hex", the UTF-8 bytes, when the text holds
a NUL, and "parse_special": true for cases encoded with special tokens parsed). Where the references disagree the case is written
with tiktoken's ids (Meta's own tokenizer defines Llama 3) and listed in
tests/golden/tokenizer/disagreements.txt; docs/internals/tokenizer.md says which is right.

usage: scripts/golden_tokenizer.py [--data ../shared/data/llama3] [--out tests/golden/tokenizer]
       scripts/golden_tokenizer.py --write-gguf PATH   (the tests' GGUF carrying the vocab)
"""
import argparse
import base64
import json
import os
import random
import sys

MAGIC = "herd-tokenizer-golden 1"
PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
           r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def meta_special_tokens():
    """Meta's 256 special tokens with Llama 3.1 names (llama-models, llama3_1 tokenizer.py)."""
    names = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
             "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>",
             "<|reserved_special_token_2|>", "<|start_header_id|>", "<|end_header_id|>",
             "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"]
    names += ["<|reserved_special_token_%d|>" % (3 + i) for i in range(256 - len(names))]
    return names


def load_tiktoken(path):
    import tiktoken
    ranks = {}
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                tok, rank = line.split()
                ranks[base64.b64decode(tok)] = int(rank)
    n = len(ranks)
    special = {name: n + i for i, name in enumerate(meta_special_tokens())}
    return tiktoken.Encoding(name="llama3", pat_str=PATTERN, mergeable_ranks=ranks,
                             special_tokens=special)


def corpus():
    """The golden strings: hand-picked edge cases first, then seeded random mixes."""
    cases = []
    add = cases.append
    # the 8 Llama 3.1 languages
    for s in [
        "Hello world", "The quick brown fox jumps over the lazy dog.",
        "I'm sure they'll say we've done what we'd planned, isn't it?",
        "I'LL SEE YOU. WE'VE BEEN THERE. SHE'S HERE. THEY'RE GONE. I'M OK. HE'D GO. DON'T.",
        "Ich möchte ein Stück Käse und Brötchen, bitte. Straße, Größe, Übermaß.",
        "Le cœur a ses raisons que la raison ne connaît point. L'été où j'ai vu l'œuvre.",
        "Nel mezzo del cammin di nostra vita mi ritrovai per una selva oscura; perché è così.",
        "Não há mal que sempre dure, nem bem que nunca acabe. Ação, coração, pão, irmã.",
        "¿Dónde está la biblioteca? ¡Señor, mañana será otro día! Pingüino, año, niño.",
        "नमस्ते, आप कैसे हैं? मैं ठीक हूँ। भारत एक विशाल देश है। क्षत्रिय ज्ञान",
        "สวัสดีครับ ผมชื่อสมชาย ยินดีที่ได้รู้จัก ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ",
        "English, Deutsch, Français, Italiano, Português, हिन्दी, Español, ไทย",
    ]:
        add(s)
    # CJK, Arabic, Hebrew, Cyrillic, Greek, Korean, others
    for s in [
        "你好，世界！我爱自然语言处理。", "東京は日本の首都です。カタカナとひらがな、漢字。",
        "안녕하세요, 세계! 한국어 문장입니다.", "مرحبا بالعالم! اللغة العربية جميلة جدا.",
        "שלום עולם, מה שלומך?", "Привет, мир! Съешь же ещё этих мягких французских булок.",
        "Γειά σου Κόσμε! Ελληνικά γράμματα: αβγδε ΑΒΓΔΕ.", "Tiếng Việt có dấu: Xin chào thế giới.",
        "Türkçe: Iğdır'da ılık şarap içtik. İstanbul.", "ქართული ენა", "Հայերեն լեզու",
        "বাংলা ভাষা", "தமிழ் மொழி", "ᚠᚢᚦᚨᚱᚲ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙 𝒮𝒸𝓇𝒾𝓅𝓉", "ａｂｃ１２３（全角）",
        "Ω≈ç√∫˜µ≤≥÷", "½ ⅓ ¼ ² ³ ① ② Ⅻ ٣٤٥ ०१२ ๑๒๓", "ﷺ ﷽ ﬁ ﬂ", "٣٤٥٦٧ ۱۲۳۴۵",
    ]:
        add(s)
    # source code
    for s in [
        "def f(x):\n    return x * 2\n", "int main(void) {\n\tprintf(\"%d\\n\", 42);\n\treturn 0;\n}\n",
        "for (let i = 0; i < 10; i++) { console.log(`i=${i}`); }",
        "#include <stdio.h>\r\n#define MAX(a,b) ((a)>(b)?(a):(b))\r\n",
        "SELECT * FROM users WHERE id = 1 AND name LIKE '%bob%';",
        "<html><body class=\"x\">&amp;&lt;&gt;</body></html>", "{\"key\": [1, 2.5, true, null]}",
        "fn main() -> Result<(), Box<dyn Error>> { Ok(()) }", "x += y ** 2 // 3 % 4 != 5 >= 6",
        "    indented\n        more\n\t\ttabs\n", "a=1;b=2;c=a+b;;;", "path/to/file.txt C:\\Windows\\sys32",
        "https://example.com/a?b=c&d=e#frag", "user@example.org", "$ echo 'hi' | grep -v x > /dev/null 2>&1",
    ]:
        add(s)
    # emoji: ZWJ sequences, skin tones, flags, keycaps, variation selectors
    for s in [
        "👨‍👩‍👧‍👦", "👩🏽‍💻 coding", "👍🏻👍🏼👍🏽👍🏾👍🏿", "🏳️‍🌈 🏴‍☠️", "🇺🇸🇩🇪🇯🇵", "1️⃣ #️⃣ *️⃣",
        "❤️ ♥ ☺️", "🧑🏿‍🤝‍🧑🏻", "I ❤️ 🍕!!", "😀😃😄😁😆😅😂🤣", "text🙂text", "🫠🫶🏾",
    ]:
        add(s)
    # digits
    for s in ["1", "12", "123", "1234", "12345", "123456789012345678901234567890", "3.14159265358979",
              "1,000,000", "-42", "0x1F2E3D", "2024-07-23T10:00:00Z", "１２３４５", "٠١٢٣٤٥٦٧٨٩",
              "a1b22c333d4444", "99 bottles", "v1.2.3-rc4", "1e-10", "+33 6 12 34 56 78"]:
        add(s)
    # whitespace
    for s in [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\r\n\r\n", "a\r\nb", " \n \n ", "a  b   c    d",
              "word ", "word  ", " word", "  word", "\t\tx", "x\t\t", "x \n", "x  \n\n  y", "\u00a0nbsp\u00a0",
              "\u3000ideographic\u3000space", "a\u2028b\u2029c", "a\u0085b", "a\u000bb\u000cc", "\u200b zero width",
              "a\u2003\u2003b", "  \t  \n  \t  ", "\n\n\n\n\n\n\n\n", " " * 40, "x" + " " * 17 + "y",
              "end with spaces   ", "\u180e mongolian", "a\u001cb\u001dc\u001ed\u001ff", "\u0000nul"]:
        add(s)
    # contractions and case folding
    for s in ["I'LL", "WE'VE", "'S 'T 'RE 'VE 'M 'LL 'D", "'s't're've'm'll'd", "don't won't can't",
              "DON'T", "it’s curly", "'ſ long s", "'K kelvin K", "''", "'", "x'", "'x", "rock'n'roll",
              "O'Neil's", "'1'", "'\u00e9t\u00e9"]:
        add(s)
    # lone and stacked combining marks, decomposed forms
    for s in ["\u0301", "a\u0301", "e\u0301\u0301\u0301", " \u0301", "\u0301abc", "1\u0301", "Zalgo: Z\u0351\u0317a\u0327l\u0315g\u0358o\u0315",
              "cafe\u0301 vs caf\u00e9", "\u093f", "\u0e31", "\u200d", "\ufe0f", "x\u200dy", "\u0645\u064e"]:
        add(s)
    # special-token look-alikes (plain text)
    for s in ["<|begin_of_text|>", "<|eot_id|>hello", "a<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
              "<|python_tag|>", "<|eom_id|>", "<|reserved_special_token_5|>", "<|begin_of_text", "<||>", "< |eot_id| >",
              "<|EOT_ID|>", "<|finetune_right_pad_id|>", "<<|eot_id|>>", "<|end_of_text|><|end_of_text|>",
              "<s></s>[INST]", "<|im_start|>system<|im_end|>"]:
        add(s)
    # punctuation runs
    for s in ["!!!", "...", "?!?!", "---", "***bold***", "((()))", "-- \n", "!\r\n", "a!\n\n", ".\r\r\n",
              "«guillemets» „Anführungszeichen“ “smart” ‘quotes’", "—em – en", "…", "©®™", "§¶†‡"]:
        add(s)
    # seeded random mixes of tricky pieces
    rng = random.Random(20240723)
    atoms = ["a", "Z", "é", "ß", "İ", "ı", "ſ", "K", "1", "23", "٣", "½", "²", " ", "  ", "\t", "\n", "\r",
             "\r\n", "\u00a0", "\u0085", "\u2028", "\u3000", "\u200b", "'", "'s", "'LL", "'ve", "’", "!",
             "?", ".", ",", "-", "_", "<|", "|>", "<|eot_id|>", "\u0301", "\u093f", "\u0e31", "😀", "👍🏽",
             "‍", "️", "中", "文", "あ", "한", "ع", "ह", "ก", "Ω", "я", "€", "$", "\\", "/", "#", "𝔘",
             "\U0001F3F3", "\x7f", "\x01", "ﬁ", "Ⅻ", "①", "ǅ", "ʰ", "ꙮ", "\U00010400"]
    while len(cases) < 560:
        n = rng.randint(1, 14)
        add("".join(rng.choice(atoms) for _ in range(n)))
    # seeded random words of mixed scripts and numbers
    words = ["hello", "Welt", "naïve", "façade", "日本語", "русский", "عربي", "हिंदी", "ภาษา", "12345",
             "x_y", "CamelCase", "snake_case", "ALLCAPS", "I'm", "WE'LL", "🙂", "\t", "\n", "  "]
    while len(cases) < 640:
        n = rng.randint(2, 12)
        add(rng.choice(["", " "]).join(rng.choice(words) for _ in range(n)))
    # a few long ones
    add(" ".join(cases[:60]))
    add("\n".join(cases[60:140]))
    add("9" * 1000)
    add(" " * 500 + "x")
    add("ab" * 600)
    seen, out = set(), []
    for s in cases:
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


def write_gguf(data, path):
    """A GGUF holding only the tokenizer metadata, written by the gguf package (llama.cpp's
    writer) from tokenizer.json, as convert_hf_to_gguf.py stores Llama 3's vocabulary."""
    import gguf
    j = json.load(open(os.path.join(data, "tokenizer.json"), encoding="utf-8"))
    vocab = j["model"]["vocab"]
    n = max(list(vocab.values()) + [a["id"] for a in j["added_tokens"]]) + 1
    tokens = [None] * n
    types = [gguf.TokenType.NORMAL] * n
    for text, i in vocab.items():
        tokens[i] = text
    for a in j["added_tokens"]:
        tokens[a["id"]] = a["content"]
        types[a["id"]] = gguf.TokenType.CONTROL if a["special"] else gguf.TokenType.USER_DEFINED
    merges = [m if isinstance(m, str) else " ".join(m) for m in j["model"]["merges"]]
    w = gguf.GGUFWriter(path, "llama")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("llama-bpe")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(128000)
    w.add_eos_token_id(128009)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def check_cli(herd, data, gguf_path, golden_dir):
    """End-to-end: `herd tokenize` / `herd detokenize` over the golden corpus with each of the
    three tokenizer sources. Exit 0 on success, 1 on a mismatch, 77 (skip) without data."""
    import subprocess
    if not os.path.exists(os.path.join(data, "tokenizer.json")):
        print("SKIP: %s/tokenizer.json absent (see ../shared/data/README.md)" % data)
        return 77
    cases = [json.loads(l) for l in open(os.path.join(golden_dir, "llama3.golden"),
                                         encoding="utf-8").read().splitlines()[1:]]
    plain = [c for c in cases if not c.get("parse_special")]
    special = [c for c in cases if c.get("parse_special")]
    bad = 0

    def run(args, lines):
        r = subprocess.run([herd] + args, input="".join(l + "\n" for l in lines).encode(),
                           capture_output=True)
        return r.returncode, r.stdout.decode("utf-8").split("\n")[:-1], r.stderr.decode()

    sources = [os.path.join(data, "tokenizer.json"), os.path.join(data, "tokenizer.model")]
    if gguf_path:
        sources.append(gguf_path)
    for src in sources:
        for group, extra in ((plain, []), (special, ["--parse-special"])):
            rc, out, err = run(["tokenize", "--tokenizer", src] + extra,
                               [json.dumps(c["text"]) for c in group])
            got = [json.loads(l) for l in out] if rc == 0 else []
            want = [c["ids"] for c in group]
            n_ok = sum(1 for g, w in zip(got, want) if g == w)
            print("%s tokenize %s: %d/%d" % (os.path.basename(src), " ".join(extra), n_ok,
                                              len(want)))
            bad += n_ok != len(want) or rc != 0
        rc, out, err = run(["detokenize", "--tokenizer", src], [json.dumps(c["ids"]) for c in plain])
        got = [json.loads(l) for l in out] if rc == 0 else []
        n_ok = sum(1 for g, c in zip(got, plain) if g == c["text"])
        print("%s detokenize: %d/%d" % (os.path.basename(src), n_ok, len(plain)))
        bad += n_ok != len(plain) or rc != 0
    src = sources[0]
    rc, out, _ = run(["tokenize", "--tokenizer", src, "--bos"], ['"Hello"'])
    bad += rc != 0 or json.loads(out[0])[0] != 128000
    rc, out, _ = run(["tokenize", "--tokenizer", src], ['"<|eot_id|>"'])
    bad += rc != 0 or 128009 in json.loads(out[0])
    # a lone lead byte (0xE2 is "\u00e2" in the byte-level alphabet) decodes to U+FFFD
    e2 = json.load(open(src, encoding="utf-8"))["model"]["vocab"]["\u00e2"]
    rc, out, _ = run(["detokenize", "--tokenizer", src], ["[%d]" % e2, "[]"])
    bad += rc != 0 or [json.loads(l) for l in out] != ["\ufffd", ""]
    rc, out, _ = run(["tokenize", "--tokenizer", src], ["not json"])
    bad += rc == 0
    rc, out, _ = run(["detokenize", "--tokenizer", src], ["[999999]"])
    bad += rc == 0
    rc, out, _ = run(["tokenize", "--tokenizer", "/nonexistent/tokenizer.json"], ['"x"'])
    bad += rc == 0
    print("cli checks: %s" % ("FAILED" if bad else "ok"))
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--data", default=os.path.join(root, "..", "shared", "data", "llama3"))
    ap.add_argument("--out", default=os.path.join(root, "tests", "golden", "tokenizer"))
    ap.add_argument("--write-gguf", metavar="PATH", help="only write a tokenizer GGUF")
    ap.add_argument("--check-cli", metavar="HERD", help="run the herd CLI over the corpus")
    ap.add_argument("--gguf", help="with --check-cli: the GGUF written by --write-gguf")
    a = ap.parse_args()
    if a.check_cli:
        sys.exit(check_cli(a.check_cli, a.data, a.gguf, a.out))
    if a.write_gguf:
        if not os.path.exists(os.path.join(a.data, "tokenizer.json")):
            print("SKIP: %s/tokenizer.json absent; no GGUF written" % a.data)
            return
        write_gguf(a.data, a.write_gguf)
        return
    from tokenizers import Tokenizer
    enc = load_tiktoken(os.path.join(a.data, "tokenizer.model"))
    hf = Tokenizer.from_file(os.path.join(a.data, "tokenizer.json"))
    hf.encode_special_tokens = True
    texts = corpus()
    lines, dis = [MAGIC], []
    for s in texts:
        t = enc.encode(s, allowed_special=set(), disallowed_special=())
        h = hf.encode(s, add_special_tokens=False).ids
        if t != h:
            dis.append({"text": s, "tiktoken": t, "hf": h})
        assert enc.decode_bytes(t) == s.encode("utf-8")
        case = {"text": s, "ids": t}
        if "\x00" in s:  # C strings stop at NUL: give the bytes too
            case["hex"] = s.encode("utf-8").hex()
        lines.append(json.dumps(case, ensure_ascii=True))
    # parse_special cases: tiktoken with all specials allowed (Meta's names)
    for s in ["<|begin_of_text|>hello", "a<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
              "<|eom_id|><|python_tag|>x<|finetune_right_pad_id|>", "<|begin_of_text", "x<|eot_id|>y<|eot_id|",
              "<<|eot_id|>>", "  <|eot_id|>  "]:
        t = enc.encode(s, allowed_special="all")
        lines.append(json.dumps({"text": s, "ids": t, "parse_special": True}, ensure_ascii=True))
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "llama3.golden"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(a.out, "disagreements.txt"), "w") as f:
        f.write("# herd-tokenizer-disagreements 1: cases where tiktoken (tokenizer.model) and HF\n")
        f.write("# tokenizers (tokenizer.json) give different ids; golden uses tiktoken's\n")
        for d in dis:
            f.write(json.dumps(d, ensure_ascii=True) + "\n")
    print("%d cases, %d disagreements" % (len(texts), len(dis)), file=sys.stderr)


if __name__ == "__main__":
    main()
