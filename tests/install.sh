#!/bin/sh
# Installs the build in $1 into a scratch prefix, then builds and runs a
# program against it three ways: the CMake package (shared and static
# targets) and pkg-config (shared, and static with --static).
set -eu
build=$1 src=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(ls -d "$tmp"/prefix/lib*/pkgconfig | head -1 | xargs dirname)

cmake -S "$src/install" -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/consumer" >/dev/null
LD_LIBRARY_PATH="$libdir" "$tmp/consumer/consumer_shared"
"$tmp/consumer/consumer_static"

export PKG_CONFIG_PATH="$libdir/pkgconfig"
cc -o "$tmp/pc_shared" "$src/install/consumer.c" $(pkg-config --cflags --libs weft)
LD_LIBRARY_PATH="$libdir" "$tmp/pc_shared"
cc -static-libgcc -o "$tmp/pc_static" "$src/install/consumer.c" \
	$(pkg-config --cflags weft) "$libdir/libweft.a" \
	$(pkg-config --static --libs weft | sed 's/-L[^ ]*//; s/-lweft\b//')
"$tmp/pc_static"
# libweft.so exports the public API only
if nm -D --defined-only "$libdir/libweft.so" | grep -q ' weft__'; then
	echo "install.sh: libweft.so exports internal weft__ symbols" >&2
	exit 1
fi
echo "install.sh: CMake package and pkg-config consumers built and ran"
