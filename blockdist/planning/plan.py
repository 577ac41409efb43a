"""A :class:`Plan`: the planner's :class:`~.record.PlanRecord` as people read it — a short text
report (:mod:`.report`) and, in Jupyter, that report beside a drawing of its tiles (:mod:`.picture`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .picture import tile_grid_svg
from .record import OperandPlan, PlanRecord, Strategy
from .report import html_table, summary


@dataclass(frozen=True, slots=True)
class Plan(PlanRecord):
    """How C = A·B will be computed: tiles, tasks, memory and I/O, and how it prints."""

    def summary(self) -> str:
        return summary(self)

    def __repr__(self) -> str:
        return f"<Plan {self.summary()}>"

    def _repr_html_(self) -> str:
        return (f"<div style='display:flex;gap:1em;align-items:flex-start'>{html_table(self)}"
                f"<div>{tile_grid_svg(self)}</div></div>")


__all__ = ["OperandPlan", "Plan", "PlanRecord", "Strategy"]
