"""The two sides of `pymfn.bench regress`: the running install, another install, or a git commit built on demand.

A build is a folder to put on PYTHONPATH (it holds ``pymfn/``) plus the folder its native ``_core`` is
loaded from. A git commit is turned into one without a new venv and without touching the checkout:

* ``git archive <commit>`` is unpacked under ``$XDG_CACHE_HOME/pymfn/regress/commits/<sha>/`` (no
  ``git worktree`` is created, so ``git worktree list`` never fills up and nothing needs pruning in
  the repository);
* its native core is built there with CMake and the *current* interpreter (the same venv, the same
  OpenVINO and pybind11), exactly as setup.py does it (``-DPYMFN_OUTPUT_DIR``, ``-DPython_EXECUTABLE``);
* native builds are cached under ``regress/native/<key>/``, the key being the commit's ``csrc`` and
  ``CMakeLists.txt`` tree hashes plus the toolchain. Commits that did not touch C++ share one build.

A cached commit build is reused only while its native key is still today's (an OpenVINO or compiler
upgrade rebuilds it) and while every file in it still hashes to what ``build.json`` recorded (a native
build likewise against its ``.native.json``): a changed, missing or added file rebuilds the entry, and the
log says why. Both caches keep the ``keep`` most recently used entries; older ones are deleted after a run.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterator

from pymfn import config
from pymfn.files import hashes as _hashes
from pymfn.files.atomic import atomic_dir, json_bytes, scratch_dir
from pymfn.bench.naming import opt
from pymfn.errors import CommandError

CORE_GLOB = "_core*.so"
BUILD_RECORD = "build.json"          # in a commit build: commit, native key, hashes of every other file
NATIVE_RECORD = ".native.json"       # in a native build: hashes of its libraries (dot-file: not copied)
# How long a process waits for another that is building the same commit (then builds it itself).
BUILD_WAIT_S = 1800.0


@dataclass(frozen=True)
class Build:
    """One side of a comparison."""

    option: str              # the option that named it, for messages: "--baseline" / "--candidate"
    spec: str                # what the user gave ("HEAD~1", a folder, "" for the running install)
    root: Path               # goes first on PYTHONPATH; holds pymfn/
    core_dir: Path           # PYMFN_CORE_DIR for the worker: where _core*.so is
    commit: str | None       # full sha when the build came from git
    description: str         # one line for reports

    def as_dict(self) -> dict:
        return {"option": self.option, "spec": self.spec, "root": str(self.root), "core_dir": str(self.core_dir),
                "commit": self.commit, "description": self.description}


def regress_cache() -> Path:
    path = config.cache_dir() / "regress"
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_repo() -> Path:
    """The git checkout this pymfn runs from (the project root), where refs like HEAD~1 are resolved."""
    return config.PROJECT_ROOT


def _git(repo: Path, *args: str, binary: bool = False) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=not binary, check=False)
    except FileNotFoundError:
        raise CommandError("git is not installed; --baseline/--candidate can only name folders holding a built "
                           "pymfn package") from None


def _core_file(folder: Path) -> Path | None:
    found = sorted(folder.glob(CORE_GLOB))
    return found[0] if found else None


def running_build(option: str) -> Build:
    """The pymfn this process imported (the working tree for an editable install), with its loaded core."""
    import pymfn

    package = Path(pymfn.__file__).resolve().parent
    core_dir = Path(pymfn.load_core().__file__).resolve().parent
    desc = f"this install {package.parent}"
    head = _git(package.parent, "rev-parse", "--short=12", "HEAD")
    if head.returncode == 0:
        dirty = _git(package.parent, "status", "--porcelain", "--untracked-files=no").stdout.strip()
        desc += f" (HEAD {head.stdout.strip()}{', with uncommitted changes' if dirty else ''})"
    if core_dir != package:
        desc += f", core from {core_dir}"
    return Build(option, "", package.parent, core_dir, None, desc)


def folder_build(option: str, spec: str, folder: Path) -> Build:
    """A folder holding a built pymfn package (``folder/pymfn``) or the package folder itself."""
    folder = folder.resolve()
    package = folder / "pymfn"
    if not (package / "__init__.py").is_file() and (folder / "__init__.py").is_file() and folder.name == "pymfn":
        package = folder
    if not (package / "__init__.py").is_file():
        raise CommandError(f"{option} {spec}: the folder holds no pymfn package (expected {folder}/pymfn/__init__.py)")
    if _core_file(package) is None:
        raise CommandError(f"{option} {spec}: {package} has no built native core ({CORE_GLOB}); build it first "
                           "(pip install -e . there) or name a git commit instead")
    return Build(option, spec, package.parent, package, None, f"install {package.parent}")


def resolve_commit(option: str, spec: str, repo: Path) -> str:
    """The full sha of ``spec`` in ``repo``, or a one-line error saying what was expected."""
    probe = _git(repo, "rev-parse", "--git-dir")
    if probe.returncode != 0:
        raise CommandError(f"{option} {spec}: not a folder holding a built pymfn package, and {repo} is not a git "
                           f"repository to look it up as a commit (pass {opt('repo')})")
    rev = _git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{spec}^{{commit}}")
    if rev.returncode != 0 or not rev.stdout.strip():
        raise CommandError(f"{option} {spec}: not a commit in the git repository {repo}, nor a folder holding a "
                           "built pymfn package")
    return rev.stdout.strip()


def locate(option: str, spec: str | None, repo: Path) -> Build | str:
    """A Build for an install, or the full sha of a commit still to be built."""
    if spec is None or spec == "":
        return running_build(option)
    path = Path(spec).expanduser()
    if path.is_dir():
        return folder_build(option, spec, path)
    if path.exists():
        raise CommandError(f"{option} {spec}: is a file; expected a git commit, a folder holding a built pymfn "
                           "package, or (for saved runs) pytest-benchmark .json files on both sides")
    return resolve_commit(option, spec, repo)


def resolve_builds(specs: dict[str, tuple[str, str | None]], repo: Path, log: Callable[[str], None]) -> dict[str, Build]:
    """{side: (option, spec)} -> {side: Build}. Every ref is resolved to a sha before anything is built, so
    a branch moving during a build (other people committing) cannot shift what HEAD~1 means mid-way."""
    located = {side: locate(option, spec, repo) for side, (option, spec) in specs.items()}
    builds = {}
    for side, found in located.items():
        if isinstance(found, Build):
            builds[side] = found
            continue
        option, spec = specs[side]
        root = CommitBuilder(repo, regress_cache(), log).ensure(found, spec)
        builds[side] = Build(option, spec, root, root / "pymfn", found, f"{spec} = commit {found[:12]} (built in {root})")
    return builds


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise builds between concurrent `regress` runs sharing one cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _toolchain_id() -> str:
    """What else decides the native binary besides the sources: interpreter, OpenVINO, pybind11, compiler."""
    parts = [os.path.realpath(sys.executable), sys.version, os.environ.get("CXX", ""),
             os.environ.get("PYMFN_CMAKE_ARGS", "")]
    for dist in ("openvino", "pybind11"):
        try:
            parts.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{dist} absent")
    try:
        cxx = os.environ.get("CXX") or "c++"
        parts.append(subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout.splitlines()[0])
    except (OSError, IndexError):
        parts.append("no c++")
    return "\n".join(parts)


class CommitBuilder:
    """Builds (or finds in the cache) the pymfn of one commit; see the module docstring for the layout."""

    def __init__(self, repo: Path, cache: Path, log: Callable[[str], None]) -> None:
        self.repo = repo
        self.cache = cache
        self.log = log

    def commit_dir(self, sha: str) -> Path:
        return self.cache / "commits" / sha

    def native_key(self, sha: str) -> str:
        trees = []
        for path in ("csrc", "CMakeLists.txt"):
            rev = _git(self.repo, "rev-parse", "--verify", "--quiet", f"{sha}:{path}")
            if rev.returncode != 0:
                raise CommandError(f"commit {sha[:12]} has no {path}: it predates pymfn's native core and cannot "
                                   "be benchmarked")
            trees.append(rev.stdout.strip())
        return hashlib.sha256("\n".join([*trees, _toolchain_id()]).encode()).hexdigest()[:20]

    def ensure(self, sha: str, spec: str) -> Path:
        """The commit's build folder. A cached one counts only if its native key (sources + toolchain) is
        today's: after an OpenVINO or compiler upgrade the commit's binary is rebuilt, not reused."""
        key = self.native_key(sha)
        done = self.commit_dir(sha) / BUILD_RECORD
        if self._reusable(done, key) is None:
            done.touch()  # most recently used: pruning keeps it
            return done.parent
        with _locked(self.cache / "build.lock"):
            why = self._reusable(done, key)
            if why is None:  # another run built it while we waited
                return done.parent
            if done.is_file():
                self.log(f"{spec} ({sha[:12]}): the cached build {done.parent} {why}; rebuilding")
            return self._build(sha, spec, key)

    @staticmethod
    def _reusable(done: Path, key: str) -> str | None:
        """None when the commit build of ``done`` can be reused, else why not (for the log)."""
        record = _hashes.read_json(done)
        if not isinstance(record, dict):
            return "has no readable build record"
        if record.get("native_key") != key:
            return "was made with another toolchain"
        if "files" not in record:
            return "has no recorded file hashes (made by an older pymfn)"
        why = _hashes.tree_mismatch(done.parent, record.get("files"), skip=(BUILD_RECORD,))
        return None if why is None else f"fails its hash check ({why})"

    def _build(self, sha: str, spec: str, key: str) -> Path:
        started = time.monotonic()
        with atomic_dir(self.commit_dir(sha), wait=BUILD_WAIT_S) as tmp:
            self._unpack(sha, tmp)
            native = self._native(key, tmp, sha, spec)
            for entry in native.iterdir():  # libraries, and the emulator's toolkit root (a folder of links)
                if entry.name.startswith("."):
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.copytree(entry, tmp / "pymfn" / entry.name, symlinks=True)
                else:
                    shutil.copy2(entry, tmp / "pymfn" / entry.name, follow_symlinks=False)
            files = _hashes.tree_manifest(tmp)
            (tmp / BUILD_RECORD).write_bytes(json_bytes({"commit": sha, "native_key": key, "built": time.time(),
                                                         "files": files}))
        self.log(f"built {spec} ({sha[:12]}) in {time.monotonic() - started:.0f} s")
        return self.commit_dir(sha)

    def _unpack(self, sha: str, dest: Path) -> None:
        out = _git(self.repo, "archive", "--format=tar", sha, binary=True)
        if out.returncode != 0:
            raise CommandError(f"git archive {sha[:12]} failed: {out.stderr.decode(errors='replace').strip()}")
        with tarfile.open(fileobj=io.BytesIO(out.stdout)) as tar:
            tar.extractall(dest, filter="data")
        if not (dest / "pymfn" / "__init__.py").is_file():
            raise CommandError(f"commit {sha[:12]} has no pymfn/__init__.py: not a pymfn commit")

    def _native(self, key: str, source: Path, sha: str, spec: str) -> Path:
        """The native libraries for ``key``, built from ``source`` unless cached."""
        final = self.cache / "native" / key
        if _core_file(final) is not None:
            why = _hashes.tree_mismatch(final, _hashes.read_json(final / NATIVE_RECORD), skip=(NATIVE_RECORD,))
            if why is None:
                os.utime(final)
                self.log(f"{spec} ({sha[:12]}): native core unchanged from a cached build ({key})")
                return final
            self.log(f"{spec} ({sha[:12]}): the cached native build {final} fails its hash check ({why}); rebuilding")
        log_path = self.cache / "logs" / f"{key}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log(f"building the native core of {spec} ({sha[:12]}) with CMake (a minute or two; log: {log_path})")
        with atomic_dir(final, wait=BUILD_WAIT_S) as out, scratch_dir(final) as build_dir, open(log_path, "w") as log:
            build = str(build_dir)
            jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
            steps = [["cmake", "-S", str(source), "-B", build, f"-DPYMFN_OUTPUT_DIR={out}",
                      f"-DPython_EXECUTABLE={sys.executable}", "-DCMAKE_BUILD_TYPE=Release",
                      *[a for a in os.environ.get("PYMFN_CMAKE_ARGS", "").split() if a]],
                     ["cmake", "--build", build, "--parallel", jobs]]
            for cmd in steps:
                log.write("$ " + " ".join(cmd) + "\n")
                log.flush()
                try:
                    rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode
                except FileNotFoundError:
                    raise CommandError("cmake is not installed; it is needed to build a git commit's native core "
                                       "(pip install cmake, or pass a folder holding a built pymfn)") from None
                if rc != 0:
                    raise CommandError(f"building the native core of {spec} ({sha[:12]}) failed ({cmd[0]} {cmd[1]} "
                                       f"exit {rc}); log: {log_path}")
            if _core_file(out) is None:
                raise CommandError(f"building the native core of {spec} ({sha[:12]}) produced no {CORE_GLOB}; "
                                   f"log: {log_path}")
            (out / NATIVE_RECORD).write_text(json.dumps(_hashes.tree_manifest(out)))
        return final


def prune(cache: Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` most recently used commit and native builds; returns what was removed."""
    removed = []
    for kind in ("commits", "native"):
        folder = cache / kind
        if not folder.is_dir():
            continue
        entries = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
        entries.sort(key=lambda p: _last_used(p), reverse=True)
        for old in entries[keep:]:
            shutil.rmtree(old, ignore_errors=True)
            removed.append(old)
    return removed


def _last_used(path: Path) -> float:
    marker = path / BUILD_RECORD
    return (marker if marker.exists() else path).stat().st_mtime
