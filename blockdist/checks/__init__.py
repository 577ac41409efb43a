"""The checks layer: Freivalds' check of a stored product on the cluster (``freivalds``), its
verdicts (``report``), and the demo's sampled check against numpy (``sampling``)."""

from .report import TileVerdict, VerifyReport

__all__ = ["TileVerdict", "VerifyReport"]
