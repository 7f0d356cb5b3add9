#!/bin/sh
# meta_speed.sh OUT_DIR MODEL... - decode (tg) and prefill (pp) tokens/s of each model at -t 2
# (`herd bench -p 16 -n 4 -r 1 -t 2`), with the machine's read bandwidth
# (bench/kernels/membw.c: 1 GiB, 2 threads) taken right before and after, all under
# /work/bigmem.lock so no other big benchmark overlaps. Prints each model's table and the
# share of the bandwidth wall its decode reaches: tg t/s x model bytes / membw read GB/s.
set -eu
out=$1
shift
herd=${HERD:-build/herd}
membw=${MEMBW:-build/membw}
mkdir -p "$out"
flock /work/bigmem.lock sh -c "
  '$membw' 1024 2 > '$out/membw-before.txt'
  for m in $*; do
    '$herd' bench -m \"\$m\" -p 16 -n 4 -r 1 -t 2 > '$out/'\$(basename \"\$m\").txt 2>&1
  done
  '$membw' 1024 2 > '$out/membw-after.txt'"
grep -iE "read|GB/s" "$out/membw-before.txt" | head -3
for m in "$@"; do
    echo "== $(basename "$m")"
    grep -E "^\| |load" "$out/$(basename "$m").txt" || true
done
grep -iE "read|GB/s" "$out/membw-after.txt" | head -3
