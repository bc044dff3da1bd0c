"""Choose what to split: regions and chunk counts (and unit blocks) so that every EO's working
set fits a budget (planner/split.py).

``auto_splits(graph, budget, order)`` starts from the unsplit graph and repeats: find the EO
with the largest working set (planner/swap/working_set.py) over the target; if its op belongs

* to a layer outside any region: a new region over the adjacent layers whose outputs have the
  same spatial size — unless weights, their gradients and optimizer state make most of the
  working set: then a fully-connected layer gets its units split, and any other layer stops
  the search (chunks of the batch would not shrink it);
* to a layer inside a region: more chunks, about as many as the working set asks for (the
  smallest such count is reached from below, since bytes that do not shrink with the chunk
  make the estimate fall short, never overshoot);
* to a unit-split layer: more blocks;
* to a split or merge layer at a region's edge (a full tensor, too big): the region grows over
  the layer on the other side of it, joining a neighbouring region when they meet;

until every EO fits or nothing more can be split. The target is ``fill`` of the budget, so a
swap planner keeps room to prefetch and the arena packs; the answer says whether the split
graph's minimum feasible budget (its largest working set) is within the budget itself.

>>> from trainplan.planner.build import build_training_graph
>>> from trainplan.planner.zoo import get_model
>>> g = build_training_graph(get_model("resnet18", batch=8))
>>> choice = auto_splits(g, 80_000_000)  # unsplit, bn1's step alone needs 51 MB
>>> choice.fits, choice.min_budget_bytes, choice.splits  # then layer4's weights bound it
(True, 37748736, {('conv1', 'maxpool'): 2})
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from trainplan.planner.layers import LAYERS
from trainplan.planner.order import ExecutionOrder, execution_order, lifespans
from trainplan.planner.split import split_graph
from trainplan.planner.split_steps import RULES
from trainplan.planner.split_units import UNIT_TYPES
from trainplan.planner.swap.uses import buffer_uses
from trainplan.planner.swap.working_set import working_set_curve

_WEIGHT_ROLES = ("weight", "optimizer_state", "gradient")


@dataclass(frozen=True)
class SplitChoice:
    """What ``auto_splits`` chose: ``splits`` (region -> chunks) and ``units`` (layer ->
    blocks) for ``split_graph``, the split ``graph``, its minimum feasible budget, whether that
    is within the budget, and the steps taken (one sentence each)."""

    splits: dict[tuple[str, str], int]
    units: dict[str, int]
    graph: nx.DiGraph
    min_budget_bytes: int
    fits: bool
    steps: tuple[str, ...] = ()


@dataclass
class _State:
    names: list[str]
    batch: int
    regions: list[list[int]] = field(default_factory=list)  # [first index, last index, chunks]
    units: dict[str, int] = field(default_factory=dict)
    steps: list[str] = field(default_factory=list)

    def splits(self) -> dict[tuple[str, str], int]:
        return {(self.names[a], self.names[b]): k for a, b, k in sorted(self.regions)}

    def region_of(self, index: int) -> list[int] | None:
        return next((r for r in self.regions if r[0] <= index <= r[1]), None)


def auto_splits(graph: nx.DiGraph, budget: int, order: str = "nntrainer", *,
                chunks: int | None = None, fill: float = 0.3,
                max_rounds: int = 200) -> SplitChoice:
    """Regions, chunk counts and unit blocks for ``split_graph`` so that every EO of ``graph``
    under ``order`` needs at most ``fill * budget`` bytes where possible (module docstring).
    ``chunks`` fixes every region's chunk count instead of choosing it."""
    records = graph.graph["layers"]
    state = _State([r["name"] for r in records], graph.graph["batch"])
    target = max(1, int(budget * fill))
    split = graph
    eo, curve = _working_sets(split, order)
    for _ in range(max_rounds):
        e = int(np.argmax(curve))
        if curve[e] <= target or not _step(graph, split, eo, e, int(curve[e]), target, state,
                                           chunks):
            break
        split = split_graph(graph, state.splits(), state.units)
        eo, curve = _working_sets(split, order)
    need = int(curve.max()) if len(curve) else 0
    return SplitChoice(state.splits(), dict(state.units), split, need, need <= budget,
                       tuple(state.steps))


def _working_sets(graph: nx.DiGraph, order: str) -> tuple[ExecutionOrder, np.ndarray]:
    eo = execution_order(graph, order)
    return eo, working_set_curve(buffer_uses(graph, eo, lifespans(graph, eo)), eo.n_eo)


def _step(graph: nx.DiGraph, split: nx.DiGraph, eo: ExecutionOrder, e: int, need: int,
          target: int, state: _State, chunks: int | None) -> bool:
    """One change that lowers the working set at EO ``e`` (False: nothing can)."""
    op = next(o for o, at in eo.op_eo.items() if at == e)
    layer = split.nodes[op]["layer"]
    record = next(r for r in split.graph["layers"] if r["name"] == layer)
    position = {n: i for i, n in enumerate(state.names)}
    if record["type"] in ("split", "merge"):
        return _grow(split, record, state, position)
    index = position[layer]
    if layer in state.units:
        return _more_blocks(graph, layer, need, target, state)
    if _weight_bound(split, eo, e):  # chunks of the batch would not shrink it
        if record["type"] not in UNIT_TYPES or state.region_of(index) is not None:
            return False
        state.units[layer] = 2
        state.steps.append(f"{layer}: units in 2 blocks (EO {e} needs {need:,} B)")
        return True
    region = state.region_of(index)
    if region is not None:
        return _more_chunks(region, need, target, state, chunks, layer)
    if record["type"] not in RULES:
        return False
    a, b = _same_size_run(graph.graph["layers"], index)
    k = chunks or 2
    state.regions.append([a, b, k])
    _join(state)
    state.steps.append(f"{state.names[a]}..{state.names[b]}: {k} chunks (EO {e} needs "
                       f"{need:,} B)")
    return True


