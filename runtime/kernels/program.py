"""Lane programs: a kernel's lanes as lists of numpy calls, built once per context.

A kernel whose lanes are a fixed sequence of numpy calls on views of its arrays (im2col, the
products, col2im; pooling's taps) builds them once — the views at an EO are the same every
iteration (runtime/engine.py) — and afterwards only runs them. Two things follow:

- between two numpy calls a lane spends a few hundred nanoseconds in the interpreter instead
  of the tens of microseconds that deriving views and shapes took, so one thread runs the op
  faster and two lanes on two threads rarely wait for each other's GIL;
- when every array a lane touches lies in a shared arena (runtime/layout.py ``SharedArena``),
  the lane can run in the lane worker, a helper process with its own interpreter
  (runtime/kernels/worker.py): no GIL is shared at all.

A lane's temporaries (bounded: at most ``base.CHUNK`` elements, or a per-row vector) are
``Scratch``: each process that runs the lane has its own. The calls, their order and their
operands are those the kernel would make itself, so a program gives the same bits as the
kernel run directly, on one thread, two, or in the worker.

>>> import numpy as np
>>> a = np.arange(4.0)
>>> prog = LaneProgram(((call(np.multiply, a[:2], 2.0, out=a[:2]),),
...                     (call(np.multiply, a[2:], 3.0, out=a[2:]),)))
>>> run_program(prog, threads=1)
>>> a
array([0., 2., 6., 9.])
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from trainplan.runtime.kernels.parallel import run_lanes


@dataclass(frozen=True, eq=False)
class Scratch:
    """A lane's temporary: a buffer of ``shape`` and ``dtype`` (its leading elements viewed as
    ``view_shape``) that each process running the lane has its own of; ``key`` names the
    buffer (programs sharing a key share it: ``ScratchPool``)."""

    shape: tuple[int, ...]
    dtype: str
    array: np.ndarray = field(repr=False)
    view_shape: tuple[int, ...] | None = None
    key: object = None

    def part(self, shape: tuple[int, ...]) -> Scratch:
        """The leading elements viewed as ``shape`` (a smaller chunk's temporary)."""
        n = int(np.prod(shape))
        return Scratch(self.shape, self.dtype, self.array.reshape(-1)[:n].reshape(shape),
                       tuple(shape), self.key)


class ScratchPool:
    """The temporaries of one executor's lane programs: one buffer per lane and dtype of
    ``size`` elements, shared by every program, since its ops run one at a time and each lane
    uses its own (a larger request gets a buffer of its own). A lane's temporaries of one
    dtype are the same memory: a program uses one at a time."""

    def __init__(self, size: int):
        self.size = size
        self.buffers: dict[tuple[int, str], Scratch] = {}

    def get(self, lane: int, shape: tuple[int, ...], dtype) -> Scratch:
        """A temporary of ``shape`` for lane ``lane``."""
        dtype = np.dtype(dtype).str
        if int(np.prod(shape)) > self.size:
            return Scratch(tuple(shape), dtype, np.empty(shape, dtype), key=object())
        key = (lane, dtype)
        if key not in self.buffers:
            self.buffers[key] = Scratch((self.size,), dtype, np.empty(self.size, dtype),
                                        key=(id(self), *key))
        return self.buffers[key].part(shape)


@dataclass(frozen=True)
class Call:
    """``fn(*args, **kwargs)`` with this process's arrays for the ``Scratch`` operands of
    ``spec`` (the call as written, which the lane worker is sent)."""

    fn: Callable
    args: tuple
    kwargs: Mapping
    spec: tuple[tuple, Mapping]


def call(fn: Callable, *args, **kwargs) -> Call:
    """The call ``fn(*args, **kwargs)``, to run later."""
    return Call(fn, tuple(_local(a) for a in args), {k: _local(v) for k, v in kwargs.items()},
                (args, kwargs))


def _local(a):
    return a.array if isinstance(a, Scratch) else a


_ids = itertools.count(1)


@dataclass(eq=False)
class LaneProgram:
    """The calls of each lane, in order; lanes touch disjoint outputs."""

    lanes: tuple[tuple[Call, ...], ...]
    id: int = field(default_factory=lambda: next(_ids))

    def run_lane(self, lane: int) -> None:
        run_calls(self.lanes[lane])


def run_calls(calls) -> None:
    """The calls, in order."""
    for c in calls:
        c.fn(*c.args, **c.kwargs)


def run_program(program: LaneProgram, threads: int, worker=None) -> None:
    """Every lane of ``program``: on the calling thread in order (one thread), with its lanes
    after the first in the lane worker process (``worker``, when it can run them), else on
    the lane threads (runtime/kernels/parallel.py)."""
    lanes = len(program.lanes)
    if threads <= 1 or lanes == 1:
        for lane in range(lanes):
            program.run_lane(lane)
        return
    if worker is not None and worker.run(program):
        return
    run_lanes(program.run_lane, threads, lanes)


def lane_program(ctx, key: str, build: Callable[[], list[list[Call]]]) -> LaneProgram:
    """The context's program ``key``, built by ``build()`` (one list of calls per lane) the
    first time and again whenever the context's arrays were replaced."""
    arrays = _arrays(ctx)
    made = ctx.memo.get(("program", key, ctx.lanes))
    if made is None or len(made[0]) != len(arrays) or any(
            a is not b for a, b in zip(made[0], arrays)):
        made = ctx.memo[("program", key, ctx.lanes)] = (
            arrays, LaneProgram(tuple(tuple(lane) for lane in build())))
    return made[1]


def _arrays(ctx) -> tuple:
    return (*ctx.inputs, *ctx.outputs, *ctx.out_grads, *ctx.in_derivs,
            *ctx.weights.values(), *ctx.weight_grads.values(), *ctx.helpers.values())
