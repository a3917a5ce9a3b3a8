# embed_lua.cmake — writes each Lua script as `const char relay_lua_<name>[]` (NUL-terminated) plus its length.
set(out "/* lua_scripts.c — generated from the files in relay/lua by embed_lua.cmake; do not edit. */\n#include <stddef.h>\n")
# IN arrives as one space-separated string when relay/CMakeLists.txt passes several files: split it
separate_arguments(IN)
foreach(f ${IN})
    get_filename_component(name ${f} NAME_WE)
    file(READ ${f} hex HEX)
    string(LENGTH "${hex}" n)
    math(EXPR bytes "${n} / 2")
    string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
    string(APPEND out "const char relay_lua_${name}[] = {${body}0};\nconst size_t relay_lua_${name}_len = ${bytes};\n")
endforeach()
file(WRITE ${OUT} "${out}")
