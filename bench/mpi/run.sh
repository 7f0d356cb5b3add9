#!/bin/sh
# bench/mpi/run.sh - herd over MPI on one machine: tokens/s and per-rank resident memory for
# 1, 2 and 4 ranks (herd bench under mpirun; HERD_DIST_REPORT=1 prints each rank's VmRSS
# with the model loaded), then the per-layer all-reduce latency (bench/mpi/allreduce.c).
#
# Usage: bench/mpi/run.sh BUILD_DIR MODEL.gguf [ranks...]     (default ranks: 1 2 4)
# A 1B-shaped model: python3 bench/make_bench_model.py --shape 1b --type q8_0 \
#        --tokenizer ../shared/data/llama3/tokenizer.json -o /tmp/b1b_q8.gguf
# Threads: the machine's cores are divided among the ranks (one thread per rank at least).
set -e
BUILD=$1
MODEL=$2
shift 2 || { echo "usage: $0 BUILD_DIR MODEL [ranks...]"; exit 2; }
RANKS=${*:-1 2 4}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 HERD_DIST_REPORT=1
CORES=$(nproc)
for n in $RANKS; do
    t=$((CORES / n))
    [ "$t" -ge 1 ] || t=1
    echo "== $n rank(s), $t thread(s) each"
    mpirun --oversubscribe -np "$n" "$BUILD/herd" bench -m "$MODEL" -p 64 -n 32 -r 2 -t "$t" \
        2>&1 | grep -E "ranks =|resident|pp64|tg32|VmRSS"
done
AR=$(mktemp /tmp/herd-allreduce.XXXXXX)
mpicc -O2 -Iinclude -Isrc bench/mpi/allreduce.c "$BUILD/src/libherd_dist.a" \
    "$BUILD/src/libherd_base.a" -lm -lpthread -o "$AR"
for n in 2 4; do
    echo "== all-reduce, $n ranks"
    mpirun --oversubscribe -np "$n" "$AR" 2000
done
rm -f "$AR"
