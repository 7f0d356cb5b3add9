#!/bin/sh
# check_install.sh - `cmake --install` into a fresh prefix, then build a program against it
# the way a user would, with pkg-config only: shared (run it: it prints herd_version(),
# which must equal the header's HERD_VERSION_STRING) and static; and run the
# installed herd command, which finds the installed libherd through its RPATH.
#   check_install.sh BUILD_DIR WORK_DIR CC PKG_CONFIG [EXTRA_CFLAGS]
set -eu
build=$1 work=$2 cc=$3 pkgconfig=$4 extra=${5:-}
rm -rf "$work"
mkdir -p "$work"
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >"$work/install.log"
pc=$(find "$prefix" -name herd.pc)
[ -n "$pc" ] || { echo "FAIL: no herd.pc installed under $prefix"; exit 1; }
export PKG_CONFIG_PATH=$(dirname "$pc")
cat >"$work/hello.c" <<'C'
#include <herd.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
    printf("%s\n", herd_version());
    if (strcmp(herd_version(), HERD_VERSION_STRING) != 0 || herd_n_threads(0) < 1)
        return 1;
    return 0;
}
C
libdir=$("$pkgconfig" --variable=libdir herd)
# shared: -lherd from pkg-config, found at run time through the rpath given here
$cc $extra "$work/hello.c" $("$pkgconfig" --cflags --libs herd) -Wl,-rpath,"$libdir" \
    -o "$work/hello"
got=$("$work/hello")
want=$("$pkgconfig" --modversion herd)
[ "$got" = "$want" ] || {
    echo "FAIL: shared program printed '$got', pkg-config says '$want'"
    exit 1
}
echo "shared: herd_version() = $got"
if ldd "$work/hello" | grep -q "libherd.so.*$libdir"; then
    echo "shared: libherd from $libdir"
else
    echo "FAIL: the program does not load the installed libherd:"; ldd "$work/hello"; exit 1
fi
# static: the archive, herd.pc's Libs.private and its Requires.private modules (their shared
# libraries: `pkg-config --static` would want every static archive down the chain, which
# distributions do not all ship)
privlibs=$(sed -n 's/^Libs.private: //p' "$pc")
reqs=$("$pkgconfig" --print-requires-private herd | tr '\n' ' ')
$cc $extra "$work/hello.c" $("$pkgconfig" --cflags herd) "$libdir/libherd.a" $privlibs \
    $("$pkgconfig" --libs $reqs) -o "$work/hello_static"
got=$("$work/hello_static")
[ "$got" = "$want" ] || { echo "FAIL: static program printed '$got'"; exit 1; }
echo "static: herd_version() = $got"
got=$("$prefix/bin/herd" --version)
[ "$got" = "herd $want" ] || { echo "FAIL: installed herd --version: '$got'"; exit 1; }
echo "installed herd: $got"
echo "ok"
