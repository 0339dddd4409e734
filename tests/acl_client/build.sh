#!/bin/bash
# Builds sample_infer the way msame's build.sh builds msame: CMake in build/intermediates/host, RPATH skipped
# (-DCMAKE_SKIP_RPATH=TRUE), so the program finds libascendcl.so at run time through LD_LIBRARY_PATH, which a
# toolkit's set_env.sh provides. Usage: ./build.sh [C++ compiler]   ->   out/sample_infer
set -e
compiler="${1:-g++}"
cd "$(dirname "$0")"
rm -rf build out
mkdir -p build/intermediates/host
cd build/intermediates/host
cmake ../../.. -DCMAKE_CXX_COMPILER="${compiler}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_SKIP_RPATH=TRUE
make
