"""An AscendCL program written like Huawei's samples, built against pymfn with `acl-config` alone, on the emulator.

tests/acl_client/sample_infer.cpp knows nothing about pymfn: it includes "acl/acl.h" and links -lascendcl. Here it
is compiled with `python -m pymfn acl-config --cflags --libs` (and with the README's CMake snippet), run with an
environment that names no library folder, in both run modes, on a static and a dynamic-batch om; its outputs must
equal pymfn's ACL engine's bit for bit and the emulator must report no leak at aclFinalize. It is also built the CANN
way: `source <acl-config --toolkit-root>/set_env.sh`, then its own msame-style build.sh (tests/acl_client/build.sh,
CMake with DDK_PATH / NPU_HOST_LIB and -DCMAKE_SKIP_RPATH=TRUE).
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import pymfn

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CLIENT_SRC = HERE / "acl_client" / "sample_infer.cpp"
H = W = 12
EMB = 32
LEAK_MARK = "outstanding resources"


# ---------------------------------------------------------------- helpers

def minimal_env(run_mode: str | None = None) -> dict[str, str]:
    """What a user's shell would have: no LD_LIBRARY_PATH, no PYTHONPATH, nothing pymfn-specific."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8"}
    if run_mode:
        env["PYMFN_ACL_EMU_RUN_MODE"] = run_mode
    return env


def acl_config(*options: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pymfn", "acl-config", *options], capture_output=True, text=True,
                          env=env if env is not None else dict(os.environ), timeout=120)


def compiler() -> str:
    cxx = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler on PATH")
    return cxx


