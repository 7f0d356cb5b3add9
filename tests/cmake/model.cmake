# Model suite: tiny random-weight Llama 3.x models, generated at test time into the build
# tree (tests/models/make_model.py, numpy + gguf), checked against committed goldens from the
# independent numpy reference (scripts/golden_model.py), in both formats, plus bad-input
# cases for the loader. Labels: golden (reference agreement), e2e (bad input).
if(NOT Python3_Interpreter_FOUND)
  message(STATUS "model tests: no Python 3 interpreter, skipped")
  return()
endif()

set(MODEL_DIR ${CMAKE_BINARY_DIR}/test-models)
set(MODEL_WORK ${CMAKE_BINARY_DIR}/test-models-work)
set(BAD_DIR ${MODEL_DIR}/bad)
set(COMPARE ${Python3_EXECUTABLE} ${HERD_TESTS}/tools/compare_logits.py)
set(EXPECT_FAIL ${Python3_EXECUTABLE} ${HERD_TESTS}/tools/expect_fail.py)

add_test(NAME model_make
  COMMAND ${CMAKE_COMMAND} -E env HERD_SHARED_DATA=${HERD_SHARED_DATA}
          ${Python3_EXECUTABLE} ${HERD_TESTS}/models/make_model.py ${MODEL_DIR})
add_test(NAME model_make_bad
  COMMAND ${Python3_EXECUTABLE} ${HERD_TESTS}/models/make_bad_models.py ${BAD_DIR})
set_tests_properties(model_make PROPERTIES FIXTURES_SETUP model_files LABELS golden)
set_tests_properties(model_make_bad PROPERTIES FIXTURES_SETUP model_files LABELS e2e
  DEPENDS model_make)

