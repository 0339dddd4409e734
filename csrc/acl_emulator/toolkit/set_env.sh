# pymfn's set_env.sh: source it (bash, zsh or ksh93) to build and run AscendCL programs against pymfn's ACL
# emulator the way CANN's <toolkit>/set_env.sh prepares a shell for CANN:
#
#     source "$(python -m pymfn acl-config --toolkit-root)/set_env.sh"
#
# It exports ASCEND_TOOLKIT_HOME (and ASCEND_HOME_PATH, ASCEND_AICPU_PATH, ASCEND_OPP_PATH) as CANN's does,
# DDK_PATH and NPU_HOST_LIB as Ascend samples' READMEs ask (their CMakeLists read them), and puts the
# toolkit's lib64 first on LD_LIBRARY_PATH (once), so that a program linked with -DCMAKE_SKIP_RPATH=TRUE
# finds libascendcl.so. Every path comes from this file's own location: nothing is written into it.

_pymfn_env_file=""
if [ -n "${BASH_VERSION:-}" ]; then
  eval '_pymfn_env_file=${BASH_SOURCE[0]}'
  eval '[ "${BASH_SOURCE[0]}" = "$0" ]' && {
    echo "set_env.sh: run as a program it changes nothing; source it: source $0" >&2
    exit 1
  }
elif [ -n "${ZSH_VERSION:-}" ]; then
  eval '_pymfn_env_file=${(%):-%x}'
elif [ -n "${KSH_VERSION:-}" ]; then
  eval '_pymfn_env_file=${.sh.file}' 2>/dev/null
fi

if [ -z "$_pymfn_env_file" ]; then
  echo "set_env.sh: this shell cannot tell where set_env.sh is; source it from bash, zsh or ksh93" >&2
  unset _pymfn_env_file
  return 1 2>/dev/null || exit 1
fi

_pymfn_root=$(cd "$(dirname "$_pymfn_env_file")" 2>/dev/null && pwd -P)
if [ -z "$_pymfn_root" ] || [ ! -f "$_pymfn_root/runtime/lib64/libascendcl.so" ]; then
  echo "set_env.sh: ${_pymfn_root:-$_pymfn_env_file}: no runtime/lib64/libascendcl.so here (this pymfn has no ACL emulator; rebuild it)" >&2
  unset _pymfn_env_file _pymfn_root
  return 1 2>/dev/null || exit 1
fi

export ASCEND_TOOLKIT_HOME="$_pymfn_root"
export ASCEND_HOME_PATH="$_pymfn_root"
export ASCEND_AICPU_PATH="$_pymfn_root"
export ASCEND_OPP_PATH="$_pymfn_root/opp"
export DDK_PATH="$_pymfn_root"
export NPU_HOST_LIB="$_pymfn_root/runtime/lib64/stub"
case ":${LD_LIBRARY_PATH:-}:" in
  *":$_pymfn_root/lib64:"*) ;;
  *) export LD_LIBRARY_PATH="$_pymfn_root/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;;
esac
unset _pymfn_env_file _pymfn_root