def tiny_model(batch: int):
    """NHWC float32 [batch,12,12,3] 'Placeholder' -> conv -> relu -> dense(32) -> L2-normalise -> float16 'the_outputs'
    (MobileFaceNet's interface, small enough to run in milliseconds)."""
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.RandomState(3)
    x = ops.parameter([batch, H, W, 3], np.float32, name="Placeholder")
    x.output(0).set_names({"Placeholder"})
    y = ops.transpose(x, ops.constant(np.array([0, 3, 1, 2], np.int64)))
    y = ops.convolution(y, ops.constant((rng.randn(6, 3, 3, 3) * 0.3).astype(np.float32)), [2, 2], [1, 1], [1, 1], [1, 1])
    y = ops.relu(y)
    y = ops.reshape(y, ops.constant(np.array([-1, 6 * (H // 2) * (W // 2)], np.int64)), False)
    y = ops.matmul(y, ops.constant((rng.randn(6 * (H // 2) * (W // 2), EMB) * 0.1).astype(np.float32)), False, False)
    y = ops.normalize_l2(y, ops.constant(np.array([1], np.int64)), 1e-10, "max")
    y = ops.convert(y, np.float16)
    y.output(0).set_names({"the_outputs"})
    return ov.Model([y], [x], "sample")


def write_om(path: Path, precision: str, dynamic: list[int] | None) -> Path:
    import openvino as ov

    from pymfn.export import om as omlib

    b = -1 if dynamic else 1
    xml = path.with_suffix(".xml")
    ov.save_model(tiny_model(b), str(xml), compress_to_fp16=(precision == "f16"))
    meta = omlib.EmulatorMeta(inputs=[omlib.EmulatorTensor("Placeholder", "float32", [b, H, W, 3], "NHWC")],
                              outputs=[omlib.EmulatorTensor("the_outputs", "float16", [b, EMB])],
                              precision=precision, dynamic_batch=dynamic or [])
    omlib.write_emulator_om(path, meta, xml.read_bytes(), xml.with_suffix(".bin").read_bytes(), name=path.stem)
    return path


def engine_outputs(core, om: Path, x: np.ndarray, batch: int, offered: list[int]) -> np.ndarray:
    """pymfn's ACL engine on the same om, executing exactly the batches the client executes."""
    e = core.AclEngine(str(om))
    out = []
    done = 0
    while done < len(x):
        rows = min(batch, len(x) - done)
        gear = min(g for g in offered if g >= rows) if offered else batch
        chunk = np.zeros((gear, H, W, 3), np.float32)
        chunk[:rows] = x[done:done + rows]
        if offered:
            e.prepare(gear)
        res = np.empty((gear, EMB), np.float16)
        e.execute_into([chunk], [res])
        out.append(res[:rows])
        done += rows
    return np.concatenate(out)


def run_client(exe: Path, om: Path, x: np.ndarray | Path, prefix: Path, run_mode: str, *extra: str,
               count: int | None = None, timeout: int = 180) -> subprocess.CompletedProcess:
    """Runs the client on `x` (an array, written beside `prefix`, or an existing input file of `count` samples)."""
    if isinstance(x, Path):
        inp = x
    else:
        inp, count = prefix.with_suffix(".in.bin"), len(x)
        np.ascontiguousarray(x, np.float32).tofile(inp)
    return subprocess.run([str(exe), str(om), str(inp), str(count), str(prefix), *extra], capture_output=True,
                          text=True, env=minimal_env(run_mode), timeout=timeout)


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def emulator_dir(core) -> Path:
    lib = pymfn.native_dir() / "libascendcl.so"
    if not lib.is_file():
        if core.build_info().get("acl") == "emulated":
            pytest.fail(f"build_info() says the ACL emulator was built, but {lib} does not exist")
        pytest.skip(f"no ACL emulator in this build ({lib} missing)")
    return lib.parent


@pytest.fixture(scope="module")
def client(emulator_dir, tmp_path_factory) -> Path:
    """sample_infer built with nothing but `acl-config --cflags --libs` (warnings are errors)."""
    flags = acl_config("--cflags", "--libs")
    assert flags.returncode == 0, flags.stderr
    exe = tmp_path_factory.mktemp("client") / "sample_infer"
    cmd = [compiler(), "-std=c++11", "-O1", "-Wall", "-Wextra", "-Werror", str(CLIENT_SRC), "-o", str(exe),
           *shlex.split(flags.stdout)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{shlex.join(cmd)}\n{proc.stderr[-4000:]}"
    return exe


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("client_models")
    return {"static": (write_om(d / "sample_static.om", "f16", None), []),
            "dynamic": (write_om(d / "sample_dynamic.om", "f32", [1, 2, 4, 8]), [1, 2, 4, 8])}


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(11).uniform(-1, 1, (11, H, W, 3)).astype(np.float32)


# ---------------------------------------------------------------- acl-config

def test_acl_config_points_at_cann_style_headers_and_the_emulator(emulator_dir):
    inc = Path(acl_config("--include").stdout.strip())
    lib = Path(acl_config("--libdir").stdout.strip())
    assert {p.name for p in (inc / "acl").glob("*.h")} >= {"acl.h", "acl_base.h", "acl_mdl.h", "acl_rt.h"}
    assert lib == emulator_dir
    for name in ("libascendcl.so", "libacl_cblas.so", "libacl_dvpp.so"):
        assert (lib / name).is_file(), name
    assert acl_config("--cflags").stdout.split() == [f"-I{inc}"]
    assert acl_config("--libs").stdout.split() == [f"-L{lib}", f"-Wl,-rpath,{lib}", "-lascendcl"]
    both = acl_config("--libs", "--cflags").stdout.split()  # fixed order, like pkg-config
    assert both[0] == f"-I{inc}" and both[-1] == "-lascendcl"


def test_acl_config_errors_are_one_line(emulator_dir, tmp_path):
    none = acl_config()
    assert none.returncode == 2 and "give at least one of" in none.stderr
    env = dict(os.environ, PYMFN_CORE_DIR=str(tmp_path))  # a build folder without the emulator
    missing = acl_config("--libs", env=env)
    assert missing.returncode == 1 and missing.stdout == ""
    lines = missing.stderr.strip().splitlines()
    assert len(lines) == 1 and "libascendcl.so: not found" in lines[0] and "PYMFN_CORE_DIR" in lines[0]
    # a build folder with the library but without its toolkit root (or with a dangling link in it)
    shutil.copy2(emulator_dir / "libascendcl.so", tmp_path / "libascendcl.so")
    assert acl_config("--libdir", env=env).stdout.strip() == str(tmp_path)
    (tmp_path / "toolkit" / "runtime" / "lib64").mkdir(parents=True)
    (tmp_path / "toolkit" / "set_env.sh").write_text("")
    no_root = acl_config("--toolkit-root", env=env)
    lines = no_root.stderr.strip().splitlines()
    assert no_root.returncode == 1 and no_root.stdout == "" and len(lines) == 1, no_root.stderr
    assert "acl/acl.h: not found" in lines[0] and "toolkit root" in lines[0]


def test_built_client_needs_no_library_path(client, emulator_dir):
    """The binary names libascendcl.so and carries the emulator folder as its run path; ldd resolves every
    library (OpenVINO's included, through libascendcl.so's own run path) with no LD_LIBRARY_PATH."""
    ldd = shutil.which("ldd")
    if ldd is None:
        pytest.skip("no ldd")
    out = subprocess.run([ldd, str(client)], capture_output=True, text=True, env=minimal_env()).stdout
    assert "not found" not in out, out
    assert f"libascendcl.so => {emulator_dir}/libascendcl.so" in out
    assert re.search(r"libopenvino\.so\.\S+ => \S+/openvino/libs/libopenvino", out), out


def test_native_libraries_find_openvino_by_themselves(emulator_dir):
    """`import _core` with neither `import openvino` first nor LD_LIBRARY_PATH: the RUNPATH of pymfn's libraries
    names the openvino package of the installed environment, not pip's deleted build folder."""
    code = (f"import sys; sys.path.insert(0, {str(emulator_dir)!r}); import _core; "
            "print(_core.build_info()['acl'], 'openvino' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=minimal_env(), timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.split() == ["emulated", "False"]
    readelf = shutil.which("readelf")
    if readelf:
        for lib in [*emulator_dir.glob("_core*.so"), emulator_dir / "libascendcl.so"]:
            dyn = subprocess.run([readelf, "-d", str(lib)], capture_output=True, text=True).stdout
            assert "pip-build-env" not in dyn and "openvino/libs" in dyn, (lib, dyn)


# ---------------------------------------------------------------- the client on the emulator

@pytest.mark.parametrize("run_mode", ["host", "device"])
@pytest.mark.parametrize("kind,batch", [("static", 1), ("dynamic", 4)])
def test_client_outputs_equal_the_acl_engine_bit_for_bit(core, client, models, images, tmp_path, run_mode, kind, batch):
    om, offered = models[kind]
    p = run_client(client, om, images, tmp_path / "out", run_mode, "--batch", str(batch))
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    assert f"run mode {'ACL_HOST' if run_mode == 'host' else 'ACL_DEVICE'}" in p.stdout
    assert ("dynamic batch model: 4 gears" in p.stdout) == (kind == "dynamic")
    assert "on Ascend310" in p.stdout and "(event-timed)" in p.stdout
    # a zero-leak teardown: aclFinalize reports nothing (test_leaked_event_is_reported shows it would)
    assert LEAK_MARK not in p.stderr, p.stderr
    want = engine_outputs(core, om, images, batch, offered)
    raw = (tmp_path / "out.raw").read_bytes()
    assert raw == want.tobytes()  # the om's float16 bytes, bit for bit
    decoded = np.fromfile(tmp_path / "out.f32", np.float32)
    assert decoded.view(np.uint32).tolist() == want.astype(np.float32).view(np.uint32).ravel().tolist()


def test_injected_fault_reaches_the_exception_callback(client, models, images, tmp_path):
    om, _ = models["dynamic"]
    p = run_client(client, om, images[:3], tmp_path / "fault", "host", "--inject-fault")
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    # the callback saw ids, looked the task up with aclmdlCreateAndGetOpDesc and read its tensor descriptions
    m = re.search(r"exception: device 0 stream (\d+) task (\d+) op sample_dynamic, 2 inputs 1 outputs", p.stderr)
    assert m, p.stderr
    assert re.search(r"input 0: Placeholder type 0, 4 dims, \d+ bytes at 0x", p.stderr), p.stderr
    assert "injected fault: execute returned 500003" in p.stdout and "1 exception report(s)" in p.stdout
    assert LEAK_MARK not in p.stderr  # the op descriptions were released


def test_leaked_event_is_reported(client, models, images, tmp_path):
    """The negative control of the zero-leak checks above: one event left alive is named at aclFinalize."""
    om, _ = models["static"]
    p = run_client(client, om, images[:2], tmp_path / "leak", "host", "--keep-event")
    assert p.returncode == 0, p.stderr[-3000:]
    assert LEAK_MARK in p.stderr and "1 event(s) not aclrtDestroyEvent'ed" in p.stderr


def documented_cmake_snippet() -> str:
    """The first CMake block of docs/acl-emulator.md (how users build an AscendCL program against the emulator)."""
    text = (ROOT / "docs" / "acl-emulator.md").read_text()
    return re.search(r"```cmake\n(.*?)```", text, re.S).group(1)


def test_documented_cmake_snippet_builds_the_same_client(client, models, images, tmp_path):
    """The CMake snippet of docs/acl-emulator.md, unchanged, builds sample_infer (linking the acl_dvpp stand-in too)."""
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("no cmake on PATH")
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(CLIENT_SRC, src / "sample_infer.cpp")
    (src / "CMakeLists.txt").write_text(documented_cmake_snippet())
    build = tmp_path / "build"
    env = dict(os.environ)
    cfg = subprocess.run([cmake, "-S", str(src), "-B", str(build), f"-DPython3_EXECUTABLE={sys.executable}"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert cfg.returncode == 0, cfg.stdout[-2000:] + cfg.stderr[-2000:]
    bld = subprocess.run([cmake, "--build", str(build)], capture_output=True, text=True, env=env, timeout=300)
    assert bld.returncode == 0, bld.stdout[-3000:] + bld.stderr[-2000:]
    om, _ = models["static"]
    a = run_client(build / "sample_infer", om, images[:5], tmp_path / "cmake", "device")
    b = run_client(client, om, images[:5], tmp_path / "direct", "device")
    assert a.returncode == 0 and b.returncode == 0, a.stderr[-2000:] + b.stderr[-2000:]
    assert (tmp_path / "cmake.raw").read_bytes() == (tmp_path / "direct.raw").read_bytes()


def toolkit_root() -> Path:
    """`python -m pymfn acl-config --toolkit-root`, as a user would run it."""
    p = acl_config("--toolkit-root")
    assert p.returncode == 0, p.stderr
    return Path(p.stdout.strip())


def test_toolkit_root_is_cann_shaped_and_relocatable(emulator_dir):
    root = toolkit_root()
    assert root == emulator_dir / "toolkit"
    assert {p.name for p in (root / "runtime" / "include" / "acl").glob("*.h")} >= {"acl.h", "acl_base.h", "acl_mdl.h",
                                                                                     "acl_rt.h"}
    for lib in ("libascendcl.so", "libacl_cblas.so", "libacl_dvpp.so"):
        for folder in ("runtime/lib64", "runtime/lib64/stub", "lib64", "acllib/lib64/stub"):
            path = root / folder / lib
            assert path.resolve() == (emulator_dir / lib).resolve(), path
    # nothing in the root names an absolute path: links are relative, set_env.sh finds itself
    for p in root.rglob("*"):
        if p.is_symlink():
            assert not os.readlink(p).startswith("/"), (p, os.readlink(p))
    assert str(emulator_dir) not in (root / "set_env.sh").read_text()
    assert "emulator" in (root / "pymfn_emulator.info").read_text()


def test_set_env_sh_exports_the_toolkit_computed_from_its_own_location(emulator_dir, tmp_path):
    """Sourced from a copy of the package folder elsewhere (a moved package), set_env.sh names the copy."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    moved = tmp_path / "elsewhere" / "pymfn"
    moved.mkdir(parents=True)
    for lib in ("libascendcl.so", "libacl_cblas.so", "libacl_dvpp.so"):
        shutil.copy2(emulator_dir / lib, moved / lib)
    shutil.copytree(toolkit_root(), moved / "toolkit", symlinks=True)
    script = ('set -eu; LD_LIBRARY_PATH=/opt/x; source "$1/set_env.sh"; source "$1/set_env.sh"; '
              'for v in ASCEND_TOOLKIT_HOME ASCEND_HOME_PATH ASCEND_AICPU_PATH ASCEND_OPP_PATH DDK_PATH NPU_HOST_LIB '
              'LD_LIBRARY_PATH; do echo "$v=${!v}"; done')
    p = subprocess.run([bash, "-c", script, "bash", str(moved / "toolkit")], capture_output=True, text=True,
                       env=minimal_env(), timeout=60)
    assert p.returncode == 0, p.stderr
    got = dict(line.split("=", 1) for line in p.stdout.splitlines())
    root = str((moved / "toolkit").resolve())
    assert got == {"ASCEND_TOOLKIT_HOME": root, "ASCEND_HOME_PATH": root, "ASCEND_AICPU_PATH": root,
                   "ASCEND_OPP_PATH": f"{root}/opp", "DDK_PATH": root, "NPU_HOST_LIB": f"{root}/runtime/lib64/stub",
                   "LD_LIBRARY_PATH": f"{root}/lib64:/opt/x"}  # prepended once, however often it is sourced
    # executed instead of sourced: it says so and fails; a root whose library is gone: one line, failure
    run_it = subprocess.run([bash, str(moved / "toolkit" / "set_env.sh")], capture_output=True, text=True,
                            env=minimal_env(), timeout=60)
    assert run_it.returncode == 1 and "source it" in run_it.stderr
    (moved / "libascendcl.so").unlink()
    gone = subprocess.run([bash, "-c", 'source "$1/set_env.sh" || echo "failed $?"', "bash", str(moved / "toolkit")],
                          capture_output=True, text=True, env=minimal_env(), timeout=60)
    assert gone.stdout.strip() == "failed 1" and len(gone.stderr.strip().splitlines()) == 1
    assert "no runtime/lib64/libascendcl.so" in gone.stderr


@pytest.mark.parametrize("run_mode", ["host"])
def test_cann_style_build_script_builds_and_runs_after_set_env(core, emulator_dir, models, images, tmp_path, run_mode):
    """The acceptance path: `source <toolkit root>/set_env.sh`, then the client's own msame-style build.sh (CMake
    reading DDK_PATH / NPU_HOST_LIB, -DCMAKE_SKIP_RPATH=TRUE) builds it and it runs, in a shell with nothing else set
    (PATH, HOME, LANG). Its outputs equal the ACL engine's bit for bit; without set_env.sh it cannot even start."""
    bash, cmake, make = shutil.which("bash"), shutil.which("cmake"), shutil.which("make")
    if not (bash and cmake and make):
        pytest.skip("needs bash, cmake and make")
    src = tmp_path / "acl_client"
    shutil.copytree(HERE / "acl_client", src, ignore=shutil.ignore_patterns("build", "out"))
    om, _ = models["static"]
    inp = tmp_path / "in.bin"
    np.ascontiguousarray(images[:5], np.float32).tofile(inp)
    script = (f'set -e; source {shlex.quote(str(toolkit_root()))}/set_env.sh; '
              f'{shlex.quote(str(src))}/build.sh {shlex.quote(compiler())}; '
              f'{shlex.quote(str(src))}/out/sample_infer {om} {inp} 5 {tmp_path / "out"}')
    p = subprocess.run([bash, "-c", script], capture_output=True, text=True, env=minimal_env(run_mode), timeout=600)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-3000:]
    assert f"INC_PATH: {toolkit_root()}" in p.stdout and f"LIB_PATH: {toolkit_root()}/runtime/lib64/stub" in p.stdout
    assert LEAK_MARK not in p.stderr
    want = engine_outputs(core, om, images[:5], 1, [])
    assert (tmp_path / "out.raw").read_bytes() == want.tobytes()
    exe = src / "out" / "sample_infer"
    readelf = shutil.which("readelf")
    if readelf:
        dynamic = subprocess.run([readelf, "-d", str(exe)], capture_output=True, text=True).stdout
        assert "RPATH" not in dynamic and "RUNPATH" not in dynamic, dynamic  # only set_env.sh makes it run
        assert "[libascendcl.so]" in dynamic
    bare = subprocess.run([str(exe), str(om), str(inp), "5", str(tmp_path / "bare")], capture_output=True, text=True,
                          env=minimal_env(run_mode), timeout=60)
    assert bare.returncode != 0 and "libascendcl.so" in bare.stderr


def test_c_program_compiles_against_the_headers(emulator_dir, tmp_path):
    """The headers are C as well as C++ (CANN's are): a C99 program using the base helpers builds and runs."""
    cc = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler on PATH")
    src = tmp_path / "probe.c"
    src.write_text(r"""
#include <stdio.h>
#include "acl/acl.h"
int main(void) {
  aclFloat16 h = aclFloatToFloat16(1.5f);
  int32_t major = -1, minor = -1, patch = -1;
  if (aclrtGetVersion(&major, &minor, &patch) != ACL_SUCCESS) return 1;
  if (aclrtGetSocName() != NULL) return 2;           /* before aclInit */
  if (aclInit(NULL) != ACL_SUCCESS) return 3;
  printf("%u %.2f %zu %s %d.%d.%d\n", (unsigned)h, aclFloat16ToFloat(h), aclDataTypeSize(ACL_INT64),
         aclrtGetSocName(), major, minor, patch);
  return aclFinalize() == ACL_SUCCESS ? 0 : 4;
}
""")
    flags = shlex.split(acl_config("--cflags", "--libs").stdout)
    exe = tmp_path / "probe"
    # the link line also names CANN's cblas and dvpp libraries, kept as dependencies: the empty stand-ins are
    # found at link time and at run time
    stand_ins = ["-Wl,--no-as-needed", "-lacl_cblas", "-lacl_dvpp"]
    proc = subprocess.run([cc, "-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror", str(src), "-o", str(exe), *flags,
                           *stand_ins], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = subprocess.run([str(exe)], capture_output=True, text=True, env=minimal_env(), timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["15872", "1.50", "8", "Ascend310", "1.0.0"]
    readelf = shutil.which("readelf")
    if readelf:
        needed = subprocess.run([readelf, "-d", str(exe)], capture_output=True, text=True).stdout
        assert "[libacl_cblas.so]" in needed and "[libacl_dvpp.so]" in needed


# ---------------------------------------------------------------- acceptance: MobileFaceNet over all of LFW

@pytest.fixture(scope="module")
def lfw_run(core, lfw_bin, sirius_tflite, tmp_path_factory) -> dict:
    """The reference fp16-output MobileFaceNet as a dynamic-batch emulator om, all 12,000 LFW images as one input
    file, and the ACL engine's embeddings of them at batch 8."""
    from pymfn.cli import main as pymfn_main
    from pymfn.metrics import lfw as lfw_eval
    from pymfn.bench.lfw_accuracy import embed_array
    from pymfn.export.default_model import default_model
    from pymfn.inputs.lfw_bin import load_lfw

    d = tmp_path_factory.mktemp("client_lfw")
    om = d / "mfn_dynamic.om"
    pb16 = default_model(fp16_output=True, quiet=True).path
    assert pymfn_main(["convert", str(pb16), "--target", "om-emu", "--output", str(om), "--dynamic-batch", "1,2,4,8"]) == 0
    images, issame = load_lfw(lfw_bin, color="rgb")
    x = (images.astype(np.float32) - 127.5) * 0.0078125
    x.tofile(d / "lfw.in.bin")
    emb = embed_array(core.AclEngine(str(om)), x, 8)
    return {"om": om, "input": d / "lfw.in.bin", "count": len(x), "issame": issame, "engine": emb,
            "accuracy": lfw_eval.evaluate(emb, issame).accuracy}


@pytest.mark.slow
@pytest.mark.acceptance
@pytest.mark.parametrize("run_mode", ["host"])
def test_client_runs_mobilefacenet_over_lfw_like_the_engine(client, lfw_run, tmp_path, run_mode):
    """The sample client, 12,000 LFW images at batch 8: every output equals the engine's bit for bit (so LFW
    accuracy is the engine's), and the emulator reports no leak. Over all of LFW in ACL_HOST mode (the dynamic
    model's pairing that tests/test_ascend_lfw.py does not run in full); both run modes are compared bit for bit on
    small inputs in every pytest run (test_client_outputs_equal_the_acl_engine_bit_for_bit), which keeps CI under
    its 30 minutes."""
    from pymfn.metrics import lfw as lfw_eval

    p = run_client(client, lfw_run["om"], lfw_run["input"], tmp_path / "lfw", run_mode, "--batch", "8",
                   count=lfw_run["count"], timeout=1800)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    assert LEAK_MARK not in p.stderr
    got = np.fromfile(tmp_path / "lfw.f32", np.float32).reshape(lfw_run["count"], -1)
    assert np.array_equal(got.view(np.uint32), lfw_run["engine"].view(np.uint32))
    assert lfw_eval.evaluate(got, lfw_run["issame"]).accuracy == lfw_run["accuracy"]