# One golden per configuration; each is checked on the HF folder and on the GGUF copy, and
# the two copies are checked against each other.
file(GLOB model_goldens CONFIGURE_DEPENDS ${HERD_TESTS}/golden/model/*.golden)
foreach(golden ${model_goldens})
  get_filename_component(cfg ${golden} NAME_WE)
  foreach(fmt hf model.gguf)
    string(REPLACE "model.gguf" "gguf" tag ${fmt})
    add_test(NAME model_golden_${cfg}_${tag}
      COMMAND ${COMPARE} golden --herd ${HERD_BIN} --golden ${golden}
              --model ${MODEL_DIR}/${cfg}/${fmt} --hf ${MODEL_DIR}/${cfg}/hf
              --work ${MODEL_WORK}/${cfg}_${tag})
    set_tests_properties(model_golden_${cfg}_${tag} PROPERTIES LABELS golden
      FIXTURES_REQUIRED model_files SKIP_RETURN_CODE 77 TIMEOUT 900)
  endforeach()
  add_test(NAME model_gguf_vs_hf_${cfg}
    COMMAND ${COMPARE} pair --herd ${HERD_BIN} --a ${MODEL_DIR}/${cfg}/model.gguf
            --b ${MODEL_DIR}/${cfg}/hf --tokens-from ${golden} --work ${MODEL_WORK}/${cfg}_pair)
  set_tests_properties(model_gguf_vs_hf_${cfg} PROPERTIES LABELS golden
    FIXTURES_REQUIRED model_files SKIP_RETURN_CODE 77 TIMEOUT 900)
  if(cfg MATCHES "^long_")
    set_tests_properties(model_golden_${cfg}_hf model_golden_${cfg}_gguf
      model_gguf_vs_hf_${cfg} PROPERTIES LABELS "golden;slow")
  endif()
endforeach()

# Bad input: a non-zero exit, no crash, and a one-line reason naming what is wrong.
function(model_bad name regex)
  add_test(NAME model_bad_${name} COMMAND ${EXPECT_FAIL} ${regex} -- ${HERD_BIN} ${ARGN})
  set_tests_properties(model_bad_${name} PROPERTIES LABELS e2e
    FIXTURES_REQUIRED model_files)
endfunction()
set(out -o ${MODEL_WORK}/bad.bin)
model_bad(hf_missing_tensor "up_proj" logits -m ${BAD_DIR}/hf_missing_tensor --tokens 1,2 ${out})
model_bad(gguf_missing_tensor "ffn_up" logits -m ${BAD_DIR}/gguf_missing_tensor.gguf
  --tokens 1,2 ${out})
model_bad(hf_wrong_shape "k_proj" logits -m ${BAD_DIR}/hf_wrong_shape --tokens 1,2 ${out})
model_bad(gguf_wrong_shape "attn_k" logits -m ${BAD_DIR}/gguf_wrong_shape.gguf --tokens 1,2
  ${out})
model_bad(hf_arch_gpt2 "gpt2" logits -m ${BAD_DIR}/hf_arch_gpt2 --tokens 1,2 ${out})
model_bad(gguf_arch_gpt2 "gpt2" logits -m ${BAD_DIR}/gguf_arch_gpt2.gguf --tokens 1,2 ${out})
model_bad(hf_truncated "past|truncat|short|end of" logits -m ${BAD_DIR}/hf_truncated
  --tokens 1,2 ${out})
model_bad(gguf_truncated "past|truncat|short|end of" logits -m ${BAD_DIR}/gguf_truncated.gguf
  --tokens 1,2 ${out})
model_bad(gguf_bad_magic "magic" logits -m ${BAD_DIR}/gguf_bad_magic.gguf
  --tokens 1,2 ${out})
model_bad(hf_no_config "config.json" logits -m ${BAD_DIR}/hf_no_config --tokens 1,2 ${out})
model_bad(hf_bad_dtype "I32|dtype|type" logits -m ${BAD_DIR}/hf_bad_dtype --tokens 1,2 ${out})
model_bad(missing_file "no such|not found|cannot open|does not exist" logits -m ${BAD_DIR}/does_not_exist.gguf
  --tokens 1,2 ${out})
# A NaN / inf weight: quantizing refuses it and names the tensor (whichever comes first).
model_bad(hf_nan_weight_q8_0 "(ffn_up|up_proj|attn_output|o_proj).*NaN or infinite" quantize
  ${BAD_DIR}/hf_nan_weight ${MODEL_WORK}/nan_q8_0.gguf --type q8_0 -t 2)
model_bad(hf_nan_weight_q4_k_m "(ffn_up|up_proj|attn_output|o_proj).*NaN or infinite" quantize
  ${BAD_DIR}/hf_nan_weight ${MODEL_WORK}/nan_q4_k_m.gguf --type q4_k_m -t 1)
# Run-time input errors on the good model (vocabulary 384, context 131072).
model_bad(token_past_vocab_gguf "999" logits -m ${BAD_DIR}/good/model.gguf --tokens 376,5,999
  ${out})
model_bad(token_past_vocab_hf "999" generate -m ${BAD_DIR}/good/hf --tokens 376,5,999 -n 4
  --temp 0 --ids)
set(ids20 "376")
foreach(i RANGE 1 19)
  string(APPEND ids20 ",${i}")
endforeach()
model_bad(prompt_past_ctx_option "context" logits -m ${BAD_DIR}/good/model.gguf --ctx 8
  --tokens ${ids20} ${out})
model_bad(prompt_past_ctx_generate "context" generate -m ${BAD_DIR}/good/hf --ctx 8
  --tokens ${ids20} -n 4 --temp 0 --ids)
# A model whose own context (max_position_embeddings) is 64, given 100 positions.
set(ids100 "376")
foreach(i RANGE 1 99)
  string(APPEND ids100 ",${i}")
endforeach()
model_bad(prompt_past_model_ctx "context" logits -m ${MODEL_DIR}/ctx64_f32/model.gguf
  --tokens ${ids100} ${out})
# herd run on a model whose whole context (64) is smaller than run's usual 4096: the
# default context is the model's, and the message that does not fit says so (it once
# failed at start with "4096 positions exceeds the model's maximum").
model_bad(run_small_model_ctx "context holds 64" run -m ${MODEL_DIR}/ctx64_f32/hf -p hi -n 4)

# herd's own GGUF writer (herd quantize --type f32/bf16/f16: a conversion, no quantization)
# must carry a model exactly: the HF folder converted by herd (q/k permuted to Meta's
# order, rope_freqs written) gives the reference's logits like the gguf-package copy does.
foreach(conv "gqa2_untied_f32:f32" "gqa4_tied_bf16:bf16" "headdim_sharded_f32:f32")
  string(REPLACE ":" ";" parts ${conv})
  list(GET parts 0 cfg)
  list(GET parts 1 type)
  set(out ${MODEL_DIR}/herd-${cfg}.gguf) # MODEL_DIR exists once model_make ran
  add_test(NAME model_herd_writer_${cfg}
    COMMAND ${HERD_BIN} quantize ${MODEL_DIR}/${cfg}/hf ${out}
            --type ${type})
  set_tests_properties(model_herd_writer_${cfg} PROPERTIES LABELS golden
    FIXTURES_REQUIRED model_files FIXTURES_SETUP herd_gguf_${cfg})
  add_test(NAME model_golden_${cfg}_herd_gguf
    COMMAND ${COMPARE} golden --herd ${HERD_BIN} --golden ${HERD_TESTS}/golden/model/${cfg}.golden
            --model ${out} --hf ${MODEL_DIR}/${cfg}/hf --work ${MODEL_WORK}/${cfg}_herd_gguf)
  set_tests_properties(model_golden_${cfg}_herd_gguf PROPERTIES LABELS golden
    FIXTURES_REQUIRED "model_files;herd_gguf_${cfg}" SKIP_RETURN_CODE 77 TIMEOUT 900)
endforeach()

# A Q4_K_M conversion of a model whose rows are not whole K-quant super-blocks falls back to
# Q5_0 / Q8_0 tensors, as llama.cpp's does; such a file must run (it once crashed on a
# missing Q5_0 kernel) and stay close to the f32 model.
set(q5_out ${MODEL_DIR}/q4_k_m-fallback.gguf)
add_test(NAME model_q5_0_fallback_quantize
  COMMAND ${HERD_BIN} quantize ${MODEL_DIR}/gqa2_untied_f32/hf ${q5_out} --type q4_k_m)
set_tests_properties(model_q5_0_fallback_quantize PROPERTIES LABELS golden
  FIXTURES_REQUIRED model_files FIXTURES_SETUP q5_0_model)
add_test(NAME model_q5_0_fallback_runs
  COMMAND ${COMPARE} golden --herd ${HERD_BIN}
          --golden ${HERD_TESTS}/golden/model/gqa2_untied_f32.golden --model ${q5_out}
          --hf ${MODEL_DIR}/gqa2_untied_f32/hf --work ${MODEL_WORK}/q5_0_fallback
          --tol 0.25 --logits-only)
set_tests_properties(model_q5_0_fallback_runs PROPERTIES LABELS golden
  FIXTURES_REQUIRED "model_files;q5_0_model" SKIP_RETURN_CODE 77 TIMEOUT 300)

# Unit tests that need a model (test_model_*.c): the backend seam — a recording backend
# (CUDA-graph-like capture and replay) gives the CPU backend's logits bit for bit — and the
# memory plan a context checks before it allocates.
if(TARGET test_oom_sweep AND TARGET herd_server)
  target_compile_definitions(test_oom_sweep PRIVATE HERD_TEST_SERVER=1)
endif()
if(TARGET test_model_backend)
  add_test(NAME test_model_backend_mmap COMMAND test_model_backend)
  set_tests_properties(test_model_backend_mmap PROPERTIES LABELS "unit;model"
    FIXTURES_REQUIRED model_files SKIP_RETURN_CODE 77
    ENVIRONMENT "HERD_MMAP=1;HERD_TEST_MODEL=${MODEL_DIR}/gqa4_tied_bf16/model.gguf")
endif()
foreach(t test_model_backend test_model_memplan test_oom_sweep)
  if(TARGET ${t})
    set_tests_properties(${t} PROPERTIES FIXTURES_REQUIRED model_files SKIP_RETURN_CODE 77)
    set_property(TEST ${t} APPEND PROPERTY ENVIRONMENT
                 "HERD_TEST_MODEL=${MODEL_DIR}/gqa4_tied_bf16/model.gguf")
  endif()
endforeach()

# A GGUF's load errors name the file once (`herd tokenize -m` printed it twice).
model_bad(tokenize_gguf_path_once "^herd: <arg>: (?!.*<arg>).*runs past the end"
  tokenize -m ${BAD_DIR}/gguf_truncated.gguf)

# The architecture table: a test-only second family (other architecture strings and tensor
# names, registered through the table API) loads the model_files models rewritten under its
# names, in both formats, with logits bit-identical to the originals.
file(MAKE_DIRECTORY ${MODEL_WORK}/arch)
set_tests_properties(test_model_arch PROPERTIES FIXTURES_REQUIRED model_files
                     SKIP_RETURN_CODE 77)
set_property(TEST test_model_arch APPEND PROPERTY ENVIRONMENT
             "HERD_TEST_MODELS=${MODEL_DIR};HERD_TEST_WORK=${MODEL_WORK}/arch")

# --device names a backend of this build; an unknown one is refused with the list of those
# it has, and the CPU backend has exactly one device.
model_bad(device_unknown "device nosuch: no such backend in this build \\(it has: cpu"
  generate -m ${MODEL_DIR}/gqa4_tied_bf16/model.gguf -p hi -n 1 --device nosuch)
model_bad(device_cpu_index "device cpu:1: the CPU backend has one device"
  logits -m ${MODEL_DIR}/gqa4_tied_bf16/model.gguf --tokens 1,2 --device cpu:1
  -o ${MODEL_WORK}/device.bin)

# Hyper-parameters refused before anything is sized from them, typed reads, tokenizer ids vs
# embedding rows, refused bias tensors (make_bad_models.py's hparams variants): through
# herd_model_load and herd_quantize, with a bound on peak memory.
set_tests_properties(test_model_bad PROPERTIES FIXTURES_REQUIRED model_files
                     SKIP_RETURN_CODE 77)
set_property(TEST test_model_bad APPEND PROPERTY ENVIRONMENT "HERD_TEST_BAD=${BAD_DIR}")

# herd bench --profile (issue 15): the operation table of one prefill and of decode, with
# the model's products by shape (gqa2_untied: 64-wide, so its q projection is 64x64).
add_test(NAME bench_profile
  COMMAND ${HERD_BIN} bench -m ${MODEL_DIR}/gqa2_untied_f32/model.gguf -p 16 -n 4 -r 1 -t 2
          --profile)
set_tests_properties(bench_profile PROPERTIES LABELS e2e FIXTURES_REQUIRED model_files
  PASS_REGULAR_EXPRESSION
  "profile: prefill of 16 tokens.*matmul 64x64 f32 +4 +64 .*attention.*sum of operations.*profile: decode of 4 tokens.*matmul 64x64 f32 +16 +16 .*rmsnorm +20 ")
