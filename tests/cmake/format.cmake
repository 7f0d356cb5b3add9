# format/ suites beyond the unit tests: interoperability with the gguf Python package
# (llama.cpp's own gguf-py) in both directions, and corpus replays of the fuzz targets
# (built as plain programs; -DHERD_LIBFUZZER=ON with clang builds real libFuzzer targets).
option(HERD_LIBFUZZER "Build tests/fuzz targets with -fsanitize=fuzzer (clang)" OFF)

add_executable(gguf_tool ${CMAKE_CURRENT_SOURCE_DIR}/format/gguf_tool.c)
target_link_libraries(gguf_tool PRIVATE herd_format herd_quant herd_base)
if(Python3_Interpreter_FOUND)
  add_test(NAME format_gguf_py_interop
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/format/gguf_py_check.py
            $<TARGET_FILE:gguf_tool> ${CMAKE_CURRENT_BINARY_DIR}/format_interop)
  set_tests_properties(format_gguf_py_interop PROPERTIES LABELS golden SKIP_RETURN_CODE 77)
endif()

foreach(target fuzz_gguf fuzz_safetensors)
  add_executable(${target} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/${target}.c)
  target_link_libraries(${target} PRIVATE herd_format herd_quant herd_base)
  if(HERD_LIBFUZZER)
    target_compile_definitions(${target} PRIVATE HERD_LIBFUZZER=1)
    target_compile_options(${target} PRIVATE -fsanitize=fuzzer)
    target_link_options(${target} PRIVATE -fsanitize=fuzzer)
  endif()
endforeach()
add_test(NAME fuzz_gguf_corpus COMMAND fuzz_gguf ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/gguf)
add_test(NAME fuzz_safetensors_corpus
  COMMAND fuzz_safetensors ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/safetensors)
set_tests_properties(fuzz_gguf_corpus fuzz_safetensors_corpus PROPERTIES LABELS fuzz)
