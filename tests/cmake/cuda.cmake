# CUDA suite (HERD_CUDA=ON builds only; label cuda): the CUDA backend against the CPU
# backend, operation by operation on random inputs (test_cuda_ops) and on whole models
# (test_cuda_model: the suite's tiny models in F32/BF16/F16, and copies quantized by
# `herd quantize`, including one with rows of 256 so that Q4_K/Q6_K tensors occur).
# Without a usable GPU every test prints why and is skipped (exit 77): CPU-only CI stays
# green. tests/cuda/test_cuda_*.c say what is compared and how closely.
if(NOT HERD_CUDA AND NOT HERD_CUDA_EMU)
  return()
endif()

foreach(t test_cuda_ops test_cuda_model)
  add_executable(${t} ${HERD_TESTS}/cuda/${t}.c)
  target_link_libraries(${t} PRIVATE herd_core)
  target_include_directories(${t} PRIVATE ${HERD_TESTS}/unit)
endforeach()
add_test(NAME cuda_ops COMMAND test_cuda_ops)
# Not a test: each operation's time on 8B shapes (bench/cuda/README.md), built beside them.
add_executable(bench_cuda_ops ${PROJECT_SOURCE_DIR}/bench/cuda/bench_cuda_ops.c)
target_link_libraries(bench_cuda_ops PRIVATE herd_core)
if(HERD_CUDA)
  # The weight layouts as the kernels decode them, checked on the host: needs no GPU.
  add_executable(test_cuda_dequant ${HERD_TESTS}/cuda/test_cuda_dequant.cu)
  set_target_properties(test_cuda_dequant PROPERTIES COMPILE_OPTIONS ""
    CUDA_ARCHITECTURES 90-real)
  target_compile_options(test_cuda_dequant PRIVATE -std=c++20 --Werror=all-warnings
    -Xcompiler=-Wall,-Wextra,-Werror,-Wno-unused-parameter,-ffp-contract=off)
  target_link_libraries(test_cuda_dequant PRIVATE herd_core)
  target_include_directories(test_cuda_dequant PRIVATE ${HERD_TESTS}/unit
                             ${PROJECT_SOURCE_DIR}/src/kernels/cuda)
  add_test(NAME cuda_dequant COMMAND test_cuda_dequant)
  set_tests_properties(cuda_dequant PROPERTIES LABELS cuda)
endif()
set_tests_properties(cuda_ops PROPERTIES LABELS cuda SKIP_RETURN_CODE 77 TIMEOUT 300)

if(NOT Python3_Interpreter_FOUND)
  return()
endif()
set(CUDA_MODELS ${CMAKE_BINARY_DIR}/cuda-models)
set(TEST_MODELS ${CMAKE_BINARY_DIR}/test-models) # model.cmake's model_files fixture
add_test(NAME cuda_models_make
  COMMAND ${Python3_EXECUTABLE} ${HERD_TESTS}/cuda/make_models.py ${CUDA_MODELS})
set_tests_properties(cuda_models_make PROPERTIES FIXTURES_SETUP cuda_models LABELS cuda)

# Float weights as the files hold them: both RoPE layouts (GGUF interleaved, HF half),
# GQA ratios 1..8, head_dim 24, tied and untied output.
foreach(m "gqa1_tied_f32/model.gguf" "gqa4_tied_bf16/model.gguf" "gqa4_tied_bf16/hf"
          "gqa8_untied_f16/model.gguf" "headdim_sharded_f32/hf" "llama30_noscale_f32/model.gguf")
  string(REGEX REPLACE "/.*" "" cfg ${m})
  string(REGEX REPLACE ".*/(model\\.)?" "" fmt ${m})
  add_test(NAME cuda_model_${cfg}_${fmt} COMMAND test_cuda_model float ${TEST_MODELS}/${m})
  set_tests_properties(cuda_model_${cfg}_${fmt} PROPERTIES LABELS cuda
    FIXTURES_REQUIRED model_files SKIP_RETURN_CODE 77 TIMEOUT 300)
endforeach()
add_test(NAME cuda_model_k256_f32 COMMAND test_cuda_model float
         ${CUDA_MODELS}/cuda_k256_f32/model.gguf)
set_tests_properties(cuda_model_k256_f32 PROPERTIES LABELS cuda
  FIXTURES_REQUIRED cuda_models SKIP_RETURN_CODE 77 TIMEOUT 300)

# Quantized copies: of the 256-wide model (Q8_0, Q4_0 + Q6_K output, Q4_K + Q6_K, Q6_K) and
# of a 64-wide one (K-quant rows fall back to Q5_0 / Q8_0).
foreach(src "k256:${CUDA_MODELS}/cuda_k256_f32/model.gguf:cuda_models"
            "gqa2:${TEST_MODELS}/gqa2_untied_f32/model.gguf:model_files")
  string(REPLACE ":" ";" parts ${src})
  list(GET parts 0 name)
  list(GET parts 1 path)
  list(GET parts 2 fixture)
  foreach(type q8_0 q4_0 q4_k_m q6_k)
    set(out ${CUDA_MODELS}/${name}-${type}.gguf)
    add_test(NAME cuda_quantize_${name}_${type}
      COMMAND ${HERD_BIN} quantize ${path} ${out} --type ${type})
    set_tests_properties(cuda_quantize_${name}_${type} PROPERTIES LABELS cuda
      FIXTURES_REQUIRED ${fixture} FIXTURES_SETUP cuda_q_${name}_${type})
    add_test(NAME cuda_model_${name}_${type} COMMAND test_cuda_model quant ${out})
    set_tests_properties(cuda_model_${name}_${type} PROPERTIES LABELS cuda
      FIXTURES_REQUIRED cuda_q_${name}_${type} SKIP_RETURN_CODE 77 TIMEOUT 300)
  endforeach()
endforeach()
