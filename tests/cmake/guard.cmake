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
