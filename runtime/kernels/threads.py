"""The thread policy: how many threads each op gets, and BLAS's thread count set to match.

An op estimated to take less than ``min_op_seconds`` on one thread runs on one: handing work
to another thread costs tens of microseconds, and a small BLAS product on two threads loses
more to their synchronisation than it gains. A larger op gets every thread the machine has free
now: ``cores`` less the CPUs other processes kept busy over the last sampling window (system
busy time from ``psutil.cpu_times`` less this process's own CPU time, sampled at most every
``sample_seconds``, so a sample costs nothing measurable). On a shared machine — a phone
running other apps, a server running other jobs — two threads of which one waits for a busy
core are slower than one: OpenBLAS's threads spin waiting for each other, and a product of a
millisecond can take a hundred. ``pinned`` fixes the count instead (ops too small for two
threads still run on one). Kernels cut their work into fixed lanes (runtime/kernels/parallel.py)
and OpenBLAS gives the same bits on any thread count, so the policy never changes the results.

Kernels run their lanes on the op's threads — a lane program's second lane in the lane worker
process where one runs (runtime/kernels/worker.py: no GIL to share) — with BLAS on one thread
inside each lane (OpenBLAS's threads spin waiting for each other, so a product on two of them
collapses while another process holds a core, which lanes do not: threads block, and the
worker polls only while the policy gives ops two threads); a kernel declared
``blas`` (the LSTM, whose time steps are sequential products) gives the op's threads to BLAS
instead.

An op large enough for threads but estimated under TUNED_BELOW_S is also timed on one thread
and on the threads it would get, alternately, over its first runs (``TRIALS`` each): when the
extra threads do not make it faster — small kernels whose lanes spend their time in Python,
holding the GIL, as lenet5's do — it runs on one thread from then on (``OpThreads``). The
choice is the op's lanes' thread count, never their cut, so it changes timings only.

>>> policy = ThreadPolicy(pinned=2, cores=2)
>>> policy.threads_for(flops=1e3, nbytes=1e3), policy.threads_for(flops=1e9, nbytes=1e6)
(1, 2)
>>> policy.describe()
'pinned to 2 threads; on one: ops under 100 us and ops more threads did not speed up'
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import psutil

# One thread's rough speed, to estimate an op's seconds from its flops and bytes: numpy's
# strided passes (pooling taps, window copies) move about 4 GB/s here.
FLOPS_PER_SECOND = 50e9
BYTES_PER_SECOND = 4e9


def _busy_seconds() -> float:
    """CPU seconds the machine's CPUs have been busy (every process, steal included)."""
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0)
                 - getattr(t, "guest_nice", 0.0))


class BlasThreads:
    """numpy's BLAS thread count through threadpoolctl, set only when it changes (a call into
    the library costs microseconds; a change of count, tens)."""

    def __init__(self):
        self._libs = None
        self.current: int | None = None

    def _controllers(self) -> list:
        if self._libs is None:
            from threadpoolctl import ThreadpoolController

            self._libs = ThreadpoolController().select(user_api="blas").lib_controllers
        return self._libs

    def set(self, threads: int) -> None:
        if threads != self.current:
            for lib in self._controllers():
                lib.set_num_threads(threads)
            self.current = threads

    def sync(self) -> int | None:
        """Re-read the count (someone else may have changed it); the first library's."""
        libs = self._controllers()
        self.current = libs[0].get_num_threads() if libs else None
        return self.current


BLAS = BlasThreads()


