# Llama Guard 3 (issue 17): the prompt against the official templates (golden renders from
# tests/guard/make_golden.py, compared byte for byte, and as ids with the Hugging Face
# tokenizer when ../shared/data has it), the CLI on a crafted tiny model whose greedy
# answer is known, and the server flow (tests/server/test_guard.py). Label guard.
add_test(NAME guard_golden
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/guard/check_golden.py
                 ${HERD_BIN} ${CMAKE_CURRENT_SOURCE_DIR}/guard/golden
                 ${HERD_SHARED_DATA}/llama3/tokenizer.json)
set_tests_properties(guard_golden PROPERTIES LABELS "guard;golden" TIMEOUT 300)
set_tests_properties(test_chat_guard PROPERTIES LABELS "guard;unit")
if(Python3_Interpreter_FOUND)
  set(guard_work ${CMAKE_CURRENT_BINARY_DIR}/guard)
  file(MAKE_DIRECTORY ${guard_work})
  add_test(NAME guard_cli
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/guard/test_cli.py
                   --herd ${HERD_BIN} --work ${guard_work})
  # guard_cli and guard_serve write the same crafted models: one at a time
  set_tests_properties(guard_cli PROPERTIES LABELS guard SKIP_RETURN_CODE 77 TIMEOUT 300
    RESOURCE_LOCK guard_models
    ENVIRONMENT "HERD_SHARED_DATA=${HERD_SHARED_DATA};HERD_TESTS=${HERD_TESTS}")
endif()
if(Python3_Interpreter_FOUND AND TARGET herd_server)
  add_test(NAME guard_serve
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/guard/test_serve.py
                   --herd ${HERD_BIN} --work ${guard_work})
  set_tests_properties(guard_serve PROPERTIES LABELS "guard;server" SKIP_RETURN_CODE 77
    TIMEOUT 600 RESOURCE_LOCK "herd_server;guard_models"
    ENVIRONMENT "HERD_SHARED_DATA=${HERD_SHARED_DATA};HERD_TESTS=${HERD_TESTS}")
endif()
