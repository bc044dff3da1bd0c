"""The kernel contract: one ``LayerCtx`` per layer and step, one ``KernelSpec`` per layer type.

The engine hands a kernel numpy arrays that are views into one preallocated arena. A kernel
writes its results into the arrays it is given (``out=``, slice assignment), never rebinds them,
and allocates nothing tensor-sized: a temporary it needs is a helper tensor declared by the
layer (planner/layers), or a bounded slice of at most ``CHUNK`` elements (``chunks``), or a
per-row / per-channel vector. Kernels are dtype-generic (float32 in the runtime, float64 in the
gradient checks). A kernel may use ``ctx.threads`` threads by cutting its work into
``ctx.lanes`` lanes (runtime/kernels/parallel.py): the lanes are fixed per op (one for an op too
small for threads, else ``LANES``), so the bits do not depend on the thread count.

In-place layers (graph record ``inplace != 'none'``): ``outputs[0]`` may be the same memory as
``inputs[0]`` and, in backward, ``in_derivs[0]`` the same memory as ``out_grads[0]`` (multiout
excepted); every kernel gives the same bits either way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from trainplan.runtime.kernels.parallel import LANES, over_lanes, run_lanes
from trainplan.runtime.kernels.program import Scratch, ScratchPool, run_program

# Elements per slice of a chunked element-wise pass: temporaries stay at CHUNK elements,
# small enough to sit in L2, large enough that the Python loop costs little.
CHUNK = 1 << 16


class KernelError(RuntimeError):
    """A kernel cannot run with what it was given (a missing helper, an unsupported case)."""


@dataclass
class LayerCtx:
    """What one layer's step sees: views into the arena, plus the layer's properties."""

    props: dict
    inputs: list[np.ndarray]
    outputs: list[np.ndarray]
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    weight_grads: dict[str, np.ndarray] = field(default_factory=dict)
    out_grads: list[np.ndarray | None] = field(default_factory=list)
    in_derivs: list[np.ndarray | None] = field(default_factory=list)
    helpers: dict[str, np.ndarray] = field(default_factory=dict)
    label: np.ndarray | None = None
    training: bool = True
    rng_key: tuple[int, ...] = ()
    replay: bool = False  # run again to recompute: leave running statistics alone
    threads: int = 1  # threads the step may use (runtime/kernels/threads.py decides per op)
    lanes: int = LANES  # parts the step cuts its work into: 1 for an op too small for threads
    worker: object | None = None  # the lane worker process, when the arena is shared with one
    pool: ScratchPool = field(default_factory=lambda: ScratchPool(CHUNK), repr=False)
    memo: dict = field(default_factory=dict, repr=False)  # per-layer facts a kernel derives once

    @property
    def rng(self) -> np.random.Generator:
        """Random numbers keyed by (seed, iteration, op): a recomputation draws the same."""
        return np.random.default_rng(self.rng_key)

    def over(self, n: int, work: Callable[[slice], object], *, elementwise: bool = False
             ) -> None:
        """``work`` on this step's lanes of ``range(n)`` (parallel.py ``over_lanes``)."""
        over_lanes(n, self.threads, work, elementwise=elementwise, lanes=self.lanes)

    def each_lane(self, work: Callable[[int], object]) -> None:
        """``work(lane)`` for each of this step's lanes (parallel.py ``run_lanes``)."""
        run_lanes(work, self.threads, self.lanes)

    def scratch(self, lane: int, shape: tuple[int, ...], dtype) -> Scratch:
        """A temporary of at most CHUNK elements for a lane program's lane ``lane``, shared
        with the executor's other programs (``ScratchPool``)."""
        return self.pool.get(lane, shape, dtype)

    def run(self, program) -> None:
        """Every lane of a lane program (runtime/kernels/program.py) on this step's threads,
        in the lane worker when there is one."""
        run_program(program, self.threads, self.worker)

    def helper(self, name: str) -> np.ndarray:
        """A declared helper tensor; KernelError names the layer and helper when missing."""
        try:
            return self.helpers[name]
        except KeyError:
            layer = self.props.get("name", "?")
            raise KernelError(f"{layer}: helper {name!r} was not passed; the layer declares "
                              "the helpers its kernels use (planner/layers)") from None


Kernel = Callable[[LayerCtx], "float | None"]


@dataclass(frozen=True)
class KernelSpec:
    """The three steps of one layer type; a backward step is None when the layer has none.
    ``blas``: the steps are BLAS products that use the op's threads themselves (otherwise the
    kernel runs lanes on them, BLAS single-threaded inside)."""

    forward: Kernel
    calc_gradient: Kernel | None = None
    calc_derivative: Kernel | None = None
    blas: bool = False


KERNELS: dict[str, KernelSpec] = {}


def register(layer_type: str, spec: KernelSpec) -> KernelSpec:
    KERNELS[layer_type] = spec
    return spec


def same_memory(a: np.ndarray, b: np.ndarray) -> bool:
    """True when ``a`` and ``b`` are the same bytes (an in-place step)."""
    return (a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
            and a.nbytes == b.nbytes)


def copy_into(dst: np.ndarray, src: np.ndarray) -> None:
    """``dst[...] = src`` reshaped; nothing to do when they are the same bytes."""
    if not same_memory(dst, src):
        np.copyto(view(dst, src.shape), src)


def view(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``a`` with another shape, guaranteed without a copy (ValueError otherwise)."""
    v = a.view()
    v.shape = shape
    return v


def flat(a: np.ndarray) -> np.ndarray:
    return view(a, (a.size,))


def rows(a: np.ndarray) -> np.ndarray:
    """``a`` as (rows, last dimension)."""
    return view(a, (a.size // a.shape[-1], a.shape[-1]))


def spans(part: slice, size: int) -> Iterator[tuple[int, int]]:
    """(start, stop) runs of ``size`` over ``part`` (the last one shorter), in order: a lane's
    chunks of samples, a step's blocks of channels."""
    for start in range(part.start, part.stop, size):
        yield start, min(part.stop, start + size)


def chunks(n: int, per_row: int = 1) -> Iterator[slice]:
    """Row ranges of about CHUNK elements (at least one row each), in order."""
    step = max(1, CHUNK // max(per_row, 1))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def matmul_acc(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """``out += a @ b`` for 2-D operands, through row chunks so the temporary stays small."""
    for s in chunks(a.shape[0], b.shape[1]):
        out[s] += a[s] @ b
