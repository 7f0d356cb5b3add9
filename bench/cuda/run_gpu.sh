#!/usr/bin/env bash
# run_gpu.sh - the CUDA backend's checks and a first speed reading, on a machine with an
# NVIDIA GPU, in about 9 minutes (BUDGET seconds, default 540). bench/cuda/README.md tells
# how to prepare it (bench/cuda/prepare.sh fills .gpu/) and what each log holds.
#
# Steps, each under its own timeout, skipped when the budget is spent:
#   1. the machine: nvidia-smi, nvcc, compute-sanitizer
#   2. the programs: .gpu/bin as prepared (or, without .gpu/bin, a build in build-cuda and
#      ctest -L cuda there)
#   3. the cuda tests: test_cuda_dequant, test_cuda_ops, test_cuda_model on each test model
#   4. compute-sanitizer memcheck on test_cuda_ops and one quantized model
#   5. bench_cuda_ops (each operation on 8B shapes: products of every type at 1, 8 and 512
#      rows, the small operations, attention at positions 128 and 1024), then bench files
#      (bench/make_bench_model.py: 1B Q8_0, 8B Q4_K_M, BF16, Q8_0, Q4_0 while time lasts;
#      each deleted after its run): `herd bench --device cuda` pp512 + tg128, and tg64 of 8
#      and 32 parallel sequences; on the 1B file serve_gpu.py (8 clients at once)
#   6. compute-sanitizer racecheck on test_cuda_ops if time is left (NO_RACE=1: not)
# Logs (at most 8 files come back from $OUT): summary.txt, info.log, tests.log,
# sanitizer.log, ops.log, bench.log, build.log, profile.log (nsys, where the machine has
# it). NO_BENCH=1 leaves out step 5 (a dry run); BENCH_FILES="8b:bf16 ..." picks the files.
set -u
t0=$SECONDS
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
OUT=${OUT:-$root/gpu-out}
mkdir -p "$OUT"
BUDGET=${BUDGET:-540}
S=$OUT/summary.txt
: >"$S"
say() { echo "[$((SECONDS - t0))s] $*" | tee -a "$S"; }
left() { echo $((BUDGET - (SECONDS - t0))); }
# run LOG TIMEOUT NAME CMD...: CMD's output appended to LOG, one summary line
run() {
  local log=$1 lim=$2 name=$3
  shift 3
  if [ "$(left)" -lt 20 ]; then say "SKIP $name (budget spent)"; return 0; fi
  [ "$lim" -gt "$(left)" ] && lim=$(left)
  echo "==== $name: $*" >>"$log"
  local s=$SECONDS
  timeout -k 5 "$lim" "$@" >>"$log" 2>&1
  local rc=$?
  local what=ok
  [ $rc -eq 77 ] && what=skipped
  [ $rc -eq 124 ] && what="TIMEOUT after ${lim}s"
  [ $rc -ne 0 ] && [ $rc -ne 77 ] && [ $rc -ne 124 ] && what="FAILED rc=$rc"
  say "$what: $name ($((SECONDS - s))s)"
  return $rc
}

# ---- 1. the machine
I=$OUT/info.log
{ nvidia-smi; command -v nvcc && nvcc --version; command -v compute-sanitizer; cmake --version
  python3 --version; uname -a; nproc; free -g; df -h . /tmp; } >"$I" 2>&1
say "GPU: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1)"

# CUDA's libraries for the prepared programs, and what else they miss from .gpu/lib
cudalib=
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -e "$d/libcublas.so.13" ] && cudalib=$d && break
done
[ -n "$cudalib" ] || cudalib=$(dirname "$(find / -name libcublas.so.13 -not -path '/proc/*' \
                                   2>/dev/null | head -1)" 2>/dev/null)
