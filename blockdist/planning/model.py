"""The rates the planner weighs tile shapes with (:class:`MachineModel`).

The defaults were measured on a 2-core AMD EPYC (Zen 3, OpenBLAS Haswell kernels): see
``benchmarks/``. ``blockdist tune`` measures this machine's and the runtime layer hands them
to the planner (:func:`blockdist.runtime.tunefile.load_model`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .layout import MatrixLayout, ReadSource


@dataclass(frozen=True, slots=True)
class MachineModel:
    """Rates and sizes of the cost model, one value each."""

    flops_per_thread: float = 36e9  #: sustained single-thread BLAS rate (float64)
    read_bytes_per_second: float = 1.0e9  #: one task reading and decoding local chunks (another codec, or zarr's)
    #: Decoded bytes a CPU-second of local zstd (zarr's default) and blosc chunks, read and
    #: decoded by blockdist's chunk-file engine (benchmarks/decode.py: 0.77 and 1.58 GB/s here).
    zstd_read_bytes_per_second: float = 0.75e9
    blosc_read_bytes_per_second: float = 1.5e9
    #: One task mapping page-cached chunk files (page tables only: BLAS reads them in place).
    mapped_read_bytes_per_second: float = 8.0e9
    #: One task fetching chunks from object storage (280 MB/s measured from a loopback S3).
    object_read_bytes_per_second: float = 0.25e9
    write_bytes_per_second: float = 1.0e9  #: one task encoding and writing chunks
    task_overhead_seconds: float = 0.02  #: scheduling and opening the arrays, per task
    #: k-depth a copied panel aims for (rounded to whole chunks). 512 was fastest on 512²
    #: chunks (6144³, 2 workers, three rounds: 6.9-7.5 s, against 7.2-7.8 s for 1024 and
    #: 7.2-8.2 s for 2048): a panel one chunk deep is copied a chunk at a time.
    panel_depth: int = 512
    #: Rows of the kernel's product block (see worker/kernel.py): BLAS packs B once per
    #: call, so tall blocks are faster; the planner uses fewer rows only when memory is short.
    kernel_rows: int = 2048
    #: Partial pieces one split-k reduce task sums at once (a tree when there are more): two keep
    #: a reduce's memory at three pieces of its band.
    reduce_fan_in: int = 2
    #: Kernel efficiency is ``rows / (rows + pack_rows)``: the rows at which B's packing per
    #: BLAS call costs as much as the product itself (about 20 measured; tune measures rows).
    pack_rows: float = 20.0
    transfer_bytes_per_second: float = 1.0e9  #: a partial tile moving between workers (split-k)
    #: One worker's link to its storage (a NIC to object storage), shared by its threads, and
    #: the storage's total for every worker at once (object storage is shared). Unbounded by
    #: default: local disks, each task reading at its own rate.
    worker_storage_bytes_per_second: float = math.inf
    aggregate_storage_bytes_per_second: float = math.inf
    #: Share of predicted time the planner gives for a plan that moves less: reads from shared
    #: storage cost money and other jobs' bandwidth even when they hide behind compute.
    traffic_slack: float = 0.10
    #: The one mapping threshold. Raw chunk files are mapped when a panel is one chunk across
    #: or their chunks are at least this edge; smaller blocks make chunk-by-chunk BLAS calls
    #: slower than copying the chunks into panels (512² chunks, 6144³ on 2 workers: 6.9-7.8 s
    #: copied, 7.8-8.1 s mapped), so they are copied unless memory is too short for the
    #: copy's buffers, and never mapped below ``copy_from_map_min_edge``. At 1024² the two
    #: ways tied on an AMD EPYC (OpenBLAS Haswell kernels; 8192³ float32 on 2 workers: copied
    #: 7.70 and 8.00 s, mapped 7.83 and 7.95 s), but on an Intel Xeon with AVX-512 BLAS keeps
    #: 87 % (float32) and 91 % (float64) of its rate on mapped 1024² blocks against 102-105 %
    #: on copied panels (``benchmarks/kernel.py``), and copying won: the same product took
    #: 4.30 s copied against 4.84 s mapped at best, and less in each of three alternating pairs
    #: of fresh clusters. Mapping needs 64 MiB less a task there, which the planner still takes
    #: where memory is short.
    map_min_edge: int = 2048
    #: Raw chunk files at least this edge are copied out of a mapping of the page cache at the
    #: mapped rate (``ChunkFiles.read``); smaller ones cost a mapping per few rows, and BLAS
    #: never multiplies them mapped.
    copy_from_map_min_edge: int = 512
    #: Share of BLAS's rate the planner expects from chunk-by-chunk calls on smaller blocks.
    small_block_efficiency: float = 0.9
    #: Share of ``flops_per_thread`` a symmetric product's diagonal tile keeps on the flops it
    #: computes (syrk on A's panels; ``blockdist tune`` measures it in tasks). 0.9: Xᵀ·X of a
    #: 4096² raw matrix on 2 workers ran its syrk tiles at 0.64 and 0.93 of the gemm rate
    #: measured in the same minute (28.2 against 30.2 GFLOP/s at best).
    square_efficiency: float = 0.9
    #: Multiply through BLAS's gemm where it can; False: numpy's matmul into a scratch block
    #: (the kernel integers always use), to compare the two or to step around a BLAS.
    blas: bool = True

    def read_rate(self, layout: MatrixLayout, mapped: bool = False) -> float:
        """Bytes per second one task reads from a matrix of this layout (mapped, if it is).

        Raw chunk files big enough to map are priced at the mapped rate even when copied
        (copied from a mapping of the page cache; the rate plans have always used), smaller ones at
        the decoded rate of their codec.
        """
        if mapped or (layout.source is ReadSource.RAW and min(layout.chunks) >= self.copy_from_map_min_edge):
            return self.mapped_read_bytes_per_second
        if layout.source is ReadSource.OBJECT:
            return self.object_read_bytes_per_second
        return {"zstd": self.zstd_read_bytes_per_second,
                "blosc": self.blosc_read_bytes_per_second}.get(layout.codec, self.read_bytes_per_second)

    def flop_rate(self, dtype: str) -> float:
        """Nominal flops (2 per multiply-add, as GFLOP/s figures count them) one thread computes
        a second in ``dtype``: float32 vectors hold twice the elements of float64; a complex
        multiply-add is four real ones; integers go through numpy's loops, not BLAS."""
        factor = {"float32": 2.0, "float64": 1.0, "complex64": 0.5, "complex128": 0.25}.get(dtype, 0.05)
        return self.flops_per_thread * factor

    def storage_share(self, cluster: ClusterShape) -> float:
        """Bytes per second of storage bandwidth one task gets when every slot reads at once."""
        return min(self.worker_storage_bytes_per_second / cluster.threads,
                   self.aggregate_storage_bytes_per_second / cluster.slots)

    def mapping_choices(self, layout_source: ReadSource, chunks: tuple[int, int], blocks: int,
                        blas_kernel: bool) -> list[tuple[bool, float]]:
        """Ways to read one operand whose panels are ``blocks`` chunks across:
        ``(mapped, kernel efficiency)``, the preferred first.

        >>> model = MachineModel()
        >>> model.mapping_choices(ReadSource.RAW, (2048, 2048), 4, True)
        [(True, 1.0)]
        >>> model.mapping_choices(ReadSource.RAW, (512, 512), 4, True)
        [(False, 1.0), (True, 0.9)]
        >>> model.mapping_choices(ReadSource.RAW, (256, 256), 4, True)
        [(False, 1.0)]
        >>> model.mapping_choices(ReadSource.RAW, (512, 512), 1, True)  # a panel one chunk across
        [(True, 1.0)]
        """
        if layout_source is not ReadSource.RAW or not blas_kernel:
            return [(False, 1.0)]
        edge = min(chunks)
        if edge < self.copy_from_map_min_edge:
            return [(False, 1.0)]
        if blocks == 1 or edge >= self.map_min_edge:
            return [(True, 1.0)]
        return [(False, 1.0), (True, self.small_block_efficiency)]


@dataclass(frozen=True, slots=True)
class ClusterShape:
    """The cluster a plan is for: its task slots and the memory of each worker."""

    workers: int
    threads: int  #: threads per worker (the most any worker has)
    memory_per_worker: int  #: bytes, the least any worker may use

    @property
    def slots(self) -> int:
        return self.workers * self.threads