@dataclass
class ThreadPolicy:
    """Threads per op: one for small ops, else ``pinned`` or what the load leaves free."""

    pinned: int | None = None
    cores: int = field(default_factory=lambda: os.cpu_count() or 1)
    min_op_seconds: float = 100e-6
    sample_seconds: float = 0.2
    others: float = 0.0  # CPUs other processes kept busy over the last window
    helpers: list[int] = field(default_factory=list)  # our own helper processes (lane worker)
    _last: tuple[float, float, float] | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.pinned is not None and self.pinned < 1:
            raise ValueError(f"threads must be at least 1, got {self.pinned}")

    def estimate(self, flops: float, nbytes: float) -> float:
        """Seconds one thread needs for an op, roughly."""
        return flops / FLOPS_PER_SECOND + nbytes / BYTES_PER_SECOND

    def available(self) -> int:
        """Threads for a large op now: pinned, or the cores other processes leave free."""
        if self.pinned is not None:
            return self.pinned
        now = time.monotonic()
        if self._last is None or now - self._last[0] >= self.sample_seconds:
            self._sample(now)
        return max(1, min(self.cores, round(self.cores - self.others)))

    def _sample(self, now: float) -> None:
        busy, own = _busy_seconds(), time.process_time() + self._helpers_seconds()
        if self._last is not None:
            began, busy0, own0 = self._last
            self.others = max(0.0, (busy - busy0) - (own - own0)) / max(now - began, 1e-9)
        self._last = (now, busy, own)

    def _helpers_seconds(self) -> float:
        """CPU seconds of our helper processes (gone ones count no more)."""
        total = 0.0
        for pid in self.helpers:
            try:
                t = psutil.Process(pid).cpu_times()
            except psutil.Error:
                continue
            total += t.user + t.system
        return total

    def small(self, flops: float, nbytes: float) -> bool:
        """An op too small for more than one thread (fixed by its size, not by the load)."""
        return self.estimate(flops, nbytes) < self.min_op_seconds

    def tuned(self, flops: float, nbytes: float) -> bool:
        """An op whose threads are decided by timing its first runs (``OpThreads``)."""
        return not self.small(flops, nbytes) and self.estimate(flops, nbytes) < TUNED_BELOW_S

    def threads_for(self, flops: float, nbytes: float) -> int:
        """Threads for one op of ``flops`` touching ``nbytes``."""
        return 1 if self.small(flops, nbytes) else self.available()

    def describe(self) -> str:
        head = (f"pinned to {self.pinned} threads" if self.pinned is not None
                else f"up to {self.cores} threads, fewer while other processes keep cores busy")
        return (f"{head}; on one: ops under {self.min_op_seconds * 1e6:.0f} us and ops more "
                "threads did not speed up")


TRIALS = 3  # runs an op is timed on one thread, and as many on more, before the choice
GAIN = 0.9  # more threads must take at most this fraction of one thread's time
# Ops estimated above this take their threads untimed: their lanes are long numpy and BLAS
# calls that release the GIL, and alternating them over the first iterations would slow those
TUNED_BELOW_S = 1e-3


@dataclass
class OpThreads:
    """Per op, whether more than one thread pays, measured on its first runs: until ``TRIALS``
    runs on one thread and as many on more were timed, the op alternates between them; then
    it keeps more threads only if their best time is at most ``GAIN`` times one thread's."""

    times: dict[str, dict[bool, list[float]]] = field(default_factory=dict)
    single: dict[str, bool] = field(default_factory=dict)

    def threads(self, op: str, available: int) -> int:
        """Threads for ``op`` now, given ``available``."""
        if available <= 1 or self.single.get(op, False):
            return 1
        if op in self.single:
            return available
        seen = self.times.setdefault(op, {False: [], True: []})
        return 1 if len(seen[False]) <= len(seen[True]) else available

    def record(self, op: str, threads: int, seconds: float) -> None:
        """``op`` ran on ``threads`` threads in ``seconds``."""
        seen = self.times.get(op)
        if seen is None or op in self.single:
            return
        seen[threads > 1].append(seconds)
        if min(len(seen[False]), len(seen[True])) >= TRIALS:
            self.single[op] = min(seen[True]) > GAIN * min(seen[False])
            del self.times[op]

    @property
    def deciding(self) -> bool:
        """Whether some op is still being timed."""
        return bool(self.times)
