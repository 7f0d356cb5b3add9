# KV cache types (label golden): --kv-type f32 / f16 / q8_0 against the numpy reference on
# a tiny model whose head_dim (64) holds whole Q8_0 blocks (tests/mpi/make_mpi_models.py's
# mpi_k_f32 shape, made here so the test does not depend on an MPI build).
if(NOT Python3_Interpreter_FOUND)
  return()
endif()
set(KV_MODELS ${CMAKE_BINARY_DIR}/kv-models)
add_test(NAME kvcache_make
         COMMAND ${Python3_EXECUTABLE} ${HERD_TESTS}/mpi/make_mpi_models.py ${KV_MODELS})
set_tests_properties(kvcache_make PROPERTIES FIXTURES_SETUP kv_models LABELS golden)
add_test(NAME kvcache_types
         COMMAND ${Python3_EXECUTABLE} ${HERD_TESTS}/tools/check_kv_types.py ${HERD_BIN}
                 ${KV_MODELS}/mpi_k_f32)
set_tests_properties(kvcache_types PROPERTIES FIXTURES_REQUIRED kv_models LABELS golden
                     TIMEOUT 300)

# The same option on `herd serve` (tools/cli.c parses -t, -c and --kv-type once for every
# command that runs a model): a q8_0 cache serves, is smaller than f32, and a head_dim that
# is not whole Q8_0 blocks fails at start.
if(TARGET herd_server)
  add_test(NAME kvcache_serve
           COMMAND ${Python3_EXECUTABLE} ${HERD_TESTS}/tools/check_serve_kv.py ${HERD_BIN}
                   ${KV_MODELS})
  set_tests_properties(kvcache_serve PROPERTIES FIXTURES_REQUIRED kv_models
                       LABELS "server" SKIP_RETURN_CODE 77 TIMEOUT 300)
endif()
