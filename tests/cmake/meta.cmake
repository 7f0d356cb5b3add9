# Meta's original checkpoints (issue 14): params.json + consolidated.NN.pth written by real
# torch.save (Debian's python3-torch, or PyPI torch) or, without torch, by the documented
# byte-for-byte mimic (tests/meta/make_meta_models.py), with 1, 2 and 4 model-parallel
# shards, from the same weights as make_model.py's HF folders. Each must give the committed
# golden's logits (the independent numpy reference) and the same logits as the GGUF copy;
# hostile .pth files must be refused with a one-line reason. Labels: meta, golden / e2e.
if(NOT Python3_Interpreter_FOUND)
  return()
endif()

set(META_DIR ${CMAKE_BINARY_DIR}/test-meta)
set(META_WORK ${CMAKE_BINARY_DIR}/test-meta-work)
set(META_MAKE ${Python3_EXECUTABLE} ${HERD_TESTS}/meta/make_meta_models.py)
set(META_COMPARE ${Python3_EXECUTABLE} ${HERD_TESTS}/tools/compare_logits.py)
set(META_EXPECT_FAIL ${Python3_EXECUTABLE} ${HERD_TESTS}/tools/expect_fail.py)

add_test(NAME meta_make COMMAND ${META_MAKE} ${META_DIR} --models ${CMAKE_BINARY_DIR}/test-models)
set_tests_properties(meta_make PROPERTIES FIXTURES_SETUP meta_files
  FIXTURES_REQUIRED model_files LABELS "meta;golden")
# The mimic writer's data.pkl equals torch.save's (skipped where torch is not installed).
add_test(NAME meta_mimic_matches_torch COMMAND ${META_MAKE} ${META_WORK}/mimic
  --models ${CMAKE_BINARY_DIR}/test-models --check-mimic)
set_tests_properties(meta_mimic_matches_torch PROPERTIES LABELS meta SKIP_RETURN_CODE 77)

foreach(case gqa8_untied_f16_mp1 gqa2_untied_f32_mp1 gqa2_untied_f32_mp2 gqa1_tied_f32_mp4
             gqa4_tied_bf16_mp2)
  string(REGEX REPLACE "_mp[0-9]+$" "" cfg ${case})
  add_test(NAME meta_golden_${case}
    COMMAND ${META_COMPARE} golden --herd ${HERD_BIN} --golden ${HERD_TESTS}/golden/model/${cfg}.golden
            --model ${META_DIR}/${case} --hf ${CMAKE_BINARY_DIR}/test-models/${cfg}/hf
            --work ${META_WORK}/${case})
  add_test(NAME meta_vs_gguf_${case}
    COMMAND ${META_COMPARE} pair --herd ${HERD_BIN} --a ${META_DIR}/${case}
            --b ${CMAKE_BINARY_DIR}/test-models/${cfg}/model.gguf
            --tokens-from ${HERD_TESTS}/golden/model/${cfg}.golden --work ${META_WORK}/${case}_pair)
  set_tests_properties(meta_golden_${case} meta_vs_gguf_${case} PROPERTIES
    LABELS "meta;golden" FIXTURES_REQUIRED "model_files;meta_files" SKIP_RETURN_CODE 77)
endforeach()

# Hostile files: refused, one line naming what is wrong, no crash.
function(meta_bad name regex)
  add_test(NAME meta_bad_${name} COMMAND ${META_EXPECT_FAIL} ${regex} -- ${HERD_BIN} info
    ${META_DIR}/hostile/${name})
  set_tests_properties(meta_bad_${name} PROPERTIES LABELS "meta;e2e"
    FIXTURES_REQUIRED meta_files)
endfunction()
meta_bad(global_os_system "global os.system is not allowed")
meta_bad(global_eval "global builtins.eval is not allowed")
meta_bad(opcode_inst "opcode 0x69")
meta_bad(opcode_list "opcode 0x5d")
meta_bad(offset_past_end "past the end of its storage")
meta_bad(size_past_end "past the end of its storage")
meta_bad(strided "not contiguous")
meta_bad(compressed "compressed")
meta_bad(truncated "truncated")
meta_bad(empty_stop "STOP")
meta_bad(bad_memo "memo")
meta_bad(pickle_no_stop "no STOP")
meta_bad(not_zip "not a PyTorch zip")
meta_bad(missing_storage "storage 9 has no zip entry")

