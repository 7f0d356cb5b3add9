# Fuzz targets (tests/fuzz, docs/internals/fuzzing.md): one per parser or renderer that
# takes outside bytes. By default each is a plain program whose main() replays its seed
# corpus tests/fuzz/corpus/<name>, a CTest test labelled fuzz (so `make asan` replays every
# corpus under ASan + UBSan). With -DHERD_LIBFUZZER=ON (clang; `make fuzz` configures it,
# together with -fsanitize=fuzzer-no-link on all of the library for coverage) they are
# libFuzzer binaries, run by scripts/fuzz.sh.
option(HERD_LIBFUZZER "Build tests/fuzz targets with -fsanitize=fuzzer (clang)" OFF)

set(HERD_FUZZ_DIR ${CMAKE_CURRENT_SOURCE_DIR}/fuzz)

# clang at -O1 with ASan, UBSan and coverage instrumentation spends over ten minutes on
# each intrinsic-heavy SIMD kernel file; those build at -O0 in the fuzzing build (the
# source option comes after CMAKE_C_FLAGS' -O1). The kernels are only reached through the
# model targets' forward pass, whose speed this barely changes.
if(HERD_LIBFUZZER)
  set(cpu ${PROJECT_SOURCE_DIR}/src/kernels/cpu)
  file(GLOB fuzz_simd_srcs ${cpu}/avx2/*.c ${cpu}/avx512/*.c ${cpu}/neon/*.c)
  set_property(SOURCE ${fuzz_simd_srcs} DIRECTORY ${PROJECT_SOURCE_DIR}/src
               APPEND PROPERTY COMPILE_OPTIONS -O0)
endif()

# herd_fuzz(NAME LIBS...): tests/fuzz/fuzz_NAME.c, corpus tests/fuzz/corpus/NAME.
function(herd_fuzz name)
  set(target fuzz_${name})
  add_executable(${target} ${HERD_FUZZ_DIR}/${target}.c)
  target_link_libraries(${target} PRIVATE ${ARGN})
  target_include_directories(${target} PRIVATE ${HERD_FUZZ_DIR})
  if(HERD_LIBFUZZER)
    target_compile_definitions(${target} PRIVATE HERD_LIBFUZZER=1)
    target_compile_options(${target} PRIVATE -fsanitize=fuzzer)
    target_link_options(${target} PRIVATE -fsanitize=fuzzer)
  endif()
  add_test(NAME ${target}_corpus COMMAND ${target} ${HERD_FUZZ_DIR}/corpus/${name})
  set_tests_properties(${target}_corpus PROPERTIES LABELS fuzz
    ENVIRONMENT "HERD_SHARED_DATA=${HERD_SHARED_DATA}")
endfunction()

herd_fuzz(gguf herd_format herd_quant herd_base)
herd_fuzz(safetensors herd_format herd_quant herd_base)
herd_fuzz(pth herd_format herd_quant herd_base)
herd_fuzz(gguf_model herd_core)
herd_fuzz(hf_model herd_core)
herd_fuzz(tokenizer_json herd_tokenizer)
herd_fuzz(tokenizer_model herd_tokenizer)
herd_fuzz(tokenize herd_tokenizer)
herd_fuzz(chat_render herd_chat herd_tokenizer)
if(TARGET herd_server)
  herd_fuzz(chat_output herd_server herd_chat)
  target_compile_definitions(fuzz_chat_output PRIVATE HERD_FUZZ_SERVER=1)
  herd_fuzz(server_request herd_server)
  herd_fuzz(json_constraint herd_server)
else()
  herd_fuzz(chat_output herd_chat)
endif()
