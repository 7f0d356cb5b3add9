#!/bin/sh
# test_quantize_cli.sh HERD MODELS WORK - `herd quantize` from the command line: an HF folder
# to Q4_K_M and a GGUF to Q8_0 succeed, print progress on stderr and nothing on stdout, and
# `herd info` reads the results; a bad type or a missing input fails with a one-line reason.
herd=$1 models=$2 work=$3
[ -f "$models/gqa2_untied_f32/model.gguf" ] || { echo "skip: no tiny models"; exit 77; }
mkdir -p "$work"
pass=0 fail=0
ok() { if [ "$1" = 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $2"; fi; }

"$herd" quantize "$models/gqa2_untied_f32/hf" "$work/a.gguf" --type q4_k_m -t 2 \
    >"$work/a.out" 2>"$work/a.err"
ok $? "quantize hf -> q4_k_m"
[ ! -s "$work/a.out" ]; ok $? "stdout is empty"
grep -q "wrote" "$work/a.err"; ok $? "progress/summary on stderr"
"$herd" info "$work/a.gguf" >/dev/null 2>&1; ok $? "herd info reads the q4_k_m file"

"$herd" quantize "$models/gqa8_untied_f16/model.gguf" "$work/b.gguf" --type q8_0 \
    >/dev/null 2>&1
ok $? "quantize gguf -> q8_0"
"$herd" info "$work/b.gguf" >/dev/null 2>&1; ok $? "herd info reads the q8_0 file"

"$herd" quantize "$models/gqa8_untied_f16/model.gguf" "$work/c.gguf" --type q9_9 \
    >/dev/null 2>"$work/c.err"
[ $? -ne 0 ] && [ "$(wc -l <"$work/c.err")" -eq 1 ]; ok $? "bad type: one-line failure"
[ ! -e "$work/c.gguf" ]; ok $? "bad type: no output"
"$herd" quantize "$work/missing.gguf" "$work/d.gguf" --type q8_0 >/dev/null 2>&1
[ $? -ne 0 ]; ok $? "missing input fails"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
