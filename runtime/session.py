"""A training session: a graph, its TrainingPlan, the arena, the executor and (when the plan
moves buffers to storage) a swap file, all set up once.

``Session(graph, plan)`` trains inside one arena laid out by the plan, swapping to a real file
as its transfers say; it refuses a plan made for another graph or one the independent
validator rejects. ``Session.reference(graph)`` gives every buffer its own array (the unplanned
run every planned run is checked against). Both initialise the same weights from the seed and
run the same kernels, so they produce the same bits.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import networkx as nx
import numpy as np

from trainplan.planner.errors import TrainplanError
from trainplan.planner.order import ExecutionOrder, execution_order, lifespans
from trainplan.planner.split import graph_for
from trainplan.planner.training_plan import TrainingPlan
from trainplan.planner.verify import verify_plan
from trainplan.runtime.data import feed_tensors
from trainplan.runtime.engine import Executor, StepResult
from trainplan.runtime.init import initial_value
from trainplan.runtime.kernels.worker import available as lane_worker_available
from trainplan.runtime.layout import ALIGN, ArenaLayout, ReferenceLayout, release_free_heap
from trainplan.runtime.optimizers import Hyper
from trainplan.runtime.swap_layout import SwapController
from trainplan.runtime.swapio import SwapFile


class RefusedPlan(TrainplanError):
    """A plan the runtime will not run: for another graph, invalid, or misaligned."""


@dataclass(frozen=True)
class SessionOptions:
    """How to run (the plan says where everything lives)."""

    seed: int = 0
    learning_rate: float = 1e-3
    swap_dir: str | None = None
    swap_through: bool = False  # swapped bytes leave the page cache too (runtime/swapio.py)
    threads: int | None = None  # per op; None: as the load allows (runtime/kernels/threads.py)
    lane_worker: bool = True  # lanes beside ours in a helper process (runtime/kernels/worker.py)


@dataclass(frozen=True)
class _Buffers:
    """What the session needs of the buffers: tensor -> buffer, sizes, first EOs, and the
    persistent ones (weights, running statistics, optimizer state)."""

    buffer_of: dict[str, str]
    nbytes: dict[str, int]
    start: dict[str, int]
    persistent: list[str]


def _from_plan(plan: TrainingPlan) -> _Buffers:
    return _Buffers(plan.member_buffer(), {b.id: b.nbytes for b in plan.buffers},
                    {b.id: b.start for b in plan.buffers},
                    sorted(b.id for b in plan.buffers if b.persistent))


def _unplanned(graph: nx.DiGraph, eo: ExecutionOrder) -> _Buffers:
    spans = {r: s for r, s in lifespans(graph, eo).items() if s.pool != "external"}
    return _Buffers({m: r for r, s in spans.items() for m in s.members},
                    {r: s.nbytes for r, s in spans.items()}, {r: s.start for r, s in spans.items()},
                    sorted(r for r, s in spans.items() if s.pool == "weight"))


class Session:
    """Everything one training run needs; use as a context manager (closes the swap file,
    stops the lane worker)."""

    def __init__(self, graph: nx.DiGraph, plan: TrainingPlan,
                 options: SessionOptions = SessionOptions()):
        graph = graph_for(graph, plan)  # the split graph, when the plan splits steps
        self.graph, self.options, self.plan = graph, options, plan
        self.swapfile = self.controller = None
        _refuse_unrunnable(graph, plan)
        self.eo = plan.order
        self.buffers = _from_plan(plan)
        try:
            self.layout = ArenaLayout(graph, plan, shared=_may_use_worker(options))
            if plan.swapped:
                self.swapfile = SwapFile(0, options.swap_dir, through=options.swap_through)
                self.controller = SwapController(self.layout, self.swapfile)
            self._start()
        except BaseException:
            self.close()  # a failed set-up leaves no swap file behind
            raise

    @classmethod
    def reference(cls, graph: nx.DiGraph, options: SessionOptions = SessionOptions(), *,
                  order: str | ExecutionOrder = "nntrainer") -> Session:
        """The unplanned run: every buffer its own array, ops in ``order``."""
        _refuse_compat(graph)
        self = cls.__new__(cls)
        self.graph, self.options, self.plan = graph, options, None
        self.swapfile = self.controller = None
        self.eo = order if isinstance(order, ExecutionOrder) else execution_order(graph, order)
        self.buffers = _unplanned(graph, self.eo)
        self.layout = ReferenceLayout(graph, self.buffers.buffer_of, self.buffers.nbytes)
        self._start()
        return self

    def _start(self) -> None:
        hooks = {}
        if self.controller is not None:
            hooks = {"before_eo": self.controller.before_eo, "after_eo": self.controller.after_eo}
        self.executor = Executor(self.graph, self.eo, self.layout,
                                 optimizer=self.graph.graph["optimizer"],
                                 hyper=Hyper(learning_rate=self.options.learning_rate),
                                 seed=self.options.seed, full_context=self.plan is None,
                                 replays=self.plan.replays_at() if self.plan else None,
                                 threads=self.options.threads, **hooks)
        for buffer in self.persistent:
            self.store(buffer, initial_value(self.graph, buffer, self.options.seed))
        release_free_heap()  # the initial values' temporaries: not RSS for the whole run

    @property
    def persistent(self) -> list[str]:
        return self.buffers.persistent

    @property
    def arena_bytes(self) -> int:
        return self.layout.arena_bytes

    # --- persistent state -----------------------------------------------------------------

    def store(self, buffer: str, values: np.ndarray) -> None:
        if self.controller is not None:
            self.controller.store(buffer, np.ascontiguousarray(values))
        else:
            self.layout.view(buffer, 0)[...] = values.reshape(self.graph.nodes[buffer]["shape"])

    def load(self, buffer: str) -> np.ndarray:
        data = self.graph.nodes[buffer]
        if self.controller is not None:
            raw = self.controller.load(buffer)
            return raw.view(np.dtype(data["dtype"])).reshape(data["shape"])
        return self.layout.view(buffer, 0).copy()

    def state(self) -> dict[str, np.ndarray]:
        """Every persistent buffer (weights, running statistics, optimizer state)."""
        return {buffer: self.load(buffer) for buffer in self.persistent}

    def weights_sha256(self) -> str:
        h = hashlib.sha256()
        for buffer in self.persistent:
            if self.graph.nodes[buffer]["role"] == "weight":
                h.update(buffer.encode())
                h.update(np.ascontiguousarray(self.load(buffer)).tobytes())
        return h.hexdigest()

    # --- running --------------------------------------------------------------------------

    def feed(self, batch: dict[str, np.ndarray]) -> None:
        """Hand a batch to the executor: each tensor is filled at the EO its bytes become its."""
        feeds: dict[int, list] = {}
        for t, values in feed_tensors(self.graph, batch).items():
            feeds.setdefault(self.buffers.start[self.buffers.buffer_of[t]], []).append(
                (t, values))
        self.executor.feed_at(feeds)

    def step(self, batch: dict[str, np.ndarray]) -> StepResult:
        self.feed(batch)
        return self.executor.iteration()

    def evaluate(self, batch: dict[str, np.ndarray]) -> StepResult:
        """Forward only, in inference mode, up to the loss; no update."""
        self.feed(batch)
        self.executor.training = False
        try:
            last = max(e for op, e in self.eo.op_eo.items()
                       if self.graph.nodes[op]["step"] == "forward")
            result = self.executor.iteration(last_eo=last)
        finally:
            self.executor.training = True
            if self.controller is not None:
                self.controller.flush()
        return result

    def close(self) -> None:
        executor = getattr(self, "executor", None)
        if executor is not None:
            executor.close()
        shared = getattr(getattr(self, "layout", None), "shared", None)
        if shared is not None:
            shared.close()
        if self.swapfile is not None:
            self.swapfile.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _may_use_worker(options: SessionOptions) -> bool:
    """Whether the arena is shared with a lane worker (runtime/kernels/worker.py): where the
    platform allows one and an op may get more than one thread."""
    wanted = options.lane_worker and (options.threads is None or options.threads > 1)
    return wanted and (os.cpu_count() or 1) > 1 and lane_worker_available()


def _refuse_unrunnable(graph: nx.DiGraph, plan: TrainingPlan) -> None:
    """The runtime runs only a plan for this graph, that validates, with 64-byte alignment."""
    _refuse_compat(graph)
    if not isinstance(plan, TrainingPlan):
        raise RefusedPlan(f"expected a TrainingPlan (planner.plan_training), got "
                          f"{type(plan).__name__}")
    if plan.alignment % ALIGN:
        raise RefusedPlan(f"the plan aligns buffers to {plan.alignment} bytes; the runtime "
                          f"needs multiples of {ALIGN}: plan with alignment={ALIGN}")
    errors = verify_plan(graph, plan)
    if errors:
        shown = "; ".join(errors[:3]) + (f"; and {len(errors) - 3} more" if len(errors) > 3
                                         else "")
        raise RefusedPlan(f"the plan does not validate, so it is not run: {shown}")


def _refuse_compat(graph: nx.DiGraph) -> None:
    """A graph realised as NNTrainer does models NNTrainer's memory requests, not a program
    the numpy kernels run: its data placeholders live outside the pools, its convolutions
    request no im2col workspace, and its layers keep requests the kernels do not use."""
    if graph.graph.get("compat"):
        raise RefusedPlan("a graph realised as NNTrainer does (--nntrainer-compat) models "
                          "NNTrainer's memory requests for planning and simulation; the numpy "
                          "runtime does not train it (its input and label live outside the "
                          "arena, its layers lack the workspaces the kernels use). Train the "
                          "model natively: drop --nntrainer-compat")
