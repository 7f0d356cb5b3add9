# The herd command itself (label unit): every sub-command that `herd --help` lists answers
# -h and --help with its usage on stdout and exit code 0, and `herd --version` prints the
# version of include/herd.h (tests/tools/check_cli.cmake).
add_test(NAME cli_help
         COMMAND ${CMAKE_COMMAND} -DHERD=${HERD_BIN}
                 -DHEADER=${PROJECT_SOURCE_DIR}/include/herd.h
                 -P ${HERD_TESTS}/tools/check_cli.cmake)
set_tests_properties(cli_help PROPERTIES LABELS unit)

# `herd info` without a model lists the devices: the CPU line always, a line per other
# backend of the build (a device, or why it sees none).
add_test(NAME cli_info_devices COMMAND ${HERD_BIN} info)
set_tests_properties(cli_info_devices PROPERTIES LABELS unit
  PASS_REGULAR_EXPRESSION "^cpu: [a-z0-9]+ kernels( \\([^)]*\\))?, [0-9]+ cores\n")
