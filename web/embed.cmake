# embed.cmake - writes web/index.html into a C file as a byte array, so `herd serve` carries
# its chat page inside the binary (no files to install, nothing fetched at run time).
#   cmake -DIN=web/index.html -DOUT=web_page.c -P web/embed.cmake
# Defines srv_web_index[] and srv_web_index_len (declared where src/server/http.c serves /).
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR n "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE ${OUT} "/* Generated from web/index.html by web/embed.cmake; do not edit. */\n"
     "#include <stddef.h>\n\n"
     "extern const char srv_web_index[];\nextern const size_t srv_web_index_len;\n\n"
     "const char srv_web_index[] = {\n    ${bytes}\n};\n"
     "const size_t srv_web_index_len = ${n};\n")
