"""pymfn's AscendCL headers against the public surface of CANN's (tests/acl_surface.txt), and the emulator behind them.

The list names every macro, constant, enum value, type, struct and function of CANN's external acl.h, acl_base.h,
acl_rt.h and acl_mdl.h (with error_codes/) and its value or signature. Here the headers are checked against it both
ways (nothing missing, nothing extra), a static_assert per entry is compiled against each header on its own, the
headers compile as C, the emulator exports exactly the listed functions, and every function the emulator does not
implement is called: it must answer ACL_ERROR_FEATURE_UNSUPPORTED (or NULL / -1) with a one-line error message.
The emulator's own build against a CANN-layout root (-DPYMFN_ACL_EMULATOR_HEADERS) is a separate, slower check that
CI runs with PYMFN_TEST_EMULATOR_HEADERS_BUILD=1.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

import pymfn
from pymfn.runtime import acl_config

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SURFACE = HERE / "acl_surface.txt"
INCLUDE = ROOT / "pymfn" / "include"
HEADERS = ["acl.h", "acl_base.h", "acl_rt.h", "acl_mdl.h", "error_codes/rt_error_codes.h",
           "error_codes/ge_error_codes.h"]
DOCS = ROOT / "docs" / "acl-emulator.md"
UNSUPPORTED_MESSAGE = "{name}: not supported by pymfn's ACL emulator [ACL_ERROR_FEATURE_UNSUPPORTED 200006]"


@dataclass(frozen=True)
class Entry:
    header: str
    kind: str
    name: str
    type: str
    value: str
    status: str

    @property
    def unsupported(self) -> bool:
        return self.kind == "func" and "unsupported" in self.status.split(",")

    @property
    def deprecated(self) -> bool:
        return self.kind == "func" and "deprecated" in self.status.split(",")


def load_surface() -> list[Entry]:
    entries = []
    for n, line in enumerate(SURFACE.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        cells = [c.strip() for c in line.split(" | ")]
        cells += [""] * (6 - len(cells))
        assert len(cells) == 6, f"{SURFACE.name}:{n}: {line}"
        entries.append(Entry(*cells))
    return entries


SURFACE_ENTRIES = load_surface()


def by_kind(kind: str) -> list[Entry]:
    return [e for e in SURFACE_ENTRIES if e.kind == kind]


def compiler(lang: str = "c++") -> str:
    name = os.environ.get("CXX", "g++") if lang == "c++" else os.environ.get("CC", "gcc")
    found = shutil.which(name) or shutil.which("c++" if lang == "c++" else "cc")
    if found is None:
        pytest.skip(f"no {lang} compiler on PATH")
    return found


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=kw.pop("timeout", 300), **kw)


# ------------------------------------------------------------------------------------------------ the list vs the text

def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text).replace("\\\n", " ")


def header_names() -> dict[str, set[str]]:
    """Every name the headers declare, by the list's kinds, read from their text."""
    names: dict[str, set[str]] = {k: set() for k in ("macro", "const", "enum", "tag", "type", "struct", "func")}
    for h in HEADERS:
        text = _strip_comments((INCLUDE / "acl" / h).read_text())
        for m in re.finditer(r"^\s*#\s*define\s+(\w+)", text, re.M):
            if not m.group(1).startswith("PYMFN_"):  # include guards
                names["macro"].add(m.group(1))
        names["const"] |= set(re.findall(r"static\s+const\s+\w+\s+(\w+)\s*=", text))
        for m in re.finditer(r"typedef\s+enum\s*(\w*)\s*\{([^}]*)\}\s*(\w+)\s*;", text):
            if m.group(1):
                names["tag"].add(f"enum {m.group(1)}")
            names["enum"] |= {e.split("=")[0].strip() for e in m.group(2).split(",") if e.strip()}
        names["struct"] |= set(re.findall(r"typedef\s+struct\s+\w+\s*\{[^}]*\}\s*(\w+)\s*;", text))
        names["type"] |= set(re.findall(r"typedef\s+struct\s+\w+\s+(\w+)\s*;", text))
        names["type"] |= set(re.findall(r"typedef\s+(?:void|int|uint16_t)\s*\*?\s*(\w+)\s*;", text))
        names["type"] |= set(re.findall(r"typedef\s+void\s*\(\s*\*\s*(\w+)\s*\)", text))
        names["func"] |= set(re.findall(r"^\s*ACL_FUNC_VISIBILITY\s+[^;(]*?\b(\w+)\s*\(", text, re.M))
    return names


