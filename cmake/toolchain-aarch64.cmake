# Cross-compiling weft for aarch64 Linux on a Debian/Ubuntu host, with the
# distribution's cross compiler (gcc-aarch64-linux-gnu, libc6-dev-arm64-cross)
# and running the target's programs -- tests included, through ctest -- under
# qemu-user. See scripts/cross-aarch64.sh.
#
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64.cmake

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_ASM_COMPILER aarch64-linux-gnu-gcc)

# Libraries and headers come from the target's root only; programs (the host
# pkg-config, for one) from the host.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# pkg-config must not hand out the host's .pc files (x86-64 libraries): only
# arm64 ones, from multiarch packages (libfoo-dev:arm64) or the cross root.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/aarch64-linux-gnu/lib/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

# ctest (and add_custom_command) run target programs through qemu-user, with
# the target's dynamic loader and libc from the cross root.
find_program(WEFT_QEMU_AARCH64 NAMES qemu-aarch64 qemu-aarch64-static)
if(NOT WEFT_QEMU_AARCH64)
  set(WEFT_QEMU_AARCH64 qemu-aarch64)
endif()
set(CMAKE_CROSSCOMPILING_EMULATOR ${WEFT_QEMU_AARCH64} -L /usr/aarch64-linux-gnu)
