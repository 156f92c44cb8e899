"""Order statistics shared by the benchmarks, so every table means the same by "p99"."""

from __future__ import annotations

from collections.abc import Iterable


def percentile(values: Iterable[float], q: float) -> float:
    """The q-quantile of ``values``: the sorted value at 0-based rank ``int(q * n)``, clamped to the last.

    It leans high (p99 of 100 values is the largest), which is the safe side for latency goals.
    """
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
