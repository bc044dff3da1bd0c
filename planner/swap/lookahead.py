"""NNTrainer's proactive swap with a lookahead of ``k`` EOs.

Before each EO ``e`` NNTrainer flushes every buffer that EOs ``e .. e + k`` do not use and
starts loading what EO ``e + k`` uses, so I/O for the next ``k`` steps overlaps compute. Every
buffer leaves RAM in every gap the window allows, weights included; with ``k = 0`` buffers are
loaded on first access. The schedule does not depend on the budget; a budget below its peak is
infeasible and the error gives the peak (the minimum budget for that lookahead).
"""

from __future__ import annotations

from trainplan.planner.swap.schedule import Gap
from trainplan.planner.swap.uses import BufferUses


def lookahead_gaps(buffers: dict[str, BufferUses], n_eo: int, k: int = 1) -> list[Gap]:
    """Every gap of every buffer that a ``k``-EO window leaves it out of RAM."""
    gaps: list[Gap] = []
    for b in buffers.values():
        eos = b.use_eos
        if not eos:
            continue
        for a, nxt in zip(eos, eos[1:]):
            p = max(nxt - k, a + 1)
            if p >= a + 2:
                gaps.append(Gap(b.tensor, a, nxt, p))
        if b.persistent:
            gaps.append(Gap(b.tensor, -1, eos[0], max(eos[0] - k, 0)))
            gaps.append(Gap(b.tensor, eos[-1], n_eo, n_eo))
    return gaps
