"""Where a blockdist run's time goes: every CPU sample of its worker processes, by kind of work.

    python benchmarks/cpu_profile.py --scale codecs --scenarios zstd float32   # needs perf (linux-perf)

For each scenario (``run.py``'s, on the same cached inputs and the same 2 × 1-thread cluster)
``perf record -a -e cpu-clock`` samples the whole machine while ``blockdist.run`` computes the
product; the samples of the worker processes are then sorted by shared object and symbol into:

* **BLAS**: the BLAS library (openblas, scipy's or numpy's);
* **decode**: the codec libraries (zstd, blosc, lz4, zlib) and numcodecs;
* **copies**: ``memcpy``/``memmove`` and the kernel's user copies (``preadv``, page-cache reads);
* **faults and mapping**: page faults, zeroing new pages, mapping and unmapping, TLB shootdowns;
* **other kernel**: the rest of the kernel (scheduling, locks, interrupts, I/O paths);
* **Python and numpy**: the interpreter and numpy's own loops (between and around BLAS calls);
* **other**: anything else in the workers.

Beside them: **idle**, the cores' time not sampled at all (the workers waiting on the scheduler,
on storage, on each other), **client and scheduler** (this process: the local cluster's
scheduler runs in it), and **others**, samples of other processes (a loaded machine shows here,
and such a profile is a direction, not a result). The ideal is the
product's flops at the layout ceiling (``ceilings.py``: 2 processes × 1 BLAS thread at once).
Writes ``profile-<name>.json`` and ``.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import run as suite  # noqa: E402  benchmarks/run.py: scenarios, inputs and the cluster
from ceilings import layout_rate  # noqa: E402

FREQUENCY = 499  #: samples a second a CPU: coarse enough to cost little, fine enough for seconds
KINDS = ("BLAS", "decode", "copies", "faults and mapping", "other kernel", "Python and numpy", "other")
_FAULTS = re.compile(r"fault|clear_page|zap_|unmap|mmap|tlb|page_add|folio|lru|rmap|pte|pmd|vma|populate|"
                     r"do_anonymous|alloc_pages|free_pages|__handle_mm")
_COPIES = re.compile(r"memcpy|memmove|copy_user|copy_to_user|copy_page|rep_movs|filemap_read|copyout")


def kind_of(dso: str, symbol: str) -> str:
    """The kind of work one sample of ``symbol`` in ``dso`` is.

    >>> kind_of("libscipy_openblas64_-ff651d7f.so", "dgemm_kernel_HASWELL")
    'BLAS'
    >>> kind_of("[kernel.kallsyms]", "clear_page_erms"), kind_of("libc.so.6", "__memmove_avx_unaligned_erms")
    ('faults and mapping', 'copies')
    """
    name, lowered = dso.lower(), symbol.lower()
    if "blas" in name or "mkl" in name or "lapack" in name:
        return "BLAS"
    if any(codec in name for codec in ("zstd", "blosc", "lz4", "libz.", "numcodecs", "zlib")):
        return "decode"
    if _COPIES.search(lowered):
        return "copies"
    if "kernel" in name or name.startswith("[k"):
        return "faults and mapping" if _FAULTS.search(lowered) else "other kernel"
    if "python" in name or "multiarray" in name or "umath" in name or "numpy" in name:
        return "Python and numpy"
    return "other"


class Samples:
    """One recording's samples: the workers' by kind (and their top symbols), this process's,
    and every other process's (by command name)."""

    def __init__(self) -> None:
        self.kinds: dict[str, int] = defaultdict(int)
        self.symbols: dict[tuple[str, str], int] = defaultdict(int)
        self.client = self.idle = 0
        self.others: dict[str, int] = defaultdict(int)

    def top(self, count: int = 6) -> dict[str, list[tuple[str, int]]]:
        """Each kind's ``count`` most sampled symbols."""
        by_kind: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for (kind, symbol), samples in sorted(self.symbols.items(), key=lambda item: -item[1]):
            if len(by_kind[kind]) < count:
                by_kind[kind].append((symbol, samples))
        return dict(by_kind)


def _samples(data: Path, pids: set[int]) -> Samples:
    """The samples of ``data``: the processes ``pids`` (all their threads) by kind, this process
    (the client and the local cluster's scheduler), and the rest."""
    text = subprocess.run(["perf", "script", "-i", str(data), "-F", "comm,pid,ip,sym,dso", "--no-demangle"],
                          capture_output=True, text=True, check=True).stdout
    found = Samples()
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None:
            continue
        pid = int(match["pid"])
        if pid in pids:
            kind = kind_of(match["dso"], match["sym"])
            found.kinds[kind] += 1
            found.symbols[kind, f"{match['sym'] or '?'} ({Path(match['dso']).name})"] += 1
        elif pid == os.getpid():
            found.client += 1
            found.symbols["client: " + kind_of(match["dso"], match["sym"]), f"{match['sym'] or '?'} ({Path(match['dso']).name})"] += 1
        elif match["comm"].strip() == "swapper":  # the idle task: a core with nothing to run
            found.idle += 1
        else:
            found.others[match["comm"].strip()] += 1
    return found


