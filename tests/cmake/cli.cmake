# The herd command itself (label unit): every sub-command that `herd --help` lists answers
# -h and --help with its usage on stdout and exit code 0, and `herd --version` prints the
# version of include/herd.h (tests/tools/check_cli.cmake).
add_test(NAME cli_help
         COMMAND ${CMAKE_COMMAND} -DHERD=${HERD_BIN}
                 -DHEADER=${PROJECT_SOURCE_DIR}/include/herd.h
                 -P ${HERD_TESTS}/tools/check_cli.cmake)
set_tests_properties(cli_help PROPERTIES LABELS unit)
