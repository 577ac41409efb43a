"""The planning layer: pure functions and values, importable without zarr, dask or obstore.

``layout`` (what is known of a stored matrix), ``operation`` (the general product),
``model`` (the machine's rates and the cluster's shape), ``memory`` (a task's memory term by
term), ``grid`` (tiles, k-ranges and tile numbering), ``cost`` (the cost model), ``search``
(the candidate search: :func:`make_plan`), ``record`` (a plan's choices and its figures),
``report`` and ``picture`` (how a plan prints and draws) and ``plan`` (:class:`Plan`: the
record that prints).
"""

from .grid import Tile, TileGrid
from .layout import MatrixLayout, ReadSource, check_inner, check_matrix, numeric_dtype, shape_layouts
from .memory import WORKER_BASELINE, PanelRead, TaskMemory, task_memory
from .model import ClusterShape, MachineModel
from .operation import Operation
from .plan import OperandPlan, Plan, Strategy
from .search import make_plan, plan_for_shape, task_budget
from .units import format_size, parse_size

__all__ = [
    "WORKER_BASELINE", "ClusterShape", "MachineModel", "MatrixLayout", "OperandPlan", "Operation", "PanelRead",
    "Plan", "ReadSource", "Strategy", "TaskMemory", "Tile", "TileGrid", "check_inner", "check_matrix", "numeric_dtype",
    "format_size", "make_plan", "parse_size", "plan_for_shape", "shape_layouts", "task_budget", "task_memory",
]
