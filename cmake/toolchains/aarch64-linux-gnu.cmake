# Cross-compiling pymfn for 64-bit Arm Linux (Kunpeng servers, Atlas 200 DK) with Debian's
# g++-aarch64-linux-gnu. .ci/cross-aarch64 drives it; it can also be used by hand:
#
#   cmake -S . -B build/aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake \
#     -DPython_INCLUDE_DIR=<aarch64 Python headers> -DPYMFN_OPENVINO_CMAKE_DIR=<aarch64 openvino wheel>/openvino/cmake
#
# The host's Python still runs CMake's helper queries (pybind11's location); nothing built here runs on
# the host. When qemu-aarch64-static is installed, CTest runs the test programs through it.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(PYMFN_CROSS_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${PYMFN_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${PYMFN_CROSS_TRIPLE}-g++)

# Debian's cross libc / libstdc++ live here.
set(CMAKE_FIND_ROOT_PATH /usr/${PYMFN_CROSS_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
# Package configs come from explicit host folders (pybind11 in the host venv, the unpacked aarch64
# OpenVINO wheel), so packages are looked up outside the target root too.
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

find_program(PYMFN_QEMU_AARCH64 NAMES qemu-aarch64-static qemu-aarch64)
if(PYMFN_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${PYMFN_QEMU_AARCH64};-L;/usr/${PYMFN_CROSS_TRIPLE}")
endif()
