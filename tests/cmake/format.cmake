# format/ suites beyond the unit tests: interoperability with the gguf Python package
# (llama.cpp's own gguf-py) in both directions. (The GGUF and safetensors fuzz targets are
# in fuzz.cmake with the others.)

add_executable(gguf_tool ${CMAKE_CURRENT_SOURCE_DIR}/format/gguf_tool.c)
target_link_libraries(gguf_tool PRIVATE herd_format herd_quant herd_base)
if(Python3_Interpreter_FOUND)
  add_test(NAME format_gguf_py_interop
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/format/gguf_py_check.py
            $<TARGET_FILE:gguf_tool> ${CMAKE_CURRENT_BINARY_DIR}/format_interop)
  set_tests_properties(format_gguf_py_interop PROPERTIES LABELS golden SKIP_RETURN_CODE 77)
endif()
