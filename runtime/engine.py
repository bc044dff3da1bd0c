"""Execute training iterations of a graph: ops in EO order, each a kernel on views of a layout.

The engine walks the plan the way torch.fx's Interpreter walks nodes: for every EO, the forward
ops the plan runs again there (recomputation), then the ops of that EO (calc_gradient before
calc_derivative before apply_gradient), each handed a LayerCtx of views into the layout. The
contexts are built once (per op and EO: a swapped buffer's views follow its pieces), so an
iteration allocates nothing tensor-sized.
Random numbers (dropout masks) are keyed by seed, iteration and op, so a recomputation draws
the same ones. An error names the op that failed. Every op gets the threads the thread policy
grants it for its size (runtime/kernels/threads.py; ``threads_at`` keeps what each EO's ops
got); BLAS gets them too in the kernels made of BLAS products, one inside the others' lanes,
and an optimizer update runs in lanes of its weight's elements.
"""

from __future__ import annotations

import os
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace

import networkx as nx
import numpy as np

from trainplan.planner.graph import STEPS, first_version, replay_edges
from trainplan.planner.order import ExecutionOrder
from trainplan.runtime.bind import Binding, bind, layer_tensors
from trainplan.runtime.kernels.base import CHUNK, LayerCtx, flat
from trainplan.runtime.kernels.parallel import LANES, over_lanes
from trainplan.runtime.kernels.program import ScratchPool
from trainplan.runtime.kernels.threads import BLAS, OpThreads, ThreadPolicy
from trainplan.runtime.kernels.worker import LaneWorker
from trainplan.runtime.optimizers import Hyper, apply_gradient


class RuntimeFailure(RuntimeError):
    """An op failed; the message names it."""


@dataclass
class StepResult:
    loss: float
    correct: int
    samples: int


def _ordered_ops(graph: nx.DiGraph, eo: ExecutionOrder) -> list[list[str]]:
    at: list[list[str]] = [[] for _ in range(eo.n_eo)]
    for op, e in eo.op_eo.items():
        at[e].append(op)
    rank = {s: i for i, s in enumerate(STEPS)}
    return [sorted(ops, key=lambda o: rank[graph.nodes[o]["step"]]) for ops in at]


