# check_render.cmake - one golden chat case: feeds NAME.json to `herd render --template T`
# and compares the bytes with NAME.txt ("@TODAY@" = today's date, as strftime_now gives it),
# or, for a case the official template refuses, expects herd to refuse too.
#   cmake -DHERD=... -DDIR=... -DNAME=... -DTEMPLATE=3.1 -DOUTCOME=ok|error -DWORK=... -P check_render.cmake
set(out "${WORK}/${NAME}.out")
execute_process(COMMAND ${HERD} render --template ${TEMPLATE}
                INPUT_FILE ${DIR}/${NAME}.json OUTPUT_FILE ${out} ERROR_VARIABLE err
                RESULT_VARIABLE rc)
if(OUTCOME STREQUAL "error")
  if(rc EQUAL 0)
    message(FATAL_ERROR "${NAME}: the official template refuses this conversation; herd rendered it")
  endif()
  message(STATUS "${NAME}: refused as the template does: ${err}")
  return()
endif()
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${NAME}: herd render failed (${rc}): ${err}")
endif()
set(expected ${DIR}/${NAME}.txt)
file(READ ${expected} text)
if(text MATCHES "@TODAY@")
  string(TIMESTAMP today "%d %b %Y")
  string(REPLACE "@TODAY@" "${today}" text "${text}")
  set(expected "${WORK}/${NAME}.expected")
  file(WRITE ${expected} "${text}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files ${expected} ${out} RESULT_VARIABLE diff)
if(NOT diff EQUAL 0)
  message(FATAL_ERROR "${NAME}: herd's prompt ${out} differs from the official render ${expected}")
endif()