#: one line of ``perf script -F comm,pid,ip,sym,dso``: ``python  1234  7fd30b7ab6b0 symbol (/path/lib.so)``
_SAMPLE = re.compile(r"^\s*(?P<comm>.*?)\s+(?P<pid>\d+)\s+[0-9a-f]+\s+(?P<sym>.*?)\s*\((?P<dso>[^()]*)\)\s*$")


def profile(s: suite.Scenario, data: Path, work: Path) -> dict[str, Any]:
    """Run ``blockdist`` on scenario ``s`` under ``perf record``; the samples by kind, in CPU-seconds."""
    paths = suite.ensure_inputs(s, data)
    out = work / "c.zarr"
    with suite.bench_cluster(s.memory) as client:
        pids = set(client.run(suite._warm).values())
        record = work / f"{s.name}.perf"
        perf = subprocess.Popen(["perf", "record", "-a", "-e", "cpu-clock", "-F", str(FREQUENCY), "-o",
                                 str(record)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # perf has opened its events
        load = os.getloadavg()[0]
        start = time.perf_counter()
        result = suite.run_blockdist(s, *paths, out, client)
        seconds = time.perf_counter() - start
        perf.send_signal(signal.SIGINT)
        perf.wait(timeout=120)
    found = _samples(record, pids)
    record.unlink(missing_ok=True)
    kinds, client_samples, others = found.kinds, found.client, sum(found.others.values())
    cores = os.cpu_count() or 1
    cpu = {kind: kinds.get(kind, 0) / FREQUENCY for kind in KINDS}
    busy = sum(cpu.values())
    return {"scenario": s.name, "title": s.title, "seconds": seconds, "load_average": load,
            "flops": s.flops, "dtype": s.dtype, "cpu_seconds": cpu, "busy_seconds": busy,
            "idle_seconds": max(0.0, cores * seconds - busy - (client_samples + others) / FREQUENCY),
            "client_seconds": client_samples / FREQUENCY, "others_seconds": others / FREQUENCY, "cores": cores,
            "top_symbols": found.top(), "others_by_command": dict(found.others),
            "task_stats": result["task_stats"], "plan_summary": result["plan_summary"]}


def table(rows: list[dict[str, Any]], ceilings: dict[str, float]) -> str:
    """The profiles as one markdown table: CPU-seconds by kind, and shares of the cores' time."""
    head = ["case", "seconds", "% layout", "ideal BLAS s", *KINDS, "idle", "client and scheduler", "others"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        ideal = r["flops"] / (ceilings[r["dtype"]] * 1e9)
        whole = r["cores"] * r["seconds"]
        cells = [f"{r['cpu_seconds'][k]:.1f} ({100 * r['cpu_seconds'][k] / whole:.0f} %)" for k in KINDS]
        cells += [f"{r[key]:.1f} ({100 * r[key] / whole:.0f} %)"
                  for key in ("idle_seconds", "client_seconds", "others_seconds")]
        lines.append("| " + " | ".join([r["title"], f"{r['seconds']:.2f}", f"{100 * ideal / r['seconds']:.0f} %",
                                        f"{ideal * r['cores']:.1f}", *cells]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="codecs", choices=["smoke", "quick", "default", "codecs", "codecs-smoke"])
    parser.add_argument("--scenarios", nargs="+", metavar="NAME")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "blockdist-bench")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--name", default="profile")
    parser.add_argument("--ceiling", nargs="+", default=[], metavar="DTYPE=GFLOPS",
                        help="a layout ceiling measured before (otherwise ceilings.py measures it now)")
    args = parser.parse_args(argv)
    chosen = [s for s in suite.scenarios(args.scale) if not args.scenarios or s.name in args.scenarios]
    dtypes = sorted({s.dtype for s in chosen})
    given = {dtype: float(rate) for dtype, rate in (item.split("=") for item in args.ceiling)}
    ceilings = {dtype: given.get(dtype) or layout_rate(dtype)["best_gflops"] for dtype in dtypes}
    rows = []
    with tempfile.TemporaryDirectory(dir=args.data.parent) as scratch:
        for s in chosen:
            rows.append(profile(s, args.data, Path(scratch)))
            print(f"{s.name}: {rows[-1]['seconds']:.2f} s, load {rows[-1]['load_average']:.2f}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"ceilings_gflops": ceilings, "frequency": FREQUENCY, "rows": rows}
    (args.out / f"{args.name}.json").write_text(json.dumps(report, indent=1))
    text = table(rows, ceilings)
    (args.out / f"{args.name}.md").write_text(f"# Profile: CPU-seconds of the worker processes by kind\n\n"
                                              f"Layout ceilings (GFLOP/s): {ceilings}\n\n{text}\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
