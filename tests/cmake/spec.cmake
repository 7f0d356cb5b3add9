# Speculative decoding and several models in one process (src/spec, issue 17): the unit
# program tests/spec/test_spec.c on the tiny random models (label spec), one CTest per part
# so a failure names its area. The CLI's greedy identity and its refusals are checked by
# tests/spec/check_cli.sh.
add_executable(test_spec ${HERD_TESTS}/spec/test_spec.c)
target_link_libraries(test_spec PRIVATE herd_core)
target_include_directories(test_spec PRIVATE ${HERD_TESTS}/unit ${PROJECT_SOURCE_DIR}/src)
foreach(part two greedy rollback vocab sampling)
  add_test(NAME spec_${part} COMMAND test_spec ${part})
  set_tests_properties(spec_${part} PROPERTIES LABELS spec FIXTURES_REQUIRED model_files
    SKIP_RETURN_CODE 77 TIMEOUT 600
    ENVIRONMENT "HERD_TEST_MODELS=${CMAKE_BINARY_DIR}/test-models;HERD_TEST_WORK=${CMAKE_BINARY_DIR}/test-models-work/spec")
endforeach()
add_test(NAME spec_cli COMMAND sh ${HERD_TESTS}/spec/check_cli.sh ${HERD_BIN}
  ${CMAKE_BINARY_DIR}/test-models)
set_tests_properties(spec_cli PROPERTIES LABELS spec FIXTURES_REQUIRED model_files TIMEOUT 600)
