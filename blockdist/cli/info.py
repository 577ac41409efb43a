"""``blockdist info OUT``: what a blockdist output says of the job that made it — a product's
manifest, or the workload record of an SVD's, a PCA's or a top-k's output (one shape for all three)."""

from __future__ import annotations

import argparse
import json

from ..errors import ArrayNotFoundError, InputError
from ..planning import Plan, format_size
from ..planning.units import format_flops
from .options import add_command, add_storage_options


def add_parser(commands: argparse._SubParsersAction) -> None:
    info = add_command(commands, "info", "show how the product in OUT was made and how its job went",
                       "Print the manifest of a blockdist output: its job's status, the plan, and the "
                       "figures of its last run (rates, seconds per activity).",
                       {"out": "a Zarr array blockdist wrote"})
    info.add_argument("--json", action="store_true", help="print the manifest as JSON")
    add_storage_options(info)


def info(args: argparse.Namespace) -> int:
    from ..runtime.manifest import KEY
    from ..runtime.workload import read_record
    from ..storage import locate, stored_attributes
    from ..storage.groups import group_attributes
    from .commands import storage_options

    ref = locate(args.out, storage_options=storage_options(args), role="out")
    attributes = stored_attributes(ref)
    if attributes is None:
        attributes = group_attributes(ref)  # a top-k output is a group
    if attributes is None:
        raise ArrayNotFoundError(f"{ref}: no Zarr array there")
    record = read_record(attributes)
    if record is not None:  # an SVD's U, a PCA's scores, a top-k group: one record for every workload
        print(json.dumps(record.to_json(), indent=1) if args.json else "\n".join([f"output        {ref}",
                                                                                  *record.lines()]))
        return 0
    manifest = attributes.get(KEY)
    if not isinstance(manifest, dict) or "plan" not in manifest:
        raise InputError(f"{ref} is a Zarr array without a blockdist manifest: blockdist did not write it")
    if args.json:
        print(json.dumps(manifest, indent=1))
        return 0
    plan = Plan.from_dict(manifest["plan"])
    print(f"output        {ref}")
    print(f"status        {manifest['status']}: {len(manifest.get('done', []))} of {plan.tiles} tiles done "
          f"(job {manifest['token']})")
    print(plan.summary())
    figures = manifest.get("figures")
    if figures:
        print(f"last run      {figures['seconds']:.2f} s, "
              f"{format_flops(figures['gflops_per_second'] * 1e9, per_second=True)}, "
              f"{figures['tiles_computed']} tile(s) computed, read {format_size(figures['bytes_read'])}, "
              f"wrote {format_size(figures['bytes_written'])}")
        activity = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in figures["activity_seconds"].items())
        print(f"task seconds  {activity}")
    return 0
