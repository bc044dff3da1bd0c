"""Bytes over EOs from ``[start, end)`` spans: the one curve behind live, resident and working
set figures.

>>> occupancy([(0, 2, 4), (1, 3, 8)], 4).tolist()
[4, 12, 8, 0]
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def occupancy(spans: Iterable[tuple[int, int, int]], n_eo: int) -> np.ndarray:
    """At each EO ``0 .. n_eo - 1``, the sum of ``size`` over the spans ``(start, end, size)``
    covering it."""
    delta = np.zeros(n_eo + 1, dtype=np.int64)
    for start, end, size in spans:
        delta[start] += size
        delta[end] -= size
    return np.cumsum(delta)[:n_eo]


def peak(curve: np.ndarray) -> int:
    """The curve's maximum (0 for an empty curve)."""
    return int(curve.max()) if len(curve) else 0
