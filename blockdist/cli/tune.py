"""``blockdist tune``: measure this machine's kernel and I/O rates and save the planner's model."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

from ..runtime.tune import blas_name, measure
from ..runtime.tunefile import ENV_VAR, cpu_name, describe, load_model, save, tune_path


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``blockdist tune`` to the CLI's subparsers (``main`` runs it)."""
    parser = subparsers.add_parser(
        "tune", help="measure this machine's kernel and save the planner's model",
        description="Measure one BLAS thread's rate inside blockdist's tasks (and alone), the kernel "
        "against np.matmul by row block and panel depth, and Zarr read, write and decode rates on "
        "this machine, and save them as JSON where plans read "
        f"them (${ENV_VAR}, else $XDG_CONFIG_HOME/blockdist/tune.json, else "
        "~/.config/blockdist/tune.json). Run it on a machine like the workers', with nothing else "
        "busy.",
    )
    parser.add_argument("--quick", action="store_true", help="smaller tiles and fewer repeats (seconds)")
    parser.add_argument("--output", metavar="PATH", help=f"where to save (default: {tune_path()})")
    parser.add_argument("--dry-run", action="store_true", help="measure and print, save nothing")
    parser.add_argument("--no-io", action="store_true", help="skip the Zarr read/write measurement")
    parser.add_argument("--show", action="store_true", help="print the stored model and exit")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``blockdist tune``; returns the exit status."""
    path = Path(args.output).expanduser() if getattr(args, "output", None) else tune_path()
    if getattr(args, "show", False):
        print(describe(path))
        print(json.dumps(dataclasses.asdict(load_model(path)), indent=1))
        return 0
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if name in os.environ:
            print(f"note: {name}={os.environ[name]} is set; it can slow OpenBLAS and so what is measured",
                  file=sys.stderr)
    print(f"measuring on {cpu_name()} ({blas_name()}), one BLAS thread …", flush=True)
    document = measure(quick=args.quick, io=not args.no_io, progress=lambda line: print(line, flush=True))
    model = document["model"]
    print(f"kernel rows {model['kernel_rows']}, panel depth {model['panel_depth']}, "
          f"{model['flops_per_thread'] / 1e9:.1f} GFLOP/s per thread")
    if args.dry_run:
        return 0
    print(f"saved to {save(document, path)}")
    return 0
