"""A product as asked for: its operands and every option, declared once (:class:`Options`).

``blockdist.matmul``, ``submit``, ``gram``, ``plan`` and the CLI all turn what they are given
into one frozen :class:`Request`; the runtime reads it and derives what each lower layer
needs (an :class:`~blockdist.planning.Operation` for the planner, task specs for workers).
The public functions show every option in ``help()`` because :func:`takes_options` writes
their signatures and docs from :class:`Options`' fields::

    matmul(a, b, out, **options)  ─┐
    submit(a, b, out, **options)  ─┼─► Request(a, b, out, Options(...)) ─► check ─► prepare ─► start
    CLI arguments                 ─┘
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any, TypeVar

from ..errors import InputError
from ..planning import MachineModel, Operation
from . import settings


def _option(default: Any, doc: str) -> Any:
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class Options:
    """Every option a product takes; ``None`` means the ``blockdist`` Dask setting of that name."""

    client: Any = _option(None, "a ``distributed.Client`` or a scheduler address; without one, a local "
                                "cluster of worker processes is started and shut down")
    memory: int | str | None = _option(None, "the budget of each worker: bytes, or a size such as ``'4GB'``")
    overwrite: bool = _option(False, "replace an existing output (only ever a Zarr array)")
    force: bool = _option(False, "take the output's lease from the job that holds it, at once (when that job "
                                 "is dead; a dead job's lease is otherwise taken after ``blockdist.lease-timeout``)")
    resume: bool = _option(False, "finish an interrupted product: only tiles its manifest does not list as "
                                  "done are computed; changed inputs are refused")
    workers: int | None = _option(None, "local cluster: worker processes (default: one per core)")
    threads: int | None = _option(None, "local cluster: threads per worker (default: 1)")
    security: Any = _option(None, "a ``distributed.security.Security`` to reach a ``tls://`` scheduler")
    connect_timeout: float | None = _option(None, "seconds to wait for the scheduler to answer (default 10)")
    storage_options: Mapping[str, Any] | None = _option(
        None, "options of ``s3://`` stores (endpoint, credentials…), shared or per operand as "
              "``{'a': {...}, 'b': {...}, 'out': {...}}``")
    model: MachineModel | None = _option(None, "the rates the planner weighs tile shapes with (default: "
                                               "``blockdist tune``'s, else built-in)")
    verify: bool | int = _option(False, "check each tile with Freivalds' algorithm from the panels its task "
                                        "holds (a number: that many random vectors)")
    allow_missing_chunks: bool = _option(False, "no effect, kept for old callers: an absent input chunk is read "
                                                "as the array's fill value, as zarr reads it")
    require_all_chunks: bool = _option(False, "refuse inputs with absent chunks before any work, naming the first "
                                              "(by default they are read as the fill value, and where it is 0 "
                                              "their block products are skipped)")
    alpha: complex | float = _option(1.0, "scale of the product")
    beta: complex | float = _option(0.0, "scale of ``c``; not 0 needs ``c``")
    c: Any = _option(None, "C0 of ``alpha·op(A)·op(B) + beta·C0``: an array, or the output itself (updated "
                           "in place, tile by tile, safely across retries)")
    transpose_a: bool = _option(False, "use Aᵀ (Aᴴ for complex A), read from its stored layout")
    transpose_b: bool = _option(False, "use Bᵀ (Bᴴ for complex B)")
    out_chunks: tuple[int, int] | None = _option(None, "the output's chunks (default: A's row chunks by B's "
                                                       "column chunks); tiles are unions of them")
    out_shards: tuple[int, int] | None = _option(None, "the output's shards, multiples of its chunks (default: "
                                                       "none); tiles are unions of them")
    partials: str | None = _option(None, "where split-k partial tiles wait for their reduce: ``'memory'`` "
                                         "(workers', the default) or ``'storage'`` (a scratch Zarr array beside "
                                         "the output, removed when the job completes; a lost worker's staged "
                                         "partials are not computed again)")
    out_compressors: Any = _option("like-a", "the output's codec: ``'like-a'`` (A's), ``None``/``'none'``, "
                                             "``'zstd'``, ``'blosc-lz4'``, or anything ``zarr.create_array`` takes")

    @classmethod
    def from_keywords(cls, caller: str, keywords: Mapping[str, Any], allowed: set[str] | None = None) -> Options:
        """Options from a public function's keywords, refusing any it does not take."""
        names = {f.name for f in fields(cls)} if allowed is None else allowed
        unknown = sorted(set(keywords) - names)
        if unknown:
            raise TypeError(f"{caller}() got an unexpected keyword argument {unknown[0]!r}")
        return cls(**keywords)

    @property
    def verify_trials(self) -> int:
        """Random vectors per tile for ``verify`` (0: no check)."""
        if self.verify is True:
            return int(settings.get("verify-trials"))
        trials = int(self.verify or 0)
        if trials < 0:
            raise InputError(f"verify must be True, False or a number of trials ≥ 1, got {self.verify}")
        return trials

    def resolved(self, name: str) -> Any:
        """An option's value, or its ``blockdist`` setting where it was left ``None``."""
        value = getattr(self, name)
        return settings.get(name) if value is None else value


@dataclass(frozen=True)
class Request:
    """One product: ``out = alpha·op(a)·op(b) + beta·c`` (or a symmetric ``a·aᵀ``), and its options."""

    a: Any
    b: Any
    out: Any  #: None when only planning
    options: Options = Options()
    symmetric: bool = False

    @property
    def operation(self) -> Operation:
        o = self.options
        return Operation(o.transpose_a, o.transpose_b, o.alpha, o.beta, self.symmetric)

    def with_options(self, **changes: Any) -> Request:
        return replace(self, options=replace(self.options, **changes))


_Function = TypeVar("_Function", bound=Callable[..., Any])


def takes_options(*, exclude: tuple[str, ...] = ()) -> Callable[[_Function], _Function]:
    """Give a function taking ``**options`` the signature and docs of :class:`Options`' fields.

    The function's own parameters come first; then every option not in ``exclude`` (or
    already among its parameters) as a keyword-only parameter with its default and a line
    of the docstring.
    """

    def decorate(function: _Function) -> _Function:
        signature = inspect.signature(function)
        own = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        taken = {p.name for p in own} | set(exclude)
        options = [f for f in fields(Options) if f.name not in taken]
        parameters = own + [
            inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY,
                              default=None if f.default is MISSING else f.default, annotation=f.type)
            for f in options
        ]
        function.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        lines = "\n".join(f"    ``{f.name}``: {f.metadata['doc']}" for f in options)
        function.__doc__ = f"{inspect.cleandoc(function.__doc__ or '')}\n\nOptions:\n\n{lines}\n"
        function.__option_names__ = {f.name for f in options}  # type: ignore[attr-defined]
        return function

    return decorate
