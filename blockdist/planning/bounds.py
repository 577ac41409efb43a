"""Lower bounds on what a worker must move, whatever the schedule (pure).

A worker doing ``F`` of the product's ``mnk`` multiply-adds, with ``S`` words of memory and
all data starting in storage, moves at least::

    max( 2F/√S − S,                                   (Hong & Kung; Smith et al. 2017)
         min |A_w| + |B_w| + |C_w|  with  |A_w|·|B_w|·|C_w| ≥ F²,          (Loomis–Whitney)
                                    F/n ≤ |A_w| ≤ mk, F/m ≤ |B_w| ≤ kn, F/k ≤ |C_w| ≤ mn,
         mn/P )                                       (its share of C is written)

words. The middle term is the ``3·F^(2/3)`` of COSMA's bound (Kwasniewski et al., SC'19)
when no bound on a part binds. They bind for thin shapes: each element of A takes part in n
multiply-adds, so for ``A·v`` every worker must read its share of A, however little of v and
C it touches.
"""

from __future__ import annotations

import math


def loomis_whitney(work: float, lows: tuple[float, float, float], caps: tuple[float, float, float]) -> float:
    """The least ``a + b + c`` with ``a·b·c ≥ work²`` and each part between its low and its cap.

    The optimum sets every part to one common value ``t``, clamped to its bounds, with ``t``
    just large enough for the product (found by bisection: the product grows with ``t``).

    >>> round(loomis_whitney(8.0, (0, 0, 0), (100, 100, 100)), 6)
    12.0
    >>> round(loomis_whitney(3e6, (3e6, 1500, 1), (6e6, 2000, 3000)))  # A·v: all of a worker's share of A
    3003464
    """
    if work <= 0:
        return 0.0
    target = 2 * math.log(work)

    def parts(t: float) -> list[float]:
        return [min(max(t, low), cap) for low, cap in zip(lows, caps, strict=True)]

    if sum(math.log(max(p, 1e-300)) for p in parts(max(caps))) < target:
        return float(sum(caps))  # even the whole matrices fall short: the work is all of the product
    low, high = 0.0, math.log(max(caps))
    for _ in range(100):
        middle = (low + high) / 2
        if sum(math.log(max(p, 1e-300)) for p in parts(math.exp(middle))) >= target:
            high = middle
        else:
            low = middle
    return float(sum(parts(math.exp(high))))


def worker_traffic_bound(m: int, n: int, k: int, workers: int, memory_words: float) -> float:
    """Words the busiest of ``workers`` equal workers must move, each with ``memory_words``.

    >>> worker_traffic_bound(3000, 1, 2000, 2, 10**8) >= 3000 * 2000 / 2  # its half of A, at least
    True
    """
    work = m * n * k / workers
    hong_kung = 2 * work / math.sqrt(max(memory_words, 1.0)) - memory_words
    # Each element of A takes part in n multiply-adds, of B in m, of C in k: a worker doing
    # ``work`` of them touches at least work/n of A, work/m of B and work/k of C.
    lows = (work / n, work / m, work / k)
    return max(hong_kung, loomis_whitney(work, lows, (m * k, k * n, m * n)), m * n / workers)