# herd quantize reads the Meta folder (2 shards) as input: same Q8_0 tensors as from HF.
add_test(NAME meta_quantize_q8_0 COMMAND ${Python3_EXECUTABLE} ${HERD_TESTS}/meta/check_quantize.py
  ${HERD_BIN} ${META_DIR}/gqa2_untied_f32_mp2 ${CMAKE_BINARY_DIR}/test-models/gqa2_untied_f32/hf
  ${META_WORK}/quantize)
set_tests_properties(meta_quantize_q8_0 PROPERTIES LABELS "meta;e2e"
  FIXTURES_REQUIRED "model_files;meta_files" SKIP_RETURN_CODE 77)

# FP8 (fbgemm_fp8) Hugging Face checkpoints: e4m3 weights with row scales, activations
# quantized per token with activation_scale_ub, modules_to_not_convert in BF16; every CPU
# variant against the numpy reference of transformers' fbgemm_fp8 path.
set(FP8_DIR ${META_WORK}/fp8)
set(FP8 ${Python3_EXECUTABLE} ${HERD_TESTS}/meta/fp8_model.py)
add_test(NAME meta_fp8_make COMMAND ${FP8} make ${FP8_DIR} --models ${CMAKE_BINARY_DIR}/test-models)
set_tests_properties(meta_fp8_make PROPERTIES FIXTURES_SETUP fp8_files
  FIXTURES_REQUIRED model_files LABELS "meta;golden")
foreach(isa ref avx2 avx512)
  add_test(NAME meta_fp8_golden_${isa} COMMAND ${CMAKE_COMMAND} -E env HERD_CPU_ISA=${isa}
    ${FP8} check ${FP8_DIR} --herd ${HERD_BIN})
  set_tests_properties(meta_fp8_golden_${isa} PROPERTIES LABELS "meta;golden"
    FIXTURES_REQUIRED fp8_files RESOURCE_LOCK meta_fp8)
endforeach()
add_test(NAME meta_fp8_quantize COMMAND ${FP8} quantize ${FP8_DIR} --herd ${HERD_BIN})
set_tests_properties(meta_fp8_quantize PROPERTIES LABELS "meta;e2e" FIXTURES_REQUIRED fp8_files
  RESOURCE_LOCK meta_fp8)
add_test(NAME meta_fp8_bad_not_convert COMMAND ${META_EXPECT_FAIL} "modules_to_not_convert" --
  ${HERD_BIN} info ${FP8_DIR}/bad_not_convert)
add_test(NAME meta_fp8_bad_no_qcfg COMMAND ${META_EXPECT_FAIL} "fbgemm_fp8" --
  ${HERD_BIN} info ${FP8_DIR}/bad_no_qcfg)
set_tests_properties(meta_fp8_bad_not_convert meta_fp8_bad_no_qcfg PROPERTIES
  LABELS "meta;e2e" FIXTURES_REQUIRED fp8_files)

# Meta's original FP8 release (llama-models "fp8_mixed"): consolidated.NN.pth whose FFN
# weights (all layers but the first and last) are float8_e4m3fn, plus fp8_scales_NN.pt row
# scales; activations per token with the loader's bound 1200. Against the numpy reference.
set(META_FP8_DIR ${META_WORK}/meta_fp8)
set(META_FP8 ${Python3_EXECUTABLE} ${HERD_TESTS}/meta/meta_fp8_model.py)
add_test(NAME meta_fp8_orig_make COMMAND ${META_FP8} make ${META_FP8_DIR}
  --models ${CMAKE_BINARY_DIR}/test-models)
set_tests_properties(meta_fp8_orig_make PROPERTIES FIXTURES_SETUP meta_fp8_files
  FIXTURES_REQUIRED model_files LABELS "meta;golden")
foreach(isa ref avx512)
  add_test(NAME meta_fp8_orig_golden_${isa} COMMAND ${CMAKE_COMMAND} -E env HERD_CPU_ISA=${isa}
    ${META_FP8} check ${META_FP8_DIR} --herd ${HERD_BIN} --case f8)
endforeach()
add_test(NAME meta_fp8_orig_golden_bf16_storage COMMAND ${META_FP8} check ${META_FP8_DIR}
  --herd ${HERD_BIN} --case bf16)
set_tests_properties(meta_fp8_orig_golden_ref meta_fp8_orig_golden_avx512
  meta_fp8_orig_golden_bf16_storage PROPERTIES LABELS "meta;golden"
  FIXTURES_REQUIRED meta_fp8_files RESOURCE_LOCK meta_fp8_orig)
