"""pyproject.toml's dependencies and extras against .ci/constraints.txt (the exact versions CI installs), and the
single version source."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11 (CI's); 3.10 would need tomli
requirements = pytest.importorskip("packaging.requirements")

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
CONSTRAINTS = ROOT / ".ci" / "constraints.txt"
# What the base install must never pull: the heavy, optional stacks the extras are for.
NOT_IN_BASE = {"tensorflow", "tensorflow-cpu", "keras", "tf2onnx", "onnx", "onnxruntime", "nncf", "matplotlib", "ray",
               "mlcommons-loadgen", "torch"}
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s#;]+)\s*(?:#\s*via\s+(.+))?$")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def constraint_pins() -> dict[str, tuple[str, list[str]]]:
    """{package: (version, [packages it is there for])} from the constraints file; every line is checked."""
    pins: dict[str, tuple[str, list[str]]] = {}
    for n, line in enumerate(CONSTRAINTS.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _PIN.match(line)
        assert m, f"{CONSTRAINTS}:{n}: expected 'name==version' (optionally '# via a, b'), got {line!r}"
        name = normalize(m.group(1))
        assert name not in pins, f"{CONSTRAINTS}:{n}: {name} pinned twice"
        via = [normalize(v) for v in re.split(r"[,\s]+", m.group(3) or "") if v]
        pins[name] = (m.group(2), via)
    return pins


def requirement_list(group: str) -> list:
    project = PYPROJECT["project"]
    if group == "base":
        texts = project["dependencies"]
    elif group == "build":
        texts = PYPROJECT["build-system"]["requires"]
    else:
        texts = project["optional-dependencies"][group]
    return [requirements.Requirement(t) for t in texts]


def groups() -> list[str]:
    return ["base", "build", *PYPROJECT["project"]["optional-dependencies"]]


def direct_requirements() -> dict[str, list]:
    """{package: [Requirement, ...]} over the base, the build requirements and every extra (pymfn[...] excluded)."""
    found: dict[str, list] = {}
    for group in groups():
        for req in requirement_list(group):
            if normalize(req.name) != "pymfn":
                found.setdefault(normalize(req.name), []).append(req)
    return found


def test_base_dependencies_have_no_optional_stack() -> None:
    base = {normalize(r.name) for r in requirement_list("base")}
    assert base >= {"numpy", "openvino"}
    assert not base & NOT_IN_BASE, f"the base install would pull {sorted(base & NOT_IN_BASE)}"


def test_extras_are_composed_as_documented() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert {"train", "convert", "quantize", "plot", "ray", "loadgen", "all", "dev"} <= set(extras)

    def self_extras(group: str) -> set[str]:
        return {e for r in requirement_list(group) if normalize(r.name) == "pymfn" for e in r.extras}

    assert self_extras("all") == set(extras) - {"all", "dev"}
    # dev: every extra (the LoadGen harness and Ray tests run in CI)
    assert self_extras("dev") == set(extras) - {"all", "dev"}
    assert any(normalize(r.name) == "tensorflow-cpu" for r in requirement_list("train"))
    for group in extras:
        assert self_extras(group) <= set(extras), f"[{group}] names an extra that does not exist"


def test_every_pin_is_a_dependency_and_every_dependency_is_pinned() -> None:
    pins = constraint_pins()
    direct = direct_requirements()
    for name, reqs in direct.items():
        if name == "pip":
            continue
        assert name in pins, f"{name} ({reqs[0]}) is a dependency but {CONSTRAINTS.name} does not pin it"
        version = pins[name][0]
        for req in reqs:  # the tested version lies inside every range pyproject declares
            assert req.specifier.contains(version, prereleases=True), f"{name}=={version} is outside {req}"
    for name, (_, via) in pins.items():
        if name in direct:
            continue
        assert via, f"{CONSTRAINTS.name} pins {name}, which no dependency group names and no '# via' explains"
        for parent in via:
            assert parent in pins, f"{CONSTRAINTS.name}: {name} is pinned 'via {parent}', which is not pinned"


def test_pins_lead_back_to_a_dependency_group() -> None:
    """Following '# via' from any pin reaches a direct dependency: no orphan left from a removed package."""
    pins = constraint_pins()
    direct = set(direct_requirements())
    for name in pins:
        seen, todo = set(), [name]
        while todo:
            cur = todo.pop()
            if cur in direct or cur in seen:
                break
            seen.add(cur)
            todo.extend(pins[cur][1])
        else:
            pytest.fail(f"{CONSTRAINTS.name}: {name} leads to no dependency of pyproject.toml")


def test_one_version_source() -> None:
    assert "version" not in PYPROJECT["project"] and "version" in PYPROJECT["project"]["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "pymfn.__version__"}
    assert "version=" not in (ROOT / "setup.py").read_text().replace(" ", "")
    import pymfn

    assert re.fullmatch(r"\d+\.\d+\.\d+(\.dev\d+)?", pymfn.__version__)


def test_typed_package_and_headers_ship() -> None:
    data = PYPROJECT["tool"]["setuptools"]["package-data"]["pymfn"]
    assert "py.typed" in data and (ROOT / "pymfn" / "py.typed").is_file()
    assert any((ROOT / "pymfn").glob("include/acl/*.h"))


def test_requires_python_covers_the_ci_python() -> None:
    import sys

    from packaging.specifiers import SpecifierSet

    spec = SpecifierSet(PYPROJECT["project"]["requires-python"])
    assert f"{sys.version_info.major}.{sys.version_info.minor}" in spec
    assert "3.10" in spec and "3.13" in spec  # openvino's and numpy's wheels cover these
