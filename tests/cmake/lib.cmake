# libherd as a library (docs/internals/library.md): programs built against include/herd.h
# alone, on the shared library.
#   lib_exports: libherd.so exports exactly the HERD_API functions of herd.h (nm -D).
#   test_server_lifecycle: the server started and stopped twice in one process on
#     ephemeral ports, stopped with a stream open (labels unit, server; it needs the model
#     suite's tiny model, so the model_files fixture).
add_test(NAME lib_exports
         COMMAND ${CMAKE_COMMAND} -DNM=${CMAKE_NM} -DLIB=$<TARGET_FILE:herd>
                 -DHEADER=${PROJECT_SOURCE_DIR}/include/herd.h
                 -P ${HERD_TESTS}/lib/check_exports.cmake)
set_tests_properties(lib_exports PROPERTIES LABELS unit)

#   lib_install: cmake --install into a temporary prefix; a tiny C program built against it
#     with pkg-config (shared and static) prints herd_version(); the installed herd runs.
set(lib_install_flags "")
if(HERD_SANITIZE)
  set(lib_install_flags "-fsanitize=address,undefined")
endif()
add_test(NAME lib_install
         COMMAND sh ${HERD_TESTS}/lib/check_install.sh ${CMAKE_BINARY_DIR}
                 ${CMAKE_BINARY_DIR}/lib-install ${CMAKE_C_COMPILER} ${PKG_CONFIG_EXECUTABLE}
                 "${lib_install_flags}")
set_tests_properties(lib_install PROPERTIES LABELS unit TIMEOUT 300)
if(TARGET herd_server)
  add_executable(test_server_lifecycle ${HERD_TESTS}/lib/test_server_lifecycle.c)
  target_link_libraries(test_server_lifecycle PRIVATE herd)
  target_include_directories(test_server_lifecycle PRIVATE ${HERD_TESTS}/unit)
  add_test(NAME test_server_lifecycle COMMAND test_server_lifecycle)
  set_tests_properties(test_server_lifecycle PROPERTIES LABELS "unit;server"
    SKIP_RETURN_CODE 77 TIMEOUT 120
    ENVIRONMENT "HERD_TEST_MODEL=${CMAKE_BINARY_DIR}/test-models/gqa2_untied_f32/hf")
  if(Python3_Interpreter_FOUND)
    set_tests_properties(test_server_lifecycle PROPERTIES FIXTURES_REQUIRED model_files)
  endif()
endif()
