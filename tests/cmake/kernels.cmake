# Kernel suites: test_kernels (auto-added from tests/unit) checks every variant against ref;
# here it runs again with HERD_CPU_ISA forcing each x86 variant (the test passes it to
# herd_cpu_configure, as the herd command does, and the dispatcher must obey),
# and the NEON sources are compiled with the aarch64 cross compiler when one is installed
# (apt-get install gcc-aarch64-linux-gnu), so they stay buildable on x86 CI.
foreach(isa ref avx2 avx512 amx)
  add_test(NAME test_kernels_isa_${isa} COMMAND test_kernels)
  set_tests_properties(test_kernels_isa_${isa} PROPERTIES LABELS "unit;kernels"
    ENVIRONMENT "HERD_CPU_ISA=${isa}")
endforeach()
# the AVX-512 decode kernels have a VBMI sub-variant (Q4_0) and a 16-row kernel for Q8_0
# with 2..8 activation rows; this run checks the loops they replace
add_test(NAME test_kernels_avx512_novbmi COMMAND test_kernels)
set_tests_properties(test_kernels_avx512_novbmi PROPERTIES LABELS "unit;kernels"
  ENVIRONMENT "HERD_CPU_ISA=avx512;HERD_GEMV_NO_VBMI=1;HERD_GEMV_NO_R16=1")

# BF16 weights with bf16 activations (herd_cpu_options.bf16_act): vdpbf16ps on avx512, AMX
# BF16 tiles on amx; both against the f32 reference, and amx against avx512
add_test(NAME test_kernels_bf16_act COMMAND test_kernels)
set_tests_properties(test_kernels_bf16_act PROPERTIES LABELS "unit;kernels"
  ENVIRONMENT "HERD_BF16_ACT=1")

find_program(HERD_AARCH64_CC aarch64-linux-gnu-gcc)
if(HERD_AARCH64_CC)
  file(GLOB neon_srcs ${PROJECT_SOURCE_DIR}/src/kernels/cpu/neon/*.c
       ${PROJECT_SOURCE_DIR}/src/kernels/cpu/ref/*.c ${PROJECT_SOURCE_DIR}/src/kernels/kernels.c)
  set(neon_cmd "")
  foreach(src ${neon_srcs})
    string(APPEND neon_cmd "${HERD_AARCH64_CC} -std=c11 -O2 -Wall -Wextra -Werror "
           "-Wno-unused-parameter -D_GNU_SOURCE -DHERD_HAVE_NEON_KERNELS=1 "
           "-I${PROJECT_SOURCE_DIR}/include -I${PROJECT_SOURCE_DIR}/src -c ${src} -o /dev/null && ")
  endforeach()
  string(APPEND neon_cmd "echo neon sources compile")
  add_test(NAME kernels_neon_compile COMMAND sh -c "${neon_cmd}")
  set_tests_properties(kernels_neon_compile PROPERTIES LABELS "kernels")
  # With user-mode qemu (apt-get install qemu-user) the NEON variant also RUNS: test_kernels
  # cross-linked statically, checked against ref like the x86 variants.
  find_program(HERD_QEMU_AARCH64 qemu-aarch64)
  if(HERD_QEMU_AARCH64)
    file(GLOB neon_run_srcs ${PROJECT_SOURCE_DIR}/src/base/*.c ${PROJECT_SOURCE_DIR}/src/quant/*.c)
    list(APPEND neon_run_srcs ${neon_srcs} ${PROJECT_SOURCE_DIR}/tests/unit/test_kernels.c)
    list(JOIN neon_run_srcs " " neon_run_list)
    add_test(NAME kernels_neon_run COMMAND sh -c
      "${HERD_AARCH64_CC} -std=c11 -O2 -Wall -Wextra -Werror -Wno-unused-parameter \
       -D_GNU_SOURCE -DHERD_HAVE_NEON_KERNELS=1 -I${PROJECT_SOURCE_DIR}/include \
       -I${PROJECT_SOURCE_DIR}/src -I${PROJECT_SOURCE_DIR}/tests/unit ${neon_run_list} \
       -static -lm -lpthread -o ${PROJECT_BINARY_DIR}/test_kernels_neon && \
       ${HERD_QEMU_AARCH64} ${PROJECT_BINARY_DIR}/test_kernels_neon")
    set_tests_properties(kernels_neon_run PROPERTIES LABELS "kernels")
  endif()
else()
  message(STATUS "aarch64-linux-gnu-gcc not found: NEON kernels not compile-tested")
endif()

# bench/kernels: not part of `all` (bench/ never gates); build with
# `cmake --build BUILD --target bench_matmul membw amx_probe`.
add_executable(bench_matmul EXCLUDE_FROM_ALL ${PROJECT_SOURCE_DIR}/bench/kernels/bench_matmul.c)
target_link_libraries(bench_matmul PRIVATE herd_kernels)
add_executable(membw EXCLUDE_FROM_ALL ${PROJECT_SOURCE_DIR}/bench/kernels/membw.c)
target_compile_options(membw PRIVATE -mavx512f -mavx512bw -mavx512vnni -mavx512bf16 -mfma)
target_link_libraries(membw PRIVATE herd_kernels)
add_executable(amx_probe EXCLUDE_FROM_ALL ${PROJECT_SOURCE_DIR}/bench/kernels/amx_probe.c)
target_compile_options(amx_probe PRIVATE -mavx512f -mamx-tile -mamx-int8)
target_link_libraries(amx_probe PRIVATE herd_kernels)
set_target_properties(bench_matmul membw amx_probe PROPERTIES RUNTIME_OUTPUT_DIRECTORY
                      ${PROJECT_BINARY_DIR})
