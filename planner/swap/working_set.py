"""Working sets and the minimum feasible budget of a swap plan."""

from __future__ import annotations

import numpy as np

from trainplan.planner.swap.uses import BufferUses


def working_set_curve(buffers: dict[str, BufferUses], n_eo: int, window: int = 0) -> np.ndarray:
    """Bytes of buffers used in EOs ``e .. e + window`` (plus the EO where each is created
    live until its first use), for every EO ``e``: what must be in RAM at ``e`` when every
    buffer leaves RAM whenever the window allows."""
    delta = np.zeros(n_eo + 1, dtype=np.int64)
    for b in buffers.values():
        for lo, hi in _needed_spans(b, window):
            delta[max(lo, 0)] += b.nbytes
            delta[min(hi, n_eo)] -= b.nbytes
    return np.cumsum(delta)[:n_eo]


def _needed_spans(b: BufferUses, window: int) -> list[tuple[int, int]]:
    """Merged [lo, hi) EO spans where ``b`` must be resident under a ``window`` lookahead."""
    spans: list[tuple[int, int]] = []
    for u in b.uses:
        lo, hi = u.eo - window, u.eo + 1
        if spans and lo <= spans[-1][1]:
            spans[-1] = (spans[-1][0], hi)
        else:
            spans.append((lo, hi))
    if spans and not b.persistent:
        spans[0] = (max(spans[0][0], b.start), spans[0][1])
    return spans


def min_budget(buffers: dict[str, BufferUses], n_eo: int, window: int = 0) -> int:
    """The smallest budget any schedule keeping buffers in RAM only while ``window`` EOs ahead
    need them can meet: the largest working set over EOs."""
    curve = working_set_curve(buffers, n_eo, window)
    return int(curve.max()) if len(curve) else 0
