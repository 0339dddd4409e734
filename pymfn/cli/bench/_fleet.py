"""``pymfn bench throughput --ray``: options -> pymfn.bench.fleet.fleet_throughput -> report and outputs."""
from __future__ import annotations

import argparse

from pymfn.cli.bench._arguments import (check_outputs, finish, model_argument, progress_printer, run_settings,
                                        save_result)


def run(args: argparse.Namespace) -> int:
    from pymfn.bench.fleet import FleetSettings, fleet_throughput
    from pymfn.embed.ray_pipeline import _resources

    if args.until_stable is not None:
        raise SystemExit("--until-stable with --ray: the fleet measures one common window; give one of them")
    if args.per_request_csv or args.plot:
        raise SystemExit(f"{'--per-request-csv' if args.per_request_csv else '--plot'} with --ray: every host's raw "
                         "samples are in --json (hosts[i].samples_ms)")
    check_outputs(args)
    fleet = FleetSettings(address=None if args.ray == "local" else args.ray, hosts=args.hosts,
                          local_nodes=args.ray_local_nodes, actor_cpus=args.actor_cpus,
                          actor_resources=_resources(args.actor_resources))
    result = fleet_throughput(model_argument(args), batch=args.batch, precision=args.precision, engine=args.engine,
                              input=args.input, settings=run_settings(args), fleet=fleet, log=progress_printer(args))
    print(result.report())
    prog = "pymfn bench throughput --ray"
    json_at = save_result(args, result, prog, json_note=" (with every host's raw samples)", can_plot=False)
    return finish(result, prog, json_at, f"{result.samples_processed} samples on {len(result.hosts)} host(s)")