def _weight_bound(split: nx.DiGraph, eo: ExecutionOrder, e: int) -> bool:
    """Whether most bytes the ops of EO ``e`` touch are weights, their gradients and optimizer
    state (splitting the batch would not shrink them)."""
    touched = {t for o, at in eo.op_eo.items() if at == e
               for t in (*split.predecessors(o), *split.successors(o))}
    weights = sum(split.nodes[t]["nbytes"] for t in touched
                  if split.nodes[t]["role"] in _WEIGHT_ROLES)
    return weights * 2 > sum(split.nodes[t]["nbytes"] for t in touched)


def _more_chunks(region: list[int], need: int, target: int, state: _State,
                 chunks: int | None, layer: str) -> bool:
    if chunks is not None or region[2] >= state.batch:
        return False
    size = math.ceil(state.batch / region[2])
    smaller = max(1, min(size - 1, math.floor(size * target / need)))
    region[2] = math.ceil(state.batch / smaller)
    state.steps.append(f"{state.names[region[0]]}..{state.names[region[1]]}: {region[2]} "
                       f"chunks ({layer} needs {need:,} B)")
    return True


def _more_blocks(graph: nx.DiGraph, layer: str, need: int, target: int, state: _State) -> bool:
    units = graph.nodes[f"{layer}:weight"]["shape"][-1]
    blocks = state.units[layer]
    if blocks >= units:
        return False
    state.units[layer] = min(units, max(blocks + 1, math.ceil(blocks * need / target)))
    state.steps.append(f"{layer}: units in {state.units[layer]} blocks (needs {need:,} B)")
    return True


def _grow(split: nx.DiGraph, record: dict, state: _State, position: dict[str, int]) -> bool:
    """A full tensor at a region's edge is too big: the region takes the layer beyond it."""
    if record["type"] == "merge":  # region -> consumer: grow forward to the consumer
        consumer = next(r["name"] for r in split.graph["layers"]
                        if (record["name"], 0) in [tuple(i) for i in r["inputs"]])
        consumer = _unsplit_consumer(split, consumer)
        source = record["inputs"][0][0]
        region = state.region_of(position[source])
        target_index = position.get(consumer)
        if target_index is None or not _splittable(split, consumer):
            return False
        region[1] = max(region[1], target_index)
    else:  # producer -> region: grow backward to the producer
        source = record["inputs"][0][0]
        source = _unsplit_producer(split, source)
        consumer = next(r["name"] for r in split.graph["layers"]
                        if (record["name"], 0) in [tuple(i) for i in r["inputs"]])
        region = state.region_of(position[consumer])
        if source is None or not _splittable(split, source):
            return False
        region[0] = min(region[0], position[source])
    _join(state)
    state.steps.append(f"{state.names[region[0]]}..{state.names[region[1]]}: grown over "
                       f"{record['name']}")
    return True


def _unsplit_consumer(split: nx.DiGraph, name: str) -> str:
    """Past a split layer (merge then split between two regions): the layer it feeds."""
    record = next(r for r in split.graph["layers"] if r["name"] == name)
    if record["type"] != "split":
        return name
    return next(r["name"] for r in split.graph["layers"]
                if (name, 0) in [tuple(i) for i in r["inputs"]])


def _unsplit_producer(split: nx.DiGraph, name: str) -> str | None:
    record = next(r for r in split.graph["layers"] if r["name"] == name)
    if record["type"] != "merge":
        return name
    return record["inputs"][0][0]


def _splittable(split: nx.DiGraph, name: str) -> bool:
    record = next(r for r in split.graph["layers"] if r["name"] == name)
    return record["type"] in RULES and not LAYERS[record["type"]].is_loss \
        and "units" not in record


def _join(state: _State) -> None:
    """Regions that overlap or touch become one, with the larger chunk count."""
    merged: list[list[int]] = []
    for a, b, k in sorted(state.regions):
        if merged and a <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], b)
            merged[-1][2] = max(merged[-1][2], k)
        else:
            merged.append([a, b, k])
    state.regions[:] = merged


def _spatial(record: dict) -> tuple[int, ...]:
    shape = record["outputs"][0]
    return tuple(shape[2:]) if len(shape) == 4 else tuple(shape[1:-1])


def _same_size_run(records: list[dict], index: int) -> tuple[int, int]:
    """The run of splittable layers around ``index`` whose outputs share its spatial size."""
    size = _spatial(records[index])

    def fits(i: int) -> bool:
        r = records[i]
        return r["type"] in RULES and not LAYERS[r["type"]].is_loss and _spatial(r) == size

    a = b = index
    while a > 0 and fits(a - 1):
        a -= 1
    while b + 1 < len(records) and fits(b + 1):
        b += 1
    return a, b
