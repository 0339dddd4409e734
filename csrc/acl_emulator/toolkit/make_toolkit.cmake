# Writes pymfn's CANN-shaped toolkit root beside the emulator library (cmake -P; run by CMakeLists.txt after
# libascendcl.so and its stand-ins are built). Inputs: OUT (the folder of libascendcl.so), HEADERS (the folder
# holding acl/acl.h), HERE (this folder), VERSION (pymfn's).
#
#   <OUT>/toolkit/
#     set_env.sh                  exports ASCEND_TOOLKIT_HOME etc., computed from its own location
#     pymfn_emulator.info         marks the root as pymfn's (CMakeLists.txt never takes it for a real CANN)
#     runtime/include/acl/...     copies of pymfn's headers
#     runtime/lib64/lib*.so       relative symlinks to ../../../lib*.so (the libraries beside _core)
#     runtime/lib64/stub/lib*.so  the same, where samples link (NPU_HOST_LIB)
#     lib64, include              -> runtime/lib64, runtime/include (CANN's top-level links)
#     acllib                      -> runtime (the layout before CANN 5.1: acllib/include, acllib/lib64/stub)
#     opp/README                  ASCEND_OPP_PATH points here; the emulator has no operator packages
# Relative links only: the root stays correct when the package folder moves.
cmake_minimum_required(VERSION 3.18)
foreach(_var OUT HEADERS HERE VERSION)
  if(NOT DEFINED ${_var})
    message(FATAL_ERROR "make_toolkit.cmake: ${_var} is not set")
  endif()
endforeach()

set(_root "${OUT}/toolkit")
file(REMOVE_RECURSE "${_root}")
file(MAKE_DIRECTORY "${_root}/runtime/include" "${_root}/runtime/lib64/stub" "${_root}/opp")
file(COPY "${HEADERS}/acl" DESTINATION "${_root}/runtime/include" FILES_MATCHING PATTERN "*.h")
foreach(_lib libascendcl.so libacl_cblas.so libacl_dvpp.so)
  if(NOT EXISTS "${OUT}/${_lib}")
    message(FATAL_ERROR "make_toolkit.cmake: ${OUT}/${_lib} was not built")
  endif()
  file(CREATE_LINK "../../../${_lib}" "${_root}/runtime/lib64/${_lib}" SYMBOLIC)
  file(CREATE_LINK "../../../../${_lib}" "${_root}/runtime/lib64/stub/${_lib}" SYMBOLIC)
endforeach()
file(CREATE_LINK "runtime/lib64" "${_root}/lib64" SYMBOLIC)
file(CREATE_LINK "runtime/include" "${_root}/include" SYMBOLIC)
file(CREATE_LINK "runtime" "${_root}/acllib" SYMBOLIC)
configure_file("${HERE}/set_env.sh" "${_root}/set_env.sh" COPYONLY)
file(WRITE "${_root}/opp/README"
  "ASCEND_OPP_PATH points here, as CANN's set_env.sh points it at its operator packages. pymfn's ACL emulator\n"
  "runs whole models and reads nothing from this folder.\n")
file(WRITE "${_root}/pymfn_emulator.info"
  "pymfn ACL emulator toolkit root: libascendcl.so here is pymfn's emulator, not Huawei's CANN runtime.\n"
  "pymfn_version=${VERSION}\n")
