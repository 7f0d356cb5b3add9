# libherd as a library (docs/internals/library.md): programs built against include/herd.h
# alone. test_server_lifecycle starts and stops the server twice in one process on
# ephemeral ports, stopping it with a stream open (labels unit, server; it needs the model
# suite's tiny model, so the model_files fixture).
if(TARGET herd_server)
  add_executable(test_server_lifecycle ${HERD_TESTS}/lib/test_server_lifecycle.c)
  target_link_libraries(test_server_lifecycle PRIVATE herd_server herd)
  target_include_directories(test_server_lifecycle PRIVATE ${HERD_TESTS}/unit)
  add_test(NAME test_server_lifecycle COMMAND test_server_lifecycle)
  set_tests_properties(test_server_lifecycle PROPERTIES LABELS "unit;server"
    SKIP_RETURN_CODE 77 TIMEOUT 120
    ENVIRONMENT "HERD_TEST_MODEL=${CMAKE_BINARY_DIR}/test-models/gqa2_untied_f32/hf")
  if(Python3_Interpreter_FOUND)
    set_tests_properties(test_server_lifecycle PROPERTIES FIXTURES_REQUIRED model_files)
  endif()
endif()