def test_the_headers_declare_exactly_the_listed_names():
    declared = header_names()
    problems = []
    for kind, names in declared.items():
        listed = {e.name for e in by_kind(kind)}
        if missing := sorted(listed - names):
            problems.append(f"{kind}: listed but not declared: {missing}")
        if extra := sorted(names - listed):
            problems.append(f"{kind}: declared but not listed: {extra}")
    assert not problems, "\n".join(problems)
    # the examples, and the size of the surface (CANN's headers of June 2025)
    assert {"ACL_UNKNOWN_RANK", "ACL_RT_SUCCESS"} <= declared["macro"] and "ACL_MEMCPY_DEFAULT" in declared["enum"]
    assert (len(by_kind("func")), len([e for e in by_kind("func") if e.unsupported])) == (236, 133)


def test_every_list_entry_sits_in_the_header_that_declares_it():
    for e in SURFACE_ENTRIES:
        assert e.header in HEADERS, e
        text = _strip_comments((INCLUDE / "acl" / e.header).read_text())
        word = e.name.split()[-1]
        assert re.search(rf"\b{re.escape(word)}\b", text), f"{e.name} is not in acl/{e.header}"


# ------------------------------------------------------------------------------------------------ compiled checks

def _cpp_checks(entries: list[Entry]) -> str:
    """static_asserts of every entry's value, type or signature."""
    out = []
    for i, e in enumerate(entries):
        tag = f'"{e.kind} {e.name}"'
        if e.kind == "macro" and e.value == "(defined)":
            out.append(f"#ifndef {e.name}\n#error {e.name} is not defined\n#endif")
        elif e.kind == "macro" and e.value.startswith('"'):
            out.append(f"static_assert(streq({e.name}, {e.value}), {tag});")
        elif e.kind == "macro":
            out.append(f"static_assert(({e.name}) == ({e.value}) && "
                       f"std::is_same<decltype({e.name}), decltype({e.value})>::value, {tag});")
        elif e.kind == "const":
            out.append(f"static_assert({e.name} == {e.value} && "
                       f"std::is_same<decltype({e.name}), const {e.type}>::value, {tag});")
        elif e.kind == "enum":
            out.append(f"static_assert({e.name} == {e.value} && std::is_same<decltype({e.name}), {e.type}>::value, "
                       f"{tag});")
        elif e.kind == "tag":
            out.append(f"static_assert(std::is_same<{e.name}, {e.type}>::value, {tag});")
        elif e.kind == "type" and e.value == "(incomplete)":
            out.append(f"static_assert(std::is_same<{e.name}, {e.type}>::value && std::is_class<{e.name}>::value, "
                       f"{tag});")
        elif e.kind == "type":
            out.append(f"static_assert(std::is_same<{e.name}, {e.value}>::value, {tag});")
        elif e.kind == "struct":
            fields = [f.strip() for f in e.value.split(";") if f.strip()]
            out.append(f"namespace ref{i} {{ struct S {{ {'; '.join(fields)}; }}; }}")
            out.append(f"static_assert(sizeof({e.name}) == sizeof(ref{i}::S) && "
                       f"std::is_same<{e.name}, {e.type}>::value && std::is_standard_layout<{e.name}>::value, {tag});")
            for f in fields:
                field = re.match(r".*?\b(\w+)\s*(\[.*\])?$", f).group(1)
                out.append(f"static_assert(offsetof({e.name}, {field}) == offsetof(ref{i}::S, {field}) && "
                           f"std::is_same<decltype({e.name}::{field}), decltype(ref{i}::S::{field})>::value, "
                           f'"{e.name}.{field}");')
        elif e.kind == "func":
            out.append(f"typedef {e.type} ref{i}_t{e.value};")
            out.append(f"static_assert(std::is_same<decltype({e.name}), ref{i}_t>::value, {tag});")
        else:
            raise AssertionError(f"unknown kind in {SURFACE.name}: {e}")
    return "\n".join(out)


CPP_PRELUDE = """#include <cstddef>
#include <cstdint>
#include <type_traits>
constexpr bool streq(const char* a, const char* b) { return *a == *b && (*a == 0 || streq(a + 1, b + 1)); }
"""


def _compile_all(jobs: list[tuple[str, list[str]]]) -> list[tuple[str, subprocess.CompletedProcess]]:
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(zip([j[0] for j in jobs], pool.map(lambda j: run(j[1]), jobs)))


