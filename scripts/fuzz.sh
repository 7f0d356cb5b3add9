#!/usr/bin/env bash
# fuzz.sh BUILD SECONDS [NAME...] - runs libFuzzer targets built with -DHERD_LIBFUZZER=ON
# (`make fuzz` builds them and calls this). Each target fuzz_NAME runs for SECONDS from its
# seeds tests/fuzz/corpus/NAME with its dictionary tests/fuzz/dict/NAME.dict; new inputs
# go to BUILD/fuzz-work/NAME (never into the checked-in seeds), crashes to
# BUILD/fuzz-artifacts/. Prints one line per target: executions, final coverage (cov:,
# libFuzzer's count of covered edges), corpus size; exits non-zero if any target failed.
# No NAME: every target. Jobs: FUZZ_JOBS (default 1) targets run at a time.
set -uo pipefail
build=${1:?usage: fuzz.sh BUILD SECONDS [NAME...]}
secs=${2:?usage: fuzz.sh BUILD SECONDS [NAME...]}
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for f in "$root"/tests/fuzz/fuzz_*.c; do
    n=$(basename "$f" .c)
    names+=("${n#fuzz_}")
  done
fi
export HERD_SHARED_DATA=${HERD_SHARED_DATA:-$root/../shared/data}
# leaks are checked per input; a slow input (> 10 s) or > 2 GB is a finding too
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
mkdir -p "$build/fuzz-work" "$build/fuzz-artifacts" "$build/fuzz-logs"
run_one() {
  local n=$1 bin="$build/tests/fuzz_$1"
  if [ ! -x "$bin" ]; then
    echo "fuzz_$n: not built" >"$build/fuzz-logs/$n.summary"
    return 1
  fi
  mkdir -p "$build/fuzz-work/$n"
  local dict=()
  [ -f "$root/tests/fuzz/dict/$n.dict" ] && dict=(-dict="$root/tests/fuzz/dict/$n.dict")
  "$bin" -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$build/fuzz-artifacts/$n-" "${dict[@]}" \
    "$build/fuzz-work/$n" "$root/tests/fuzz/corpus/$n" >"$build/fuzz-logs/$n.log" 2>&1
  local rc=$?
  local execs cov units
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$build/fuzz-logs/$n.log" | tail -1 |
          grep -o '[0-9]*$')
  cov=$(grep -o 'cov: [0-9]*' "$build/fuzz-logs/$n.log" | tail -1 | grep -o '[0-9]*$')
  units=$(ls "$build/fuzz-work/$n" | wc -l)
  printf 'fuzz_%-16s %s  execs %-9s cov %-6s corpus %s (+ seeds)  %s\n' "$n" \
    "$([ $rc = 0 ] && echo ok || echo FAILED)" "${execs:-?}" "${cov:-?}" "$units" \
    "$([ $rc = 0 ] || echo "log: $build/fuzz-logs/$n.log")" >"$build/fuzz-logs/$n.summary"
  return $rc
}
jobs=${FUZZ_JOBS:-1}
fail=0
running=0
for n in "${names[@]}"; do
  run_one "$n" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || fail=1
    running=$((running - 1))
  fi
done
while [ "$running" -gt 0 ]; do
  wait -n || fail=1
  running=$((running - 1))
done
for n in "${names[@]}"; do
  cat "$build/fuzz-logs/$n.summary"
done
exit $fail
