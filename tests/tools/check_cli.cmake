# check_cli.cmake - the herd command's help and version (tests/cmake/cli.cmake).
#   cmake -DHERD=build/herd -DHEADER=include/herd.h -P check_cli.cmake
# Every command listed by `herd --help` must answer -h and --help with "usage: herd NAME"
# on stdout, nothing on stderr, exit code 0; `herd --version` prints "herd <version>" with
# HERD_VERSION_STRING of the header.
set(failures 0)

execute_process(COMMAND ${HERD} --help RESULT_VARIABLE rc OUTPUT_VARIABLE out
                ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "herd --help: exit ${rc}\n${err}")
endif()
string(REGEX MATCHALL "\n  [a-z]+ " lines "${out}")
set(commands)
foreach(l ${lines})
  string(STRIP "${l}" name)
  list(APPEND commands ${name})
endforeach()
list(LENGTH commands n)
if(n LESS 10)
  message(FATAL_ERROR "herd --help lists ${n} commands (${commands}); expected at least 10")
endif()

foreach(cmd ${commands})
  foreach(flag -h --help)
    execute_process(COMMAND ${HERD} ${cmd} ${flag} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                    ERROR_VARIABLE err)
    if(NOT rc EQUAL 0 OR NOT out MATCHES "^usage: herd ${cmd}" OR NOT err STREQUAL "")
      message(SEND_ERROR "herd ${cmd} ${flag}: exit ${rc}, stdout '${out}', stderr '${err}'")
      math(EXPR failures "${failures} + 1")
    else()
      message(STATUS "herd ${cmd} ${flag}: ok")
    endif()
  endforeach()
endforeach()

file(STRINGS ${HEADER} def REGEX "^#define HERD_VERSION_STRING ")
string(REGEX REPLACE ".*\"(.*)\".*" "\\1" want "${def}")
execute_process(COMMAND ${HERD} --version RESULT_VARIABLE rc OUTPUT_VARIABLE out
                ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT out STREQUAL "herd ${want}\n")
  message(SEND_ERROR "herd --version: exit ${rc}, '${out}' (want 'herd ${want}')")
  math(EXPR failures "${failures} + 1")
else()
  message(STATUS "herd --version: ${want}")
endif()
if(failures GREATER 0)
  message(FATAL_ERROR "${failures} failed")
endif()