export LD_LIBRARY_PATH=/tmp/herdlib:${cudalib}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
rm -rf /tmp/herdlib && mkdir -p /tmp/herdlib
BIN=
if [ -x .gpu/bin/herd ]; then
  BIN=$root/.gpu/bin
  for pass in 1 2 3 4; do
    missing=$(ldd "$BIN/herd" "$BIN/test_cuda_ops" 2>/dev/null | awk '/not found/ {print $1}' | sort -u)
    [ -z "$missing" ] && break
    for l in $missing; do [ -e ".gpu/lib/$l" ] && ln -sf "$root/.gpu/lib/$l" /tmp/herdlib/; done
  done
  { echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"; ls /tmp/herdlib; ldd "$BIN/herd"; } >>"$I" 2>&1
fi
if [ -d .gpu/whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/whl/*.whl \
    >>"$I" 2>&1 && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
[ -f .gpu/tokenizer.json ] && export HERD_SHARED_DATA=/tmp/shared-data &&
  mkdir -p /tmp/shared-data/llama3 && cp .gpu/tokenizer.json /tmp/shared-data/llama3/

# ---- 2 + 3. programs and tests
T=$OUT/tests.log
: >"$T"
MODELS=$root/.gpu/models
if [ -z "$BIN" ]; then
  say "no .gpu/bin (bench/cuda/prepare.sh not run): building here"
  nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
  run "$OUT/build.log" 300 "configure" cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release \
      -DHERD_CUDA=ON -DHERD_MPI=OFF -DCMAKE_CUDA_COMPILER="$nvcc" &&
    run "$OUT/build.log" 300 "build" cmake --build build-cuda -j"$(nproc)" &&
    BIN=$root/build-cuda &&
    cp build-cuda/tests/test_cuda_ops build-cuda/tests/test_cuda_model build-cuda/ # beside herd
  if [ -n "$BIN" ]; then
    (cd build-cuda && run "$T" 240 "ctest -L cuda" ctest -L cuda -j4 --output-on-failure)
    MODELS=$root/build-cuda
  fi
else
  run "$T" 30 "test_cuda_dequant" "$BIN/test_cuda_dequant"
  run "$T" 120 "test_cuda_ops" "$BIN/test_cuda_ops"
  for m in test-models/gqa1_tied_f32/model.gguf test-models/gqa4_tied_bf16/model.gguf \
           test-models/gqa4_tied_bf16/hf test-models/gqa8_untied_f16/model.gguf \
           test-models/headdim_sharded_f32/hf test-models/llama30_noscale_f32/model.gguf \
           cuda-models/cuda_k256_f32/model.gguf; do
    run "$T" 60 "test_cuda_model float $m" "$BIN/test_cuda_model" float "$MODELS/$m"
  done
  for m in k256 gqa2; do
    for q in q8_0 q4_0 q4_k_m q6_k; do
      run "$T" 60 "test_cuda_model quant $m-$q" "$BIN/test_cuda_model" quant \
          "$MODELS/cuda-models/$m-$q.gguf"
    done
  done
  run "$T" 60 "herd logits --device cuda" "$BIN/herd" logits --device cuda \
      -m "$MODELS/test-models/gqa1_tied_f32/model.gguf" --tokens 1,2,3,4 -o /tmp/l.bin
fi
grep -E "weights, dim|^kv |^greedy|^graph replays|FAIL|not usable|passed, " "$T" | head -150 >>"$S"

# ---- 4. sanitizers
Z=$OUT/sanitizer.log
: >"$Z"
if command -v compute-sanitizer >/dev/null && [ -n "$BIN" ] && [ -x "$BIN/test_cuda_ops" ]; then
  run "$Z" 150 "memcheck test_cuda_ops" compute-sanitizer --tool memcheck --error-exitcode 3 \
      --leak-check full "$BIN/test_cuda_ops"
  [ -f "$MODELS/cuda-models/k256-q4_k_m.gguf" ] &&
    run "$Z" 90 "memcheck test_cuda_model k256-q4_k_m" compute-sanitizer --tool memcheck \
        --error-exitcode 3 "$BIN/test_cuda_model" quant "$MODELS/cuda-models/k256-q4_k_m.gguf"
else
  say "SKIP sanitizers (no compute-sanitizer or no programs)"
fi
grep -E "ERROR SUMMARY|========= (Invalid|Uninit|Race|Barrier|Program hit)" "$Z" | sort |
  uniq -c | head -20 >>"$S"

# ---- 5. speed: each operation on 8B shapes, then whole models
if [ -n "$BIN" ] && [ -x "$BIN/bench_cuda_ops" ]; then
  run "$OUT/ops.log" 150 "bench_cuda_ops" "$BIN/bench_cuda_ops"
  grep -E "^\| (matmul|rmsnorm|add|swiglu|rope|kv_store|attention)" "$OUT/ops.log" >>"$S"
fi
B=$OUT/bench.log
: >"$B"
HERD=${BIN:+$BIN/herd}
W=/tmp/benchmodels
mkdir -p "$W"
tok=${HERD_SHARED_DATA:-$root/../shared/data}/llama3/tokenizer.json
bench() { # shape type: pp512 + tg128, then the aggregate of 8 and 32 parallel sequences
  local f=$W/llama3-$1-$2.gguf
  [ -f "$f" ] || run "$B" 300 "make $1 $2" sh -c "python3 bench/make_bench_model.py --shape $1 \
                   --type $2 --tokenizer $tok -o $f 2>&1 | tr '\r' '\n' | tail -2" || return 0
  run "$B" 120 "herd bench $1 $2" "$HERD" bench -m "$f" --device cuda -p 512 -n 128 -r 3
  for par in 8 32; do
    run "$B" 90 "herd bench $1 $2 x$par" "$HERD" bench -m "$f" --device cuda -p 0 -n 64 \
        -P $par -r 2
  done
  if [ -n "$PROFILE" ] && [ "$(left)" -gt 120 ]; then
    run "$OUT/profile.log" 90 "nsys $1 $2 tg" nsys profile -o /tmp/prof-$1-$2 --force-overwrite true \
        --stats=true "$HERD" bench -m "$f" --device cuda -p 512 -n 64 -r 1
    PROFILE=
  fi
  if [ "$1" = 1b ]; then # the server on the GPU: 8 clients at once, answers must agree
    run "$B" 120 "serve $1 $2" python3 bench/cuda/serve_gpu.py "$HERD" "$f" --parallel 8
    grep "^serve --device" "$B" | tail -1 >>"$S"
  fi
  rm -f "$f" # disk: the 8B files are 5-16 GB
}
PROFILE=$(command -v nsys || true)
if [ -n "${NO_BENCH:-}" ]; then
  say "SKIP bench (NO_BENCH set)"
elif [ -n "$HERD" ] && [ -f "$tok" ] && python3 -c "import gguf" 2>/dev/null; then
  for st in ${BENCH_FILES:-1b:q8_0 8b:q4_k_m 8b:bf16 8b:q8_0 8b:q4_0}; do
    [ "$(left)" -gt 90 ] && bench "${st%%:*}" "${st##*:}"
  done
else
  say "SKIP bench (herd, tokenizer.json or the gguf package missing)"
fi
grep -E "^\| llama" "$B" >>"$S"

# racecheck last: slow, and the least likely to find something the tests did not
if [ -z "${NO_RACE:-}" ] && command -v compute-sanitizer >/dev/null && [ -n "$BIN" ] &&
   [ "$(left)" -gt 60 ]; then
  run "$Z" $(($(left) - 10)) "racecheck test_cuda_ops" compute-sanitizer --tool racecheck \
      --error-exitcode 3 "$BIN/test_cuda_ops"
  grep -E "RACECHECK SUMMARY|ERROR SUMMARY" "$Z" | tail -2 >>"$S"
fi
say "done in $((SECONDS - t0))s"
