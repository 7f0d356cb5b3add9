#!/bin/sh
# meta_load.sh OUT_DIR MODEL... - load time and peak resident memory of each model folder
# (Meta .pth shards, Hugging Face safetensors, FP8): `herd bench -p 16 -n 2 -r 1 -t 2`
# under /usr/bin/time -v, one model at a time under /work/bigmem.lock. Writes OUT_DIR/<name>.txt
# and prints herd's load / first-token line and time's peak RSS for each.
set -eu
out=$1
shift
herd=${HERD:-build/herd}
mkdir -p "$out"
for m in "$@"; do
    name=$(basename "$m")
    flock /work/bigmem.lock /usr/bin/time -v "$herd" bench -m "$m" -p 16 -n 2 -r 1 -t 2 \
        >"$out/$name.txt" 2>&1 || echo "$name: failed (see $out/$name.txt)"
    echo "== $name"
    grep -E "herd bench: llama|resident|Maximum resident|Elapsed \(wall" "$out/$name.txt" || true
done
