"""Where every tensor lives: one preallocated arena laid out by a TrainingPlan, or (the
unplanned reference) one array per buffer.

Both layouts hand out numpy views; tensors of one alias class (views, in-place results) share
their buffer's bytes in both, so a planned run and the reference run execute the same kernels
on the same values. In the arena a tensor lives at the offset of its buffer's piece covering
the EO asked for (a swapped buffer moves between pieces). Every buffer starts on a 64-byte
boundary in both, so SIMD code takes the same path and the two runs give the same bits.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import math
import mmap
import os

import networkx as nx
import numpy as np

from trainplan.planner.graph import DTYPE_BYTES
from trainplan.planner.resources import require_memory
from trainplan.planner.training_plan import Piece, TrainingPlan

ALIGN = 64


def release_free_heap() -> bool:
    """Hand the C heap's free memory back to the system (glibc's ``malloc_trim``; False where
    the C library has none). Drawing the initial weights frees tens of MB of float64
    temporaries, and glibc, which raises its mmap threshold after freeing large blocks, keeps
    such memory in the process: resnet18_cifar's RSS stayed 28 MB above its arena for the
    whole run. Called once a session is set up, so that RSS beyond the arena is the kernels'
    own working memory."""
    name = ctypes.util.find_library("c")
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    if trim is None:
        return False
    trim(0)
    return True


def aligned_bytes(nbytes: int) -> np.ndarray:
    """A zeroed uint8 array of ``nbytes`` starting on an ``ALIGN``-byte boundary."""
    raw = np.zeros(nbytes + ALIGN, dtype=np.uint8)
    start = (-raw.ctypes.data) % ALIGN
    return raw[start:start + nbytes]


class SharedArena:
    """Arena bytes another process can map too: a memfd (Linux), mapped shared. The lane
    worker (runtime/kernels/worker.py) maps it to run lanes beside this process; its pages are
    zero until written and count in RSS once touched, as a private arena's do."""

    def __init__(self, nbytes: int):
        self.fd = os.memfd_create("trainplan-arena", os.MFD_CLOEXEC)
        try:
            os.ftruncate(self.fd, max(nbytes, 1))
            self._map = mmap.mmap(self.fd, max(nbytes, 1))
        except BaseException:
            os.close(self.fd)
            raise
        self.array = np.frombuffer(self._map, dtype=np.uint8)[:nbytes]

    def close(self) -> None:
        """Close the descriptor (the mapping lives on while views of it do)."""
        with contextlib.suppress(OSError):
            os.close(self.fd)


def tensor_view(memory: np.ndarray, offset: int, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """The tensor of ``shape`` and ``dtype`` whose bytes start at ``memory[offset]``."""
    n = math.prod(shape) * DTYPE_BYTES[dtype]
    return memory[offset:offset + n].view(np.dtype(dtype)).reshape(shape)


class ArenaLayout:
    """Every planned tensor a view into one arena at its buffer's piece offset."""

    def __init__(self, graph: nx.DiGraph, plan: TrainingPlan, *, shared: bool = False):
        self.graph, self.plan = graph, plan
        self.arena_bytes = plan.arena_bytes
        require_memory(plan.arena_bytes, "the plan's arena", "use a smaller batch, or plan "
                       "under a RAM budget (--budget) that swaps to storage")
        # shared: a lane worker process may map it (page-aligned, so 64-byte aligned too); where
        # the system refuses a memfd (a sandbox), a private arena and lanes on threads
        self.shared = None
        if shared:
            with contextlib.suppress(OSError):
                self.shared = SharedArena(plan.arena_bytes)
        self.arena = (self.shared.array if self.shared is not None
                      else aligned_bytes(plan.arena_bytes))
        self.buffer_of = plan.member_buffer()
        self.pieces = {b.id: b.pieces for b in plan.buffers}
        self.nbytes = {b.id: b.nbytes for b in plan.buffers}

    def piece_at(self, buffer: str, eo: int) -> Piece:
        for piece in self.pieces[buffer]:
            if piece.start <= eo < piece.end:
                return piece
        raise KeyError(f"buffer {buffer!r} is not resident at EO {eo}")

    def view(self, tensor: str, eo: int) -> np.ndarray:
        piece = self.piece_at(self.buffer_of[tensor], eo)
        data = self.graph.nodes[tensor]
        return tensor_view(self.arena, piece.offset, data["shape"], data["dtype"])

    def has(self, tensor: str) -> bool:
        return tensor in self.buffer_of

    def bytes_of(self, buffer: str, piece: Piece) -> np.ndarray:
        """The raw bytes of ``buffer`` in ``piece``."""
        return self.arena[piece.offset:piece.offset + self.nbytes[buffer]]


class ReferenceLayout:
    """Each buffer its own aligned array, for the whole iteration: the unplanned run."""

    def __init__(self, graph: nx.DiGraph, buffer_of: dict[str, str], sizes: dict[str, int]):
        self.graph = graph
        self.buffer_of = buffer_of
        require_memory(sum(sizes.values()), "the unplanned run (every buffer its own array)",
                       "use a smaller batch, or train with a plan")
        self.memory = {b: aligned_bytes(n) for b, n in sizes.items()}
        self.arena_bytes = sum(sizes.values())

    def view(self, tensor: str, eo: int | None = None) -> np.ndarray:
        data = self.graph.nodes[tensor]
        return tensor_view(self.memory[self.buffer_of[tensor]], 0, data["shape"],
                           data["dtype"])

    def has(self, tensor: str) -> bool:
        return tensor in self.buffer_of
