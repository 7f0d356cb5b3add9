#!/usr/bin/env bash
# run_bench.sh - herd bench and llama-bench on the same GGUF files, same -t, back to back,
# plus the machine's read bandwidth and peak arithmetic (bench/kernels/membw.c), then the
# table of bench/README.md (bench/summarize.py).
#
#   bench/run_bench.sh [-m MODELS_DIR] [-H HERD] [-L LLAMA_BENCH] [-o OUT_DIR]
#                      [-t "1 2"] [-r 3] [-p 512] [-n 128] [-X "avx512"] [FILE.gguf ...]
#
# -X: herd again with each of these kernel variants forced (HERD_CPU_ISA), as extra rows
# (e.g. -X avx512 beside the default amx: what the AMX tiles change).
#
# Defaults: models from /work/benchmodels (bench/make_bench_model.py writes them), herd from
# build/herd, llama-bench from ../llama.cpp/build/bin (llama.cpp built beside the project
# from its source: cmake -DGGML_NATIVE=ON -DLLAMA_CURL=OFF). Results (raw JSON, peak RSS of
# each process, membw output, table.md) go to OUT_DIR, outside the repository.
# For each file and thread count the two engines run one right after the other, so drift
# on a shared host hits both alike; the order alternates between files.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
models=/work/benchmodels
herd=$root/build/herd
llama=$root/../llama.cpp/build/bin/llama-bench
out=/work/bench-results/$(date +%Y%m%d-%H%M%S)
threads="1 2"
reps=3
np=512
ng=128
extra=""
while getopts "m:H:L:o:t:r:p:n:X:" opt; do
  case $opt in
    m) models=$OPTARG ;; H) herd=$OPTARG ;; L) llama=$OPTARG ;; o) out=$OPTARG ;;
    t) threads=$OPTARG ;; r) reps=$OPTARG ;; p) np=$OPTARG ;; n) ng=$OPTARG ;;
    X) extra=$OPTARG ;;
    *) echo "usage: see the header of $0" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  files=("$models"/llama3-8b-q4_0.gguf "$models"/llama3-8b-q4_k_m.gguf
         "$models"/llama3-8b-q8_0.gguf "$models"/llama3-1b-q8_0.gguf
         "$models"/llama3-1b-f16.gguf)
fi
for f in "${files[@]}"; do [ -f "$f" ] || { echo "run_bench: no $f" >&2; exit 1; }; done
[ -x "$herd" ] || { echo "run_bench: no herd at $herd (cmake --build build)" >&2; exit 1; }
have_llama=1
[ -x "$llama" ] || { echo "run_bench: no llama-bench at $llama: herd only" >&2; have_llama=0; }
mkdir -p "$out"

# The machine's limits: membw from bench/kernels (read bandwidth, fp32/bf16/int8 peaks).
maxt=1
for t in $threads; do [ "$t" -gt "$maxt" ] && maxt=$t; done
if [ -f "$root/bench/kernels/membw.c" ]; then
  cc -O2 -D_GNU_SOURCE -I"$root/include" -I"$root/src" "$root/bench/kernels/membw.c" \
     "$root"/src/base/*.c -lpthread -lm -o "$out/membw"
  "$out/membw" 2048 "$maxt" | tee "$out/membw-before.txt"
fi

{
  echo "date: $(date -Is)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
  echo "cores: $(nproc)"
  echo "herd: $(git -C "$root" rev-parse --short HEAD) $("$herd" info --version 2>/dev/null || true)"
  [ $have_llama = 1 ] && echo "llama.cpp: $("$llama" --version 2>&1 | head -2 | tr '\n' ' ')"
  echo "load: $(cat /proc/loadavg)"
} > "$out/machine.txt"
cat "$out/machine.txt"

run_herd() { # file threads tag
  /usr/bin/time -f "%M" -o "$out/$3.herd.rss" \
    "$herd" bench -m "$1" -p "$np" -n "$ng" -t "$2" -r "$reps" --json \
    > "$out/$3.herd.json" 2> "$out/$3.herd.err" || { cat "$out/$3.herd.err" >&2; return 0; }
  tail -2 "$out/$3.herd.err" >&2
}
run_herd_isa() { # file threads tag isa
  HERD_CPU_ISA=$4 "$herd" bench -m "$1" -p "$np" -n "$ng" -t "$2" -r "$reps" --json \
    > "$out/$3.herd-$4.json" 2> "$out/$3.herd-$4.err" || { cat "$out/$3.herd-$4.err" >&2; return 0; }
  tail -2 "$out/$3.herd-$4.err" >&2
}
run_llama() {
  [ $have_llama = 1 ] || return 0
  /usr/bin/time -f "%M" -o "$out/$3.llama.rss" \
    "$llama" -m "$1" -p "$np" -n "$ng" -t "$2" -r "$reps" -o json \
    > "$out/$3.llama.json" 2> "$out/$3.llama.err" || { tail -5 "$out/$3.llama.err" >&2; return 0; }
}

i=0
for f in "${files[@]}"; do
  for t in $threads; do
    tag=$(basename "$f" .gguf)-t$t
    echo "== $tag" >&2
    # Page-cache the file first (both engines mmap it), so neither run pays for the disk.
    cat "$f" > /dev/null
    if [ $((i % 2)) -eq 0 ]; then run_herd "$f" "$t" "$tag"; run_llama "$f" "$t" "$tag"
    else run_llama "$f" "$t" "$tag"; run_herd "$f" "$t" "$tag"; fi
    for isa in $extra; do run_herd_isa "$f" "$t" "$tag" "$isa"; done
    i=$((i + 1))
  done
done

[ -x "$out/membw" ] && "$out/membw" 2048 "$maxt" > "$out/membw-after.txt"
python3 "$here/summarize.py" "$out" | tee "$out/table.md"
echo "results in $out" >&2
