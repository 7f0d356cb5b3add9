# MPI suite (label mpi): `mpirun -np N herd ...` must give the single-process answer: greedy
# ids identical and logits within float tolerance, for N = 1, 2, 3, 4, 6, 8 (oversubscribed
# on small machines), pure tensor parallel, pure pipeline and TP x PP mixes, on tiny models
# of three shapes (tests/mpi/make_mpi_models.py) in GGUF and HF, f32, bf16, q8_0 and
# q4_k_m (herd quantize); plus the failure cases (a model missing on one rank, a rank that
# dies), a split that cannot work and ranks of different wire protocol versions. Only in an
# MPI build with mpirun present; the tests run one at a time (RUN_SERIAL) because each
# starts up to 8 processes.
if(NOT HERD_HAVE_MPI OR NOT Python3_Interpreter_FOUND)
  message(STATUS "mpi tests: skipped (MPI build ${HERD_HAVE_MPI})")
  return()
endif()
find_program(HERD_MPIRUN mpirun)
if(NOT HERD_MPIRUN)
  message(STATUS "mpi tests: no mpirun, skipped")
  return()
endif()

set(MPI_MODELS ${CMAKE_BINARY_DIR}/mpi-models)
set(MPI_WORK ${CMAKE_BINARY_DIR}/mpi-work)
set(CHECK_MPI ${Python3_EXECUTABLE} ${HERD_TESTS}/mpi/check_mpi.py)
# Root in containers: OpenMPI refuses to start without these.
set(MPI_ENV "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
# OpenMPI keeps its own allocations until exit (from plugins it has unloaded by then, so no
# suppression file can name them): under ASan the MPI runs check memory errors, not leaks.
# herd's own leaks are checked by every single-process test.
if(HERD_SANITIZE)
  list(APPEND MPI_ENV "ASAN_OPTIONS=detect_leaks=0")
endif()

add_test(NAME mpi_make
  COMMAND sh -c "${Python3_EXECUTABLE} ${HERD_TESTS}/mpi/make_mpi_models.py ${MPI_MODELS} && \
${HERD_BIN} quantize ${MPI_MODELS}/mpi_a_f32/model.gguf ${MPI_MODELS}/a_q8_0.gguf --type q8_0 && \
${HERD_BIN} quantize ${MPI_MODELS}/mpi_k_f32/model.gguf ${MPI_MODELS}/k_q4_k_m.gguf --type q4_k_m")
set_tests_properties(mpi_make PROPERTIES FIXTURES_SETUP mpi_models LABELS mpi)

# mpi_equal(NAME MODEL NP EXPECT_TPxPP [extra check_mpi.py options])
function(mpi_equal name model np expect)
  set(exp)
  if(NOT expect STREQUAL "-")
    set(exp --expect ${expect})
  endif()
  add_test(NAME mpi_${name}
    COMMAND ${CHECK_MPI} equal --herd ${HERD_BIN} --model ${MPI_MODELS}/${model} --np ${np}
            ${exp} --work ${MPI_WORK}/${name} ${ARGN})
  set_tests_properties(mpi_${name} PROPERTIES LABELS mpi FIXTURES_REQUIRED mpi_models
    SKIP_RETURN_CODE 77 RUN_SERIAL TRUE TIMEOUT 300 ENVIRONMENT "${MPI_ENV}")
endfunction()

set(quant --kv f32 --tie 1e-3)
mpi_equal(np1_a_f32_gguf mpi_a_f32/model.gguf 1 -)
mpi_equal(np2_a_f32_gguf mpi_a_f32/model.gguf 2 2x1)
mpi_equal(np4_a_f32_hf mpi_a_f32/hf 4 4x1 --repeat)
mpi_equal(np8_a_f32_gguf mpi_a_f32/model.gguf 8 4x2)
mpi_equal(np2_a_q8_0 a_q8_0.gguf 2 2x1 ${quant})
mpi_equal(np4_a_q8_0_tp2_pp2 a_q8_0.gguf 4 2x2 --tp 2 --pp 2 --repeat ${quant})
mpi_equal(np8_a_q8_0 a_q8_0.gguf 8 4x2 ${quant})
mpi_equal(np3_b_bf16_hf mpi_b_bf16/hf 3 3x1)
mpi_equal(np6_b_bf16_gguf mpi_b_bf16/model.gguf 6 3x2)
mpi_equal(np4_b_bf16_hf_pp4 mpi_b_bf16/hf 4 1x4)
mpi_equal(np2_k_q4_k_m k_q4_k_m.gguf 2 2x1 ${quant})
mpi_equal(np4_k_q4_k_m k_q4_k_m.gguf 4 2x2 ${quant})

# Ranks sharing one GPU (a CUDA build; on the CPU emulator in a HERD_CUDA_EMU build):
# activations cross between ranks through the host, the answer is one process's. Skipped
# (77) where no GPU is usable.
if(HERD_CUDA OR HERD_CUDA_EMU)
  set(cuda_dev --device cuda --tie 1e-3)
  mpi_equal(np2_cuda_a_f32 mpi_a_f32/model.gguf 2 2x1 ${cuda_dev})
  # quantized: a TP rank rounds its activation slice at other block edges than one process
  mpi_equal(np2_cuda_k_q4_k_m k_q4_k_m.gguf 2 2x1 --kv f32 --tol 1e-3 ${cuda_dev})
  set_tests_properties(mpi_np2_cuda_a_f32 mpi_np2_cuda_k_q4_k_m PROPERTIES LABELS "mpi;cuda")
endif()

foreach(mode missing kill)
  add_test(NAME mpi_fail_${mode}
    COMMAND ${CHECK_MPI} ${mode} --herd ${HERD_BIN} --model ${MPI_MODELS}/a_q8_0.gguf
            --work ${MPI_WORK}/fail_${mode})
  set_tests_properties(mpi_fail_${mode} PROPERTIES LABELS mpi FIXTURES_REQUIRED mpi_models
    SKIP_RETURN_CODE 77 RUN_SERIAL TRUE TIMEOUT 300 ENVIRONMENT "${MPI_ENV}")
endforeach()

# A forced split the shapes do not allow: one clear line, no hang (4 KV heads, HERD_TP=3).
add_test(NAME mpi_bad_split
  COMMAND ${CMAKE_COMMAND} -E env HERD_TP=3
          ${Python3_EXECUTABLE} ${HERD_TESTS}/tools/expect_fail.py "KV heads do not divide"
          -- ${HERD_MPIRUN} --oversubscribe -np 3 ${HERD_BIN} logits
          -m ${MPI_MODELS}/mpi_a_f32/model.gguf --tokens 1,2 -o ${MPI_WORK}/bad_split.bin)
set_tests_properties(mpi_bad_split PROPERTIES LABELS mpi FIXTURES_REQUIRED mpi_models
  RUN_SERIAL TRUE TIMEOUT 120 ENVIRONMENT "${MPI_ENV}")

# Ranks of different herd builds (HERD_DIST_TEST_VERSION=1: rank 1 claims the next wire
# protocol version): rank 0 names the mismatch in one line and every rank exits 1.
add_test(NAME mpi_bad_version
  COMMAND ${CMAKE_COMMAND} -E env HERD_DIST_TEST_VERSION=1
          ${Python3_EXECUTABLE} ${HERD_TESTS}/tools/expect_fail.py
          "rank 1 speaks herd wire protocol version"
          -- ${HERD_MPIRUN} --oversubscribe -np 2 ${HERD_BIN} logits
          -m ${MPI_MODELS}/mpi_a_f32/model.gguf --tokens 1,2 -o ${MPI_WORK}/bad_version.bin)
set_tests_properties(mpi_bad_version PROPERTIES LABELS mpi FIXTURES_REQUIRED mpi_models
  RUN_SERIAL TRUE TIMEOUT 120 ENVIRONMENT "${MPI_ENV}")
