# Server suites (issue 6). server_json: the OpenAI JSON layer without a model (unit).
# server_openai: `herd serve` on a tiny random model, driven by the official openai Python
# client, curl and raw sockets (malformed requests). server_load: >= 32 concurrent streaming
# clients for 60 s, some hanging up mid-stream (label slow). server_prompt: the chat prompt
# is `herd render --ids`'s and the official template's id for id (numbers like 1.0 and big
# integers kept as written), deep JSON is a 400, a prompt past the context is refused before
# it is tokenized. server_robust: abuse, shutdown and operations (issue 16: 413 for chunked
# bodies, connection floods, NUL text, strict JSON, unknown models, SIGTERM grace, CORS,
# request ids, access log, /tokenize). server_load_sigterm: 64 clients with hang-ups, then
# SIGTERM mid-load: every client completes or gets a final error event and [DONE].
# server_stream_tools: with tools, content streams and calls stream as delta.tool_calls equal
# to the non-stream answer (openai client, langchain-openai); server_toolstream (unit): the
# text rules, fed byte by byte. server_structured: response_format json_schema and named
# tool calls held to JSON Schema (random schemas checked with jsonschema, pydantic parse()).
# server_embed: /v1/embeddings against the numpy reference (scripts/reference_llama.py) and
# through the openai client (float, base64, lists, token arrays, errors). server_choices:
# n > 1 (one prefill, seeds seed + i, interleaved streams) and /v1/completions prompt lists.
# The model tests write their models with tests/models/make_model.py into the build tree; they
# skip (77) when Python's openai/numpy/gguf (server_prompt: jinja2,
# tokenizers) are missing.
if(TARGET herd_server)
  add_executable(test_server_json ${CMAKE_CURRENT_SOURCE_DIR}/server/test_server_json.c)
  target_link_libraries(test_server_json PRIVATE herd_server)
  target_include_directories(test_server_json PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/unit)
  add_test(NAME server_json COMMAND test_server_json)
  set_tests_properties(server_json PROPERTIES LABELS unit)
  add_executable(test_toolstream ${CMAKE_CURRENT_SOURCE_DIR}/server/test_toolstream.c)
  target_link_libraries(test_toolstream PRIVATE herd_server)
  target_include_directories(test_toolstream PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/unit)
  add_test(NAME server_toolstream COMMAND test_toolstream)
  set_tests_properties(server_toolstream PROPERTIES LABELS "unit;server")

  if(Python3_Interpreter_FOUND)
    set(server_work ${CMAKE_CURRENT_BINARY_DIR}/server)
    file(MAKE_DIRECTORY ${server_work})
    set(server_env "HERD_SHARED_DATA=${HERD_SHARED_DATA};HERD_TESTS=${HERD_TESTS}")
    add_test(NAME server_openai
             COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/server/test_openai.py
                     --herd ${HERD_BIN} --work ${server_work})
    set_tests_properties(server_openai PROPERTIES LABELS server SKIP_RETURN_CODE 77
                         TIMEOUT 600 RESOURCE_LOCK herd_server ENVIRONMENT "${server_env}")
    add_test(NAME server_prompt
             COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/server/test_prompt.py
                     --herd ${HERD_BIN} --work ${server_work})
    set_tests_properties(server_prompt PROPERTIES LABELS server SKIP_RETURN_CODE 77
                         TIMEOUT 600 RESOURCE_LOCK herd_server ENVIRONMENT "${server_env}")
    add_test(NAME server_stream_tools
             COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/server/test_stream_tools.py
                     --herd ${HERD_BIN} --work ${server_work})
    set_tests_properties(server_stream_tools PROPERTIES LABELS server SKIP_RETURN_CODE 77
                         TIMEOUT 600 RESOURCE_LOCK herd_server ENVIRONMENT "${server_env}")
    # random schemas: each is a few hundred constrained tokens; fewer under the sanitizers
    if(HERD_SANITIZE)
      set(n_schemas 4)
    else()
      set(n_schemas 16)
    endif()
    add_test(NAME server_structured
             COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/server/test_structured.py
                     --herd ${HERD_BIN} --work ${server_work} --schemas ${n_schemas})
    set_tests_properties(server_structured PROPERTIES LABELS server SKIP_RETURN_CODE 77
                         TIMEOUT 600 RESOURCE_LOCK herd_server ENVIRONMENT "${server_env}")
    add_test(NAME server_robust
             COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/server/test_robust.py
                     --herd ${HERD_BIN} --work ${server_work})
    set_tests_properties(server_robust PROPERTIES LABELS server SKIP_RETURN_CODE 77
                         TIMEOUT 600 RESOURCE_LOCK herd_server ENVIRONMENT "${server_env}")
    add_test(NAME server_embed
             COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/server/test_embed.py
                     --herd ${HERD_BIN} --work ${server_work})
    set_tests_properties(server_embed PROPERTIES LABELS server SKIP_RETURN_CODE 77
                         TIMEOUT 600 RESOURCE_LOCK herd_server ENVIRONMENT "${server_env}")
    add_test(NAME server_choices
             COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/server/test_choices.py
                     --herd ${HERD_BIN} --work ${server_work})
    set_tests_properties(server_choices PROPERTIES LABELS server SKIP_RETURN_CODE 77
                         TIMEOUT 600 RESOURCE_LOCK herd_server ENVIRONMENT "${server_env}")
    add_test(NAME server_load_sigterm
             COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/server/load_test.py
                     --herd ${HERD_BIN} --work ${server_work} --clients 64 --seconds 12
                     --sigterm-at 8)
    set_tests_properties(server_load_sigterm PROPERTIES LABELS server SKIP_RETURN_CODE 77
                         TIMEOUT 600 RESOURCE_LOCK herd_server ENVIRONMENT "${server_env}")
    add_test(NAME server_load
             COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/server/load_test.py
                     --herd ${HERD_BIN} --work ${server_work} --clients 32 --seconds 60)
    set_tests_properties(server_load PROPERTIES LABELS "server;slow" SKIP_RETURN_CODE 77
                         TIMEOUT 600 RESOURCE_LOCK herd_server ENVIRONMENT "${server_env}")
  endif()
endif()