class Executor:
    """Runs iterations of ``graph`` in ``eo`` order on a layout (views per tensor)."""

    def __init__(self, graph: nx.DiGraph, eo: ExecutionOrder, layout, *, optimizer: str,
                 hyper: Hyper, seed: int = 0, before_eo: Callable | None = None,
                 after_eo: Callable | None = None, full_context: bool = False,
                 replays: dict[int, list[str]] | None = None,
                 threads: int | None = None):
        self.graph, self.eo, self.layout = graph, eo, layout
        self.optimizer, self.hyper = optimizer, hyper
        self.seed = seed
        self.before_eo, self.after_eo = before_eo, after_eo
        self.full_context = full_context
        self.step_count = 0
        self.training = True
        layers = {layer["name"]: layer for layer in graph.graph["layers"]}
        self.ops_at = _ordered_ops(graph, eo)
        index = layer_tensors(graph)
        self.bindings = {op: bind(graph, op, layers[graph.nodes[op]["layer"]], index)
                         for ops in self.ops_at for op in ops}
        self.policy = ThreadPolicy(pinned=threads)
        self.op_threads = OpThreads()
        nodes = graph.nodes
        self.op_work = {op: (float(nodes[op]["flops"]),
                             float(sum(nodes[t]["nbytes"] for t in (*graph.pred[op],
                                                                    *graph.succ[op]))))
                        for op in self.bindings}
        # an op too small for threads runs in one lane, the others in LANES: fixed per op, so
        # the bits do not depend on the threads the policy grants
        self.op_small = {op: self.policy.small(*work) for op, work in self.op_work.items()}
        self.op_tuned = {op: self.policy.tuned(*work) for op, work in self.op_work.items()}
        self.threads_at = [0] * eo.n_eo  # the most threads an op of each EO got last time
        self.replays = {e: [self._replay_binding(op) for op in ops]
                        for e, ops in (replays or {}).items()}
        self._ctx_cache: dict[tuple[str, bool, int], LayerCtx] = {}
        self._states_cache: dict[tuple[str, str, int], dict[str, np.ndarray]] = {}
        self.feeds: dict[int, list[tuple[str, np.ndarray]]] = {}
        self.worker: LaneWorker | None = None
        self.scratch_pool = ScratchPool(CHUNK)  # the lane programs' temporaries
        self._worker_tried = False
        self._requests_seen = -1
        self._pid = os.getpid()

    def _viewer(self, b: Binding, e: int) -> Callable:
        def view(name: str | None):
            if name is None:
                return None
            if self.full_context or name in b.touched:
                return self.layout.view(name, e)
            data = self.graph.nodes[name]  # NaN: a kernel reading it shows at once
            fill = np.nan if data["dtype"].startswith("float") else -1
            return np.broadcast_to(np.array(fill, dtype=data["dtype"]), data["shape"])
        return view

    def _replay_binding(self, op: str) -> Binding:
        """The op's binding, touching only what a recomputation touches."""
        reads, writes = replay_edges(self.graph, op)
        return replace(self.bindings[op], replay=True,
                       touched={first_version(self.graph, t) for t in (*reads, *writes)})

    def context(self, b: Binding, e: int) -> LayerCtx:
        """The op's context at EO ``e``, built the first time: the views at an EO are the same
        every iteration (a swapped buffer sits at the offset of its piece at ``e``), and a
        kernel's ``memo`` (geometry, window views) is kept with them."""
        key = (b.op, b.replay, e)
        ctx = self._ctx_cache.get(key)
        if ctx is not None:
            ctx.training = self.training
            ctx.rng_key = self._rng_key(b.op)
            return ctx
        v = self._viewer(b, e)
        ctx = LayerCtx(
            props=b.layer["props"], inputs=[v(t) for t in b.inputs],
            outputs=[v(t) for t in b.outputs], weights={k: v(t) for k, t in b.weights.items()},
            weight_grads={k: v(t) for k, t in b.weight_grads.items()},
            out_grads=[v(t) for t in b.out_grads], in_derivs=[v(t) for t in b.in_derivs],
            helpers={k: v(t) for k, t in b.helpers.items()}, label=v(b.label),
            training=self.training, rng_key=self._rng_key(b.op), replay=b.replay,
            pool=self.scratch_pool)
        self._ctx_cache[key] = ctx
        return ctx

    def _rng_key(self, op: str) -> tuple[int, ...]:
        return (self.seed, self.step_count, zlib.crc32(op.encode()))

    def feed_at(self, feeds: dict[int, list[tuple[str, np.ndarray]]]) -> None:
        """Data to copy into tensors right before EO e (when their bytes become theirs)."""
        self.feeds = feeds

    def iteration(self, last_eo: int | None = None) -> StepResult:
        """One forward, backward and update (or EOs up to ``last_eo`` only, e.g. forward for
        evaluation) over the data given to ``feed_at``."""
        self.step_count += last_eo is None
        result = StepResult(0.0, 0, 0)
        BLAS.sync()  # someone may have changed it since the last iteration
        if self.policy.available() > 1 and self.lane_worker() is not None:
            # started (once), and polling before the first op hands it a lane — while ops
            # still try two threads, or it ran lanes last iteration
            if self.op_threads.deciding or self.worker.requests != self._requests_seen:
                self.worker.wake()
            self._requests_seen = self.worker.requests
        for e, ops in enumerate(self.ops_at[: None if last_eo is None else last_eo + 1]):
            if self.before_eo:
                self.before_eo(e)
            for t, values in self.feeds.get(e, ()):
                self.layout.view(t, e)[...] = values
            self.threads_at[e] = 0
            for b in self.replays.get(e, ()):
                try:
                    self._run(b, e, StepResult(0.0, 0, 0))
                except Exception as exc:
                    raise RuntimeFailure(f"recomputing {b.op!r} (EO {e}) failed: {exc}") from exc
            for op in ops:
                try:
                    self._run(self.bindings[op], e, result)
                except Exception as exc:
                    raise RuntimeFailure(f"op {op!r} (EO {e}) failed: {exc}") from exc
            if self.after_eo:
                self.after_eo(e)
        return result

    def _run(self, b: Binding, e: int, result: StepResult) -> None:
        small = self.op_small[b.op]
        if small:
            self._step(b, e, result, 1, 1)
            return
        threads = self.policy.available()
        if not self.op_tuned[b.op]:
            self._step(b, e, result, threads, LANES)
            return
        threads = self.op_threads.threads(b.op, threads)
        began = time.perf_counter()
        self._step(b, e, result, threads, LANES)
        self.op_threads.record(b.op, threads, time.perf_counter() - began)

    def _step(self, b: Binding, e: int, result: StepResult, threads: int, lanes: int) -> None:
        ctx = self.context(b, e)
        self.threads_at[e] = max(self.threads_at[e], threads)
        if b.step == "apply_gradient":
            BLAS.set(1)
            for w, grad in ctx.weight_grads.items():
                self._update(ctx.weights[w], grad, self._states(b, w, e), threads, lanes)
            return
        if b.kernel is None:
            return
        BLAS.set(threads if b.blas else 1)
        ctx.threads, ctx.lanes = threads, lanes
        ctx.worker = self.lane_worker() if threads > 1 and not b.blas else None
        value = b.kernel(ctx)
        for w, whole in b.accumulate.items():  # a split step's chunk (runtime/bind.py)
            grad = self.layout.view(whole, e)
            np.add(grad, ctx.weight_grads[w], out=grad)
        if b.layer["is_loss"] and b.step == "forward":
            result.loss += float(value)
            probs, label = ctx.outputs[0], ctx.label
            if probs.shape == label.shape and probs.shape[-1] > 1:
                result.correct += int((probs.argmax(-1) == label.argmax(-1)).sum())
                result.samples += int(np.prod(probs.shape[:-1]))

    def lane_worker(self) -> LaneWorker | None:
        """The lane worker process (runtime/kernels/worker.py), started the first time it is
        asked for (the first iteration that may use two threads), when the arena is shared;
        None otherwise or if it would not start (lanes then run on threads)."""
        if os.getpid() != self._pid:  # a forked child: the worker is its parent's
            return None
        if not self._worker_tried:
            self._worker_tried = True
            shared = getattr(self.layout, "shared", None)
            if shared is not None:
                try:
                    self.worker = LaneWorker(shared.fd, shared.array)
                except OSError:
                    self.worker = None
                if self.worker is not None and self.worker.alive:
                    self.policy.helpers.append(self.worker.pid())
        return self.worker if self.worker is not None and self.worker.alive else None

    def thread_policy(self) -> str:
        """The thread policy, and where lanes ran beside this process's threads."""
        text = self.policy.describe()
        if self.worker is not None and self.worker.requests:
            text += (f"; the second lane of {self.worker.requests:,} lane programs ran in the "
                     "lane worker process")
        return text

    def lane_worker_bytes(self) -> int:
        """What the lane worker process holds of its own (0 without one)."""
        return self.worker.unique_bytes() if self.worker is not None else 0

    def close(self) -> None:
        """Stop the lane worker, if one runs."""
        if self.worker is not None:
            self.worker.close()
            self.worker = None

    def _states(self, b: Binding, weight: str, e: int) -> dict[str, np.ndarray]:
        """The optimizer states of ``weight`` at EO ``e``, viewed once."""
        key = (b.op, weight, e)
        states = self._states_cache.get(key)
        if states is None:
            states = self._states_cache[key] = {
                s: self.layout.view(t, e) for s, t in b.states.get(weight, {}).items()}
        return states

    def _update(self, weight: np.ndarray, grad: np.ndarray, states: dict[str, np.ndarray],
                threads: int, lanes: int) -> None:
        """The optimizer's element-wise update, in lanes of the weight's elements."""
        w, g = flat(weight), flat(grad)
        st = {k: flat(v) for k, v in states.items()}

        def lane(s: slice) -> None:
            apply_gradient(self.optimizer, w[s], g[s], {n: v[s] for n, v in st.items()},
                           self.hyper, step=self.step_count)

        over_lanes(w.size, threads, lane, elementwise=True, lanes=lanes)