# 2 and 4 model-parallel shards in one process: w1/w3 rows joined, w2 as column parts with
# the activations quantized per part and the products added in shard order (load_meta.c),
# against the reference that computes per rank as Meta's code does; and `herd quantize`
# of them (the parts dequantized with their own scales).
foreach(mp mp2 mp4)
  foreach(isa ref avx2 avx512)
    add_test(NAME meta_fp8_orig_${mp}_${isa} COMMAND ${CMAKE_COMMAND} -E env
      HERD_CPU_ISA=${isa} ${META_FP8} check ${META_FP8_DIR} --herd ${HERD_BIN} --case ${mp})
    set_tests_properties(meta_fp8_orig_${mp}_${isa} PROPERTIES LABELS "meta;golden"
      FIXTURES_REQUIRED meta_fp8_files RESOURCE_LOCK meta_fp8_orig)
  endforeach()
  add_test(NAME meta_fp8_orig_${mp}_quantize COMMAND ${META_FP8} quantize ${META_FP8_DIR}
    --herd ${HERD_BIN} --case ${mp})
  set_tests_properties(meta_fp8_orig_${mp}_quantize PROPERTIES LABELS "meta;e2e"
    FIXTURES_REQUIRED meta_fp8_files RESOURCE_LOCK meta_fp8_orig)
endforeach()

# One rank per shard (issue 14): `mpirun -np N` on a Meta folder of N shards gives rank r
# only consolidated.r.pth (and the embedding's columns of every shard) instead of every rank
# joining the model. The FP8 folders against the numpy reference (per-rank activation
# quantization of w2 is then what each rank does anyway) and every folder against one
# process (tests/mpi/check_mpi.py: greedy ids equal, logits within 1e-4, reruns
# bit-identical). Only in an MPI build with mpirun.
if(HERD_HAVE_MPI)
  find_program(META_MPIRUN mpirun)
endif()
if(HERD_HAVE_MPI AND META_MPIRUN)
  set(META_MPI_ENV "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_mpi_yield_when_idle=1")
  if(HERD_SANITIZE)
    list(APPEND META_MPI_ENV "ASAN_OPTIONS=detect_leaks=0") # OpenMPI's own, see mpi.cmake
  endif()
  foreach(np 2 4)
    add_test(NAME meta_fp8_orig_mp${np}_np${np} COMMAND ${META_FP8} check ${META_FP8_DIR}
      --herd ${HERD_BIN} --case mp${np} --mpi ${np})
    set_tests_properties(meta_fp8_orig_mp${np}_np${np} PROPERTIES LABELS "meta;mpi;golden"
      FIXTURES_REQUIRED meta_fp8_files RESOURCE_LOCK meta_fp8_orig RUN_SERIAL TRUE
      SKIP_RETURN_CODE 77 TIMEOUT 300 ENVIRONMENT "${META_MPI_ENV}")
  endforeach()
  # meta_mpi_equal(NAME FOLDER NP FIXTURE): one rank per shard gives one process's answer
  function(meta_mpi_equal name dir np fixture)
    add_test(NAME meta_mpi_${name}_np${np}
      COMMAND ${Python3_EXECUTABLE} ${HERD_TESTS}/mpi/check_mpi.py equal --herd ${HERD_BIN}
              --model ${dir} --np ${np} --expect ${np}x1 --kv f32 --repeat
              --work ${META_WORK}/mpi_${name})
    set_tests_properties(meta_mpi_${name}_np${np} PROPERTIES FIXTURES_REQUIRED ${fixture}
      LABELS "meta;mpi" RUN_SERIAL TRUE SKIP_RETURN_CODE 77 TIMEOUT 300
      ENVIRONMENT "${META_MPI_ENV}")
  endfunction()
  meta_mpi_equal(fp8_mp2 ${META_FP8_DIR}/mp2 2 meta_fp8_files)
  meta_mpi_equal(fp8_mp4 ${META_FP8_DIR}/mp4 4 meta_fp8_files)
  meta_mpi_equal(gqa2_untied_f32_mp2 ${META_DIR}/gqa2_untied_f32_mp2 2 meta_files)
  meta_mpi_equal(gqa1_tied_f32_mp4 ${META_DIR}/gqa1_tied_f32_mp4 4 meta_files)
  meta_mpi_equal(gqa4_tied_bf16_mp2 ${META_DIR}/gqa4_tied_bf16_mp2 2 meta_files)
endif()
