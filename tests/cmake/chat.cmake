# Chat suite (issue 4): golden renders of the official Llama 3.1/3.2 templates, one CTest
# per conversation in tests/golden/chat/MANIFEST (made by scripts/golden_chat.py), and the
# end-to-end `herd run` test in a real terminal (a pseudo-terminal).
set(chat_golden ${CMAKE_CURRENT_SOURCE_DIR}/golden/chat)
file(STRINGS ${chat_golden}/MANIFEST chat_cases)
list(POP_FRONT chat_cases chat_magic)
if(NOT chat_magic STREQUAL "herd-golden-chat 1")
  message(FATAL_ERROR "tests/golden/chat/MANIFEST: expected 'herd-golden-chat 1', got '${chat_magic}'")
endif()
set(chat_work ${CMAKE_CURRENT_BINARY_DIR}/chat)
file(MAKE_DIRECTORY ${chat_work})
foreach(line ${chat_cases})
  string(REPLACE " " ";" fields "${line}")
  list(GET fields 0 name)
  list(GET fields 1 tmpl)
  list(GET fields 2 outcome)
  add_test(NAME chat_render_${name}
           COMMAND ${CMAKE_COMMAND} -DHERD=${HERD_BIN} -DDIR=${chat_golden} -DNAME=${name}
                   -DTEMPLATE=${tmpl} -DOUTCOME=${outcome} -DWORK=${chat_work}
                   -P ${chat_golden}/check_render.cmake)
  set_tests_properties(chat_render_${name} PROPERTIES LABELS golden)
endforeach()

add_test(NAME chat_run_pty
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/e2e/run_pty.py ${HERD_BIN}
                 ${CMAKE_CURRENT_BINARY_DIR}/chat)
set_tests_properties(chat_run_pty PROPERTIES LABELS e2e SKIP_RETURN_CODE 77 TIMEOUT 300
  ENVIRONMENT "HERD_SHARED_DATA=${HERD_SHARED_DATA};HERD_TESTS=${HERD_TESTS}")
