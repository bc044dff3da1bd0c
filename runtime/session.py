"""A training session: graph, plan, layout, executor, optional swap file, all set up once.

``Session.planned`` trains inside one arena laid out by an offset planner, optionally swapping
to a real file under a RAM budget; ``Session.reference`` gives every buffer its own array (the
unplanned run every planned run is checked against). Both initialise the same weights from the
seed and run the same kernels, so they produce the same bits.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import networkx as nx
import numpy as np

from trainplan.planner.order import execution_order, lifespans
from trainplan.planner.plan_graph import plan_graph, plan_graph_swap
from trainplan.runtime.engine import Executor, StepResult
from trainplan.runtime.init import initial_value
from trainplan.runtime.layout import ALIGN, planned_layout, reference_layout
from trainplan.runtime.optimizers import Hyper
from trainplan.runtime.swap_layout import SwapController, SwapLayout
from trainplan.runtime.swapio import SwapFile


@dataclass(frozen=True)
class SessionOptions:
    planner: str | None = "nntrainer_v1"  # None: the unplanned reference
    budget: int | None = None
    swap: str = "belady"
    lookahead: int = 1
    seed: int = 0
    learning_rate: float = 1e-3
    swap_dir: str | None = None
    order: str = "nntrainer"
    swap_through: bool = False  # swapped bytes leave the page cache too (runtime/swapio.py)
    threads: int | None = None  # per op; None: as the load allows (runtime/kernels/threads.py)


class Session:
    """Everything one training run needs; use as a context manager (closes the swap file)."""

    def __init__(self, graph: nx.DiGraph, options: SessionOptions):
        self.graph, self.options = graph, options
        self.eo = execution_order(graph, options.order)
        self.spans = lifespans(graph, self.eo)
        self.persistent = sorted(r for r, s in self.spans.items() if s.pool == "weight")
        self.swapfile = self.controller = None
        try:
            self._setup()
        except BaseException:
            self.close()  # a failed set-up leaves no swap file behind
            raise

    def _setup(self) -> None:
        graph, options = self.graph, self.options
        self.layout = self._layout()  # opens the swap file when there is a budget
        hooks = {}
        if self.controller is not None:
            hooks = {"before_eo": self.controller.before_eo, "after_eo": self.controller.after_eo}
        self.executor = Executor(graph, self.eo, self.layout, optimizer=graph.graph["optimizer"],
                                 hyper=Hyper(learning_rate=options.learning_rate),
                                 seed=options.seed, full_context=options.planner is None,
                                 threads=options.threads, **hooks)
        for root in self.persistent:
            self.store(root, initial_value(graph, root, options.seed))

    def _layout(self):
        o, g = self.options, self.graph
        if o.planner is None:
            roots = {r: s.nbytes for r, s in self.spans.items() if s.pool != "external"}
            return reference_layout(g, roots)
        if o.budget is None:
            plan = plan_graph(g, o.planner, order=o.order, alignment=ALIGN, seed=o.seed)
            self.plan = plan
            base = -(-plan.weight.arena_bytes // ALIGN) * ALIGN
            offsets = dict(plan.weight.offsets)
            offsets.update({k: base + v for k, v in plan.tensor.offsets.items()})
            return planned_layout(g, offsets, base + plan.tensor.arena_bytes)
        swap = plan_graph_swap(g, o.budget, swap=o.swap, planner=o.planner, order=o.order,
                               lookahead=o.lookahead, seed=o.seed)
        self.plan = swap
        layout = SwapLayout(g, swap.arena.schedule, swap.arena.plan.offsets,
                            swap.arena.plan.arena_bytes)
        self.swapfile = SwapFile(0, o.swap_dir, through=o.swap_through)
        self.controller = SwapController(layout, self.swapfile)
        return layout

    @property
    def arena_bytes(self) -> int:
        return self.layout.arena_bytes

    # --- persistent state -----------------------------------------------------------------

    def store(self, root: str, values: np.ndarray) -> None:
        if self.controller is not None:
            self.controller.store(root, np.ascontiguousarray(values))
        else:
            self.layout.view(root)[...] = values.reshape(self.graph.nodes[root]["shape"])

    def load(self, root: str) -> np.ndarray:
        data = self.graph.nodes[root]
        if self.controller is not None:
            raw = self.controller.load(root)
            return raw.view(np.dtype(data["dtype"])).reshape(data["shape"])
        return self.layout.view(root).copy()

    def state(self) -> dict[str, np.ndarray]:
        """Every persistent buffer (weights, running statistics, optimizer state)."""
        return {root: self.load(root) for root in self.persistent}

    def weights_sha256(self) -> str:
        h = hashlib.sha256()
        for root in self.persistent:
            if self.graph.nodes[root]["role"] == "weight":
                h.update(root.encode())
                h.update(np.ascontiguousarray(self.load(root)).tobytes())
        return h.hexdigest()

    # --- running --------------------------------------------------------------------------

    def feed(self, batch: dict[str, np.ndarray]) -> None:
        """Hand a batch to the executor: each tensor is filled at the EO its bytes become its."""
        feeds: dict[int, list] = {}
        for t, values in batch.items():
            root = next(r for r, s in self.spans.items() if t in s.members)
            feeds.setdefault(self.spans[root].start, []).append((t, values))
        self.executor.feed_at(feeds)

    def step(self, batch: dict[str, np.ndarray]) -> StepResult:
        self.feed(batch)
        return self.executor.iteration()

    def evaluate(self, batch: dict[str, np.ndarray]) -> StepResult:
        """Forward only, in inference mode, up to the loss; no update."""
        self.feed(batch)
        self.executor.training = False
        try:
            result = self.executor.iteration(last_eo=len(self.graph.graph["layers"]) - 1)
        finally:
            self.executor.training = True
            if self.controller is not None:
                self.controller.flush()
        return result

    def close(self) -> None:
        if self.swapfile is not None:
            self.swapfile.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