def test_every_entry_compiles_with_its_value_against_its_own_header(tmp_path):
    """One C++ file per header includes that header alone and static_asserts each of its entries."""
    cxx = compiler("c++")
    jobs = []
    for h in HEADERS:
        entries = [e for e in SURFACE_ENTRIES if e.header == h]
        src = tmp_path / f"check_{h.replace('/', '_')}.cpp"
        src.write_text(f'{CPP_PRELUDE}#include "acl/{h}"\n{_cpp_checks(entries)}\nint main() {{ return 0; }}\n')
        jobs.append((h, [cxx, "-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-Wpedantic", "-Werror",
                         "-Wno-deprecated-declarations", f"-I{INCLUDE}", str(src)]))
    failed = [f"acl/{h}:\n{p.stderr[-3000:]}" for h, p in _compile_all(jobs) if p.returncode != 0]
    assert not failed, "\n".join(failed)


def test_a_wrong_value_in_the_list_fails_the_check(tmp_path):
    """Negative control: the generated checks do reject a wrong value, type, field or signature."""
    cxx = compiler("c++")
    wrong = [Entry("acl_rt.h", "enum", "ACL_MEMCPY_DEFAULT", "aclrtMemcpyKind", "3", ""),
             Entry("acl_base.h", "macro", "ACL_UNKNOWN_RANK", "", "0xFFFFFFFFFFFFFFFF", ""),
             Entry("error_codes/ge_error_codes.h", "const", "ACL_ERROR_GE_PARAM_INVALID", "int", "145000", ""),
             Entry("acl_mdl.h", "struct", "aclmdlIODims", "struct aclmdlIODims", "char name[128]; int dimCount; "
                                                                                   "int64_t dims[128]", ""),
             Entry("acl_rt.h", "func", "aclrtMalloc", "aclError", "(void **devPtr, int size, aclrtMemMallocPolicy p)",
                   "")]
    src = tmp_path / "wrong.cpp"
    src.write_text(f'{CPP_PRELUDE}#include "acl/acl.h"\n{_cpp_checks(wrong)}\n')
    p = run([cxx, "-std=c++17", "-fsyntax-only", f"-I{INCLUDE}", str(src)])
    assert p.returncode != 0
    failed = re.findall(r"static assertion failed: (.*)", p.stderr)
    # one failure per wrong entry (the struct's at its mistyped field: padding keeps its size and offsets)
    assert failed == ["enum ACL_MEMCPY_DEFAULT", "macro ACL_UNKNOWN_RANK", "const ACL_ERROR_GE_PARAM_INVALID",
                      "aclmdlIODims.dimCount", "func aclrtMalloc"], p.stderr[-3000:]


def test_each_header_compiles_alone_as_strict_c(tmp_path):
    cc = compiler("c")
    jobs = []
    for h in HEADERS:
        src = tmp_path / f"c_{h.replace('/', '_')}.c"
        src.write_text(f'#include "acl/{h}"\nint pymfn_probe(void);\nint pymfn_probe(void) {{ return 0; }}\n')
        jobs.append((h, [cc, "-std=c99", "-fsyntax-only", "-Wall", "-Wextra", "-Wpedantic", "-Wstrict-prototypes",
                         "-Werror", f"-I{INCLUDE}", str(src)]))
    failed = [f"{h}:\n{p.stderr[-2000:]}" for h, p in _compile_all(jobs) if p.returncode != 0]
    assert not failed, "\n".join(failed)


def test_deprecated_functions_are_deprecated(tmp_path):
    cc = compiler("c")
    deprecated = [e.name for e in by_kind("func") if e.deprecated]
    assert len(deprecated) == 5
    src = tmp_path / "deprecated.c"
    src.write_text('#include "acl/acl.h"\n' + "".join(f"void *use_{n}(void);\nvoid *use_{n}(void) {{ return (void *)&{n}; }}\n"
                                                       for n in deprecated))
    p = run([cc, "-std=c99", "-fsyntax-only", "-Werror=deprecated-declarations", f"-I{INCLUDE}", str(src)])
    assert p.returncode != 0
    for n in deprecated:
        assert re.search(rf"[‘']{n}[’'] is deprecated", p.stderr), (n, p.stderr[-2000:])


