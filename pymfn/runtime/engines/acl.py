"""AscendCL (native ``_core.AclEngine``): .om models on an Ascend device, or on pymfn's ACL emulator."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pymfn.export import om
from pymfn.runtime.engines._registry import (F32_NAMES, EngineSpec, _core, check_device_id, register_engine,
                                             reject_extra)
from pymfn.runtime.precision import PRECISIONS, canonical, om_emu_precision


def check_acl_options(*, threads: int, streams: int, options: dict[str, Any]) -> None:
    if "device" in options:
        options["device"] = check_device_id(options["device"])


def check_om_precision(path: Path, precision: str) -> None:
    """An .om runs in the precision it was converted for: a request is accepted only when it names that one.

    (The default 'f32' of the command line means "as converted" for an .om and is not checked.)
    """
    fixed = f"{path}: an .om's precision is fixed by atc at conversion; precision '{precision}' cannot be chosen at run time"
    try:
        wanted = canonical(precision)
    except ValueError:
        raise _core.InvalidArgument(fixed) from None
    if not om.is_emulator_om(path):
        raise _core.InvalidArgument(fixed)
    declared = om_emu_precision(path)["declared"]
    if declared != wanted:
        raise _core.InvalidArgument(f"{fixed}: this om was converted for {declared}")


def open_acl(path: Path, *, precision: str, threads: int, streams: int, inflight: int, **kw: Any) -> Any:
    acl = getattr(_core, "AclEngine", None)
    if acl is None:
        raise _core.EngineError(f"{path}: this pymfn build has no AscendCL engine (build_info()['acl'] = "
                                f"{_core.build_info()['acl']!r}); rebuild with OpenVINO present or CANN installed")
    if precision not in F32_NAMES:
        check_om_precision(path, precision)
    if threads or streams:
        raise _core.InvalidArgument("the acl engine has no threads/streams settings")
    device = kw.pop("device", 0)
    reject_extra(kw, "acl")
    return acl(str(path), device=device, num_requests=inflight)


register_engine(EngineSpec(
    name="acl", open=open_acl, suffixes=(".om",), default_for=(".om",), precisions=PRECISIONS,
    check_options=check_acl_options,
    summary="AscendCL: an Ascend device, or pymfn's emulator (an .om runs the precision it was converted for)"))
