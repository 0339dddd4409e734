"""Throughput with larger batches and several in-flight requests; same JSON keys as latency. With --ray: every
host of a Ray cluster at once, on the coordinator's clock (pymfn.bench.fleet)."""
from __future__ import annotations

import argparse

from pymfn.cli.bench import _offline
from pymfn.cli.bench._arguments import add_run_arguments
from pymfn.cli.bench._options import run_checked


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser, batch=16, inflight=2, min_duration=5.0)
    g = parser.add_argument_group("fleet (Ray; pip install 'pymfn[ray]')")
    g.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run on every host of a Ray cluster at once (one runner per node, each on its --device "
                   "list), synchronised start, aggregate = all samples / the common wall time on this machine's "
                   "clock (never a sum of per-host rates); ADDRESS as for ray.init (default: a Ray on this machine)")
    g.add_argument("--hosts", type=int, default=None, help="with --ray: use this many of the cluster's nodes "
                   "(default all)")
    g.add_argument("--ray-local-nodes", type=int, default=None, metavar="N",
                   help="with --ray and no ADDRESS: start N Ray nodes on this machine (emulated hosts, for trying "
                   "the fleet path)")
    g.add_argument("--actor-cpus", type=float, default=1.0, help="with --ray: CPUs each host's runner reserves "
                   "(default 1)")
    g.add_argument("--actor-resources", default=None, metavar="NAME=N,...",
                   help="with --ray: custom resources per runner, e.g. NPU=1 on Ascend hosts")


def run(args: argparse.Namespace) -> int:
    if args.ray is None:
        given = [o for o, v in (("--hosts", args.hosts), ("--ray-local-nodes", args.ray_local_nodes),
                                ("--actor-resources", args.actor_resources)) if v is not None]
        if given:
            raise SystemExit(f"{given[0]} is for fleet runs: add --ray")
        return run_checked(args, "throughput", lambda a: _offline.run(a, "throughput"))
    from pymfn.cli.bench import _fleet

    return run_checked(args, "throughput", _fleet.run)