def test_acl_func_visibility_exports_only_with_func_visibility(tmp_path):
    """Why the emulator is built with -DFUNC_VISIBILITY: like CANN's, the header's ACL_FUNC_VISIBILITY is empty
    without it, and under -fvisibility=hidden the definition would not be exported."""
    cxx = compiler("c++")
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("no nm")
    src = tmp_path / "impl.cpp"
    src.write_text('#include "acl/acl.h"\naclError aclInit(const char*) { return ACL_SUCCESS; }\n')
    exported = {}
    for flag in ("", "-DFUNC_VISIBILITY"):
        lib = tmp_path / f"lib{'with' if flag else 'without'}.so"
        p = run([cxx, "-shared", "-fPIC", "-fvisibility=hidden", *([flag] if flag else []), f"-I{INCLUDE}", str(src),
                 "-o", str(lib)])
        assert p.returncode == 0, p.stderr
        exported[flag] = "aclInit" in run([nm, "-D", "--defined-only", str(lib)]).stdout.split()
    assert exported == {"": False, "-DFUNC_VISIBILITY": True}


# ------------------------------------------------------------------------------------------------ the emulator

@pytest.fixture(scope="module")
def emulator_dir(core) -> Path:
    lib = pymfn.native_dir() / "libascendcl.so"
    if not lib.is_file():
        if core.build_info().get("acl") == "emulated":
            pytest.fail(f"build_info() says the ACL emulator was built, but {lib} does not exist")
        pytest.skip(f"no ACL emulator in this build ({lib} missing)")
    return lib.parent


def test_the_emulator_exports_exactly_the_listed_functions(emulator_dir):
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("no nm")
    out = run([nm, "-D", "--defined-only", str(emulator_dir / "libascendcl.so")]).stdout
    exported = {line.split()[-1] for line in out.splitlines() if line.split()[-1].startswith("acl")}
    listed = {e.name for e in by_kind("func")}
    assert exported == listed, (sorted(listed - exported), sorted(exported - listed))


def _failure_value(e: Entry) -> str:
    """How a not-supported function signals failure, as C++ comparing its result `r`."""
    if e.type == "aclError":
        return "r == ACL_ERROR_FEATURE_UNSUPPORTED"
    if e.type.endswith("*") or e.type == "aclrtBinary":
        return "r == nullptr"
    if e.type == "int64_t":
        return "r == -1"
    raise AssertionError(f"no failure value known for {e.type} {e.name}")


def test_every_unsupported_function_links_and_says_so_in_one_line(emulator_dir, tmp_path):
    """A program calling each of them (arguments zero / NULL), before aclInit and after it."""
    cxx = compiler("c++")
    unsupported = [e for e in by_kind("func") if e.unsupported]
    calls = "\n".join(f'    report("{e.name}", [] {{ auto r = call_zero(&{e.name}); return {_failure_value(e)}; }}());'
                      for e in unsupported)
    src = tmp_path / "unsupported.cpp"
    src.write_text(f"""#include <cstdio>
#include <string>
#include "acl/acl.h"
template <class R, class... A> R call_zero(R (*f)(A...)) {{ return f(A()...); }}
static void report(const char* name, bool failed_right) {{
  const std::string message = aclGetRecentErrMsg();
  const std::string after = aclGetRecentErrMsg();  // read once, then cleared
  std::printf("%s\\t%d\\t%s\\t%s\\n", name, failed_right ? 1 : 0, message.c_str(), after.c_str());
}}
int main() {{
  for (int pass = 0; pass < 2; ++pass) {{
    std::printf("pass %d\\n", pass);
{calls}
    if (pass == 0 && aclInit(nullptr) != ACL_SUCCESS) return 2;
  }}
  return aclFinalize() == ACL_SUCCESS ? 0 : 3;
}}
""")
    exe = tmp_path / "unsupported"
    flags = shlex.split(f"-I{acl_config.include_dir()} -L{emulator_dir} -Wl,-rpath,{emulator_dir} -lascendcl")
    p = run([cxx, "-std=c++17", "-O0", "-Wall", "-Wextra", "-Werror", "-Wno-deprecated-declarations", str(src), "-o",
             str(exe), *flags])
    assert p.returncode == 0, p.stderr[-4000:]
    r = run([str(exe)], env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")},
            timeout=120)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "outstanding resources" not in r.stderr  # nothing was allocated on their behalf
    lines = [ln.split("\t") for ln in r.stdout.splitlines() if not ln.startswith("pass ")]
    assert len(lines) == 2 * len(unsupported)
    for (name, ok, message, after), e in zip(lines, unsupported * 2):
        assert name == e.name and ok == "1", (name, ok, message)
        assert message == UNSUPPORTED_MESSAGE.format(name=name) and after == "", (name, message, after)


