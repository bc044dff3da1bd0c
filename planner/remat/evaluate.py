"""What a set of replays does to memory: the values' live curve and its peak, computed the way
planner/plan_training.py places them (every value's span one piece)."""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx
import numpy as np

from trainplan.planner.curves import occupancy
from trainplan.planner.order import ExecutionOrder, lifespans
from trainplan.planner.remat.replays import expand_order
from trainplan.planner.swap.uses import BufferUses, buffer_uses, value_segments


def value_curve(segments: dict[str, BufferUses], n_eo: int) -> np.ndarray:
    """Bytes of values live at each EO (persistent buffers over the whole iteration)."""
    return occupancy((((0, n_eo) if s.persistent else (s.start, s.end)) + (s.nbytes,)
                      for s in segments.values()), n_eo)


def live_with(graph: nx.DiGraph, eo: ExecutionOrder,
              replays: Sequence[tuple[str, int]]) -> np.ndarray:
    """The live curve of ``graph`` when ``replays`` run (each in an EO of its own)."""
    eo, replays = expand_order(eo, replays)
    uses = buffer_uses(graph, eo, lifespans(graph, eo, replays), replays)
    return value_curve(value_segments(uses)[0] if replays else uses, eo.n_eo)
