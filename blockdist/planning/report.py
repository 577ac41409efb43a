"""A plan as people read it: a short text report, and the same as an HTML table for Jupyter."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from .units import format_flops, format_size

if TYPE_CHECKING:
    from .record import OperandPlan, PlanRecord


def _operand(name: str, operand: OperandPlan) -> str:
    (rows, cols), (chunk_rows, chunk_cols) = operand.shape, operand.chunks
    return f"{operand.name or name} {rows}×{cols} {operand.dtype} in chunks {chunk_rows}×{chunk_cols}"


def summary(plan: PlanRecord) -> str:
    """The plan's figures, one line a topic, the product first."""
    rows, cols = plan.grid.shape
    a, b = plan.a, plan.b
    lines = [
        f"C ({plan.m}×{plan.n} {plan.dtype}) = {plan.product or 'A·B'}, with {_operand('A', a)}, {_operand('B', b)}",
        f"  strategy  {plan.strategy}: {plan.reason}",
        f"  tiles     {plan.tile_rows}×{plan.tile_cols} → {rows}×{cols} = {plan.tiles} tile(s)"
        + (f" × {plan.k_splits} k-ranges" if plan.k_splits > 1 else "")
        + f"; {plan.tasks} tasks; k-panels {a.panel_depth} (A{', mapped' * a.mapped}) / "
        f"{b.panel_depth} (B{', mapped' * b.mapped})",
        f"  cluster   {plan.workers} worker(s) × {plan.threads} thread(s), "
        f"{format_size(plan.memory_per_worker)} per worker",
        f"  memory    {format_size(plan.memory.total)} per task of a "
        f"{format_size(plan.task_budget)} budget: {plan.memory.describe()}",
        f"  reads     {format_size(plan.bytes_read)} = {plan.io_ratio:.2f} × the lower bound "
        f"{format_size(plan.io_lower_bound)}",
        f"  writes    {format_size(plan.bytes_written)}; write unit: {plan.write_unit.describe()}, "
        "each written whole by one task",
        f"  traffic   {format_size(plan.traffic_per_worker)} per worker (reads, writes"
        + (", partials" if plan.k_splits > 1 else "") + f") = {plan.traffic_ratio:.2f} × the "
        f"parallel lower bound {format_size(plan.traffic_lower_bound_per_worker)}; "
        f"{plan.waves} wave(s) of tasks over {plan.slots} thread(s)",
        f"  predicted {plan.predicted_seconds:,.1f} s by the cost model"
        + (f"; partials: {format_size(plan.transfer_bytes)} between workers, in {plan.reduce_bands} band(s) a tile"
           if plan.k_splits > 1 else ""),
        f"  work      {format_flops(plan.flops)}" + _computed(plan),
    ]
    stored = _stored(plan)
    if stored:
        lines.insert(1, f"  stored    {stored}")
    return "\n".join(lines)


def _computed(plan: PlanRecord) -> str:
    """What of the nominal work the tasks do: the tiles on and above the diagonal, the present pairs."""
    if plan.flops_computed == plan.flops:
        return ""
    why = []
    if plan.symmetric:
        why.append("tiles on and above the diagonal")
    if plan.zero_blocks:
        empty = len(plan.empty_tiles)
        why.append(f"present block products only, {plan.flops_computed / max(1, plan.flops):.1%} of them"
                   + (f"; {empty} of {plan.tiles} tile(s) have none and are written as absent (0)"
                      if empty and not plan.writes_empty_tiles else ""))
    return f" nominal, {format_flops(plan.flops_computed)} computed ({'; '.join(why)})"


def _stored(plan: PlanRecord) -> str:
    """Which chunks of the inputs are stored, where some are not ("" where all are, or unknown)."""
    operands = [("A", plan.a)] if plan.symmetric else [("A", plan.a), ("B", plan.b)]
    listed = [(name, x.layout.stored) for name, x in operands if x.layout.stored is not None]
    if all(stored.complete for _, stored in listed):
        return ""
    return "; ".join(stored.describe(name) for name, stored in listed)


def html_table(plan: PlanRecord) -> str:
    """:func:`summary` as a table: the product as its caption, a row per topic."""
    text = summary(plan).splitlines()
    rows = [line.strip().split(None, 1) for line in text[1:]]
    cells = "".join(
        f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>"
        f"{html.escape(v)}</td></tr>" for k, v in rows
    )
    title = html.escape(text[0])
    return f"<table><caption style='text-align:left'><b>blockdist plan</b>: {title}</caption>{cells}</table>"