def test_c_program_using_cann_constants_builds_and_runs(emulator_dir, tmp_path):
    """The constants real programs stumbled on (msame's ACL_UNKNOWN_RANK among them), from C."""
    cc = compiler("c")
    src = tmp_path / "constants.c"
    src.write_text(r"""
#include <stdio.h>
#include "acl/acl.h"
int main(void) {
  size_t rank = ACL_UNKNOWN_RANK;       /* what aclGetTensorDescNumDims returns for an unknown rank */
  aclrtMemcpyKind kind = ACL_MEMCPY_DEFAULT;
  aclError rt = ACL_RT_SUCCESS;
  if (aclInit(NULL) != ACL_SUCCESS) return 1;
  aclError e = aclrtStreamWaitEvent(NULL, NULL);
  printf("%zx %d %d %d %d\n", rank, (int)kind, rt, e, ACL_ERROR_RT_STREAM_SYNC_TIMEOUT);
  return aclFinalize() == ACL_SUCCESS ? 0 : 2;
}
""")
    exe = tmp_path / "constants"
    p = run([cc, "-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror", str(src), "-o", str(exe),
             f"-I{acl_config.include_dir()}", f"-L{emulator_dir}", f"-Wl,-rpath,{emulator_dir}", "-lascendcl"])
    assert p.returncode == 0, p.stderr[-3000:]
    r = run([str(exe)], env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["fffffffffffffffe", "4", "0", "200006", "507046"]


def test_docs_list_exactly_the_unsupported_functions():
    text = DOCS.read_text()
    section = text[text.index("## Functions the emulator does not implement"):]
    section = section[:section.index("\n## ", 3)] if "\n## " in section[3:] else section
    documented = set(re.findall(r"`(acl\w+)`", section))  # implemented functions are named without backticks
    unsupported = {e.name for e in by_kind("func") if e.unsupported}
    assert documented == unsupported, (sorted(unsupported - documented), sorted(documented - unsupported))


# ------------------------------------------------------------------------------------------------ the CMake option

BUILD_SWITCH = "PYMFN_TEST_EMULATOR_HEADERS_BUILD"


@pytest.mark.skipif(os.environ.get(BUILD_SWITCH, "") in ("", "0"),
                    reason=f"builds the emulator again (about a minute); CI runs it with {BUILD_SWITCH}=1")
def test_emulator_builds_against_a_cann_layout_root_and_exports_every_function(emulator_dir, tmp_path):
    """`cmake -DPYMFN_ACL_EMULATOR_HEADERS=<root>` with pymfn's headers laid out as a CANN root (the toolkit root):
    only the emulator target, at -O0 (the exports do not depend on optimisation), warnings as errors."""
    cmake, nm = shutil.which("cmake"), shutil.which("nm")
    if cmake is None or nm is None:
        pytest.skip("needs cmake and nm")
    root = Path(run([sys.executable, "-m", "pymfn", "acl-config", "--toolkit-root"]).stdout.strip())
    assert (root / "runtime" / "include" / "acl" / "acl.h").is_file() and (root / "pymfn_emulator.info").is_file()
    build, out = tmp_path / "build", tmp_path / "out"
    cfg = run([cmake, "-S", ROOT, "-B", build, f"-DPYMFN_ACL_EMULATOR_HEADERS={root}", f"-DPYMFN_OUTPUT_DIR={out}",
               f"-DPython_EXECUTABLE={sys.executable}", "-DPYMFN_WERROR=ON", "-DCMAKE_BUILD_TYPE=Debug",
               "-DCMAKE_CXX_FLAGS_DEBUG=-O0"])
    assert cfg.returncode == 0, cfg.stdout[-3000:] + cfg.stderr[-3000:]
    assert f"building the ACL emulator against {root}/runtime/include" in cfg.stdout
    bld = run([cmake, "--build", build, "--target", "ascendcl", "--parallel", "2"], timeout=900)
    assert bld.returncode == 0, bld.stdout[-4000:] + bld.stderr[-3000:]
    flags = (build / "CMakeFiles" / "ascendcl.dir" / "flags.make").read_text()
    assert f"-I{root}/runtime/include" in flags and str(INCLUDE) not in flags and "-DFUNC_VISIBILITY" in flags
    exported = {ln.split()[-1] for ln in run([nm, "-D", "--defined-only", out / "libascendcl.so"]).stdout.splitlines()
                if ln.split()[-1].startswith("acl")}
    shipped = {ln.split()[-1] for ln in run([nm, "-D", "--defined-only", emulator_dir / "libascendcl.so"]).stdout
               .splitlines() if ln.split()[-1].startswith("acl")}
    assert exported == {e.name for e in by_kind("func")} == shipped
