# Quantize suite (issue 5): `herd quantize` / herd_quantize on the tiny models of
# tests/models/make_model.py. The fixture writes the models; test_quantize (a unit test,
# added by tests/CMakeLists.txt) converts them (HF -> GGUF byte-identical to the converter's
# file; GGUF -> q8_0/q4_0/q4_k_m/q6_k loaded and run by herd); quantize_gguf_py reads every
# output back with the gguf Python package (an independent reader and dequantizer);
# quantize_cli drives the command line.
set(qz_work ${CMAKE_CURRENT_BINARY_DIR}/quantize)
file(MAKE_DIRECTORY ${qz_work}/out)
set(qz_models ${qz_work}/models)

if(Python3_Interpreter_FOUND)
  add_test(NAME quantize_models
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/models/make_model.py
                   ${qz_models} --config gqa2_untied_f32 --config gqa4_tied_bf16
                   --config gqa8_untied_f16 --config headdim_sharded_f32
                   --config realvocab_tied_bf16)
  set_tests_properties(quantize_models PROPERTIES FIXTURES_SETUP qz_models LABELS unit
                       ENVIRONMENT "HERD_SHARED_DATA=${HERD_SHARED_DATA}")
  set_tests_properties(test_quantize PROPERTIES FIXTURES_REQUIRED qz_models
                       FIXTURES_SETUP qz_out SKIP_RETURN_CODE 77 TIMEOUT 300)
  set_property(TEST test_quantize APPEND PROPERTY ENVIRONMENT
               "HERD_QZ_MODELS=${qz_models};HERD_QZ_WORK=${qz_work}/out")

  add_test(NAME quantize_gguf_py
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_quantize_gguf.py
                   ${qz_models} ${qz_work}/out)
  set_tests_properties(quantize_gguf_py PROPERTIES FIXTURES_REQUIRED "qz_models;qz_out"
                       LABELS unit SKIP_RETURN_CODE 77)

  add_test(NAME quantize_cli
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_quantize_cli.sh ${HERD_BIN}
                   ${qz_models} ${qz_work}/cli)
  set_tests_properties(quantize_cli PROPERTIES FIXTURES_REQUIRED qz_models LABELS unit
                       SKIP_RETURN_CODE 77)
endif()
