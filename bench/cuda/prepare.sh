#!/usr/bin/env bash
# prepare.sh - run HERE (any machine with the CUDA toolkit; no GPU needed) before handing
# bench/cuda/run_gpu.sh to a GPU machine. Fills .gpu/ (git-ignored through
# .git/info/exclude) with what that machine may lack, about 40 MB:
#   .gpu/bin/      herd, the cuda test programs and bench_cuda_ops, built with -DHERD_CUDA=ON
#                  -DHERD_MPI=OFF
#   .gpu/lib/      the shared libraries they link that are not the C/C++ runtime or CUDA's
#                  (run_gpu.sh links in only those the machine turns out to miss)
#   .gpu/models/   the cuda suite's test models (tiny, float and quantized copies)
#   .gpu/whl/      the gguf Python package (bench/make_bench_model.py needs it; the GPU
#                  image has numpy, pyyaml and tqdm but not gguf)
#   .gpu/tokenizer.json   the Llama 3 tokenizer, for the bench files
# and packs it into .gpu.tar.xz (also git-ignored). Then:
#   run(command="tar xJf .gpu.tar.xz && bash bench/cuda/run_gpu.sh", carry=[".gpu.tar.xz"])
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
nvcc=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null || true)
[ -n "$nvcc" ] || { echo "prepare.sh: no nvcc: install the CUDA toolkit"; exit 1; }
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
grep -qx '/.gpu/' "$exclude" 2>/dev/null || echo '/.gpu/' >>"$exclude"

b=build-gpu
cmake -S . -B $b -DCMAKE_BUILD_TYPE=Release -DHERD_CUDA=ON -DHERD_MPI=OFF \
      -DCMAKE_CUDA_COMPILER="$nvcc" >/dev/null
cmake --build $b -j"$(nproc)"
# the suite's fixtures write the models (the tests themselves skip here without a GPU)
(cd $b && ctest -L cuda -j"$(nproc)" >/dev/null || true)

rm -rf .gpu
mkdir -p .gpu/bin .gpu/lib .gpu/models .gpu/whl
cp $b/herd $b/tests/test_cuda_ops $b/tests/test_cuda_model $b/tests/test_cuda_dequant \
   $b/tests/bench_cuda_ops .gpu/bin/
for m in gqa1_tied_f32/model.gguf gqa4_tied_bf16/model.gguf gqa4_tied_bf16/hf \
         gqa8_untied_f16/model.gguf headdim_sharded_f32/hf llama30_noscale_f32/model.gguf \
         gqa2_untied_f32/model.gguf; do
  mkdir -p ".gpu/models/test-models/$(dirname $m)"
  cp -r "$b/test-models/$m" ".gpu/models/test-models/$m"
done
mkdir -p .gpu/models/cuda-models/cuda_k256_f32
cp $b/cuda-models/cuda_k256_f32/model.gguf .gpu/models/cuda-models/cuda_k256_f32/
cp $b/cuda-models/*.gguf .gpu/models/cuda-models/
ldd $b/herd $b/tests/test_cuda_ops | awk '/=> \// {print $3}' | sort -u | while read -r lib; do
  case $(basename "$lib") in
    libc.so*|libm.so*|libdl.so*|librt.so*|libpthread.so*|ld-linux*|libstdc++*|libgcc_s*) ;;
    libcuda*|libcublas*|libcudart*) ;;
    *) cp -L "$lib" .gpu/lib/ ;;
  esac
done
python3 -m pip download -q --no-deps --only-binary=:all: -d .gpu/whl \
  "gguf==$(python3 -c 'import importlib.metadata as m; print(m.version("gguf"))')"
tok=${HERD_SHARED_DATA:-$root/../shared/data}/llama3/tokenizer.json
cp "$tok" .gpu/tokenizer.json
# the device tool carries at most 64 MiB: stripped and packed it is about 26 MB
strip --strip-unneeded .gpu/bin/* .gpu/lib/*.so* 2>/dev/null || true
grep -qx '/.gpu.tar.xz' "$exclude" 2>/dev/null || echo '/.gpu.tar.xz' >>"$exclude"
tar -cf - .gpu | xz -T0 -1 >.gpu.tar.xz
du -sh .gpu .gpu.tar.xz
echo 'prepare.sh: now run(command="tar xJf .gpu.tar.xz && bash bench/cuda/run_gpu.sh",'
echo '            carry=[".gpu.tar.xz"], timeout_s=600)'
