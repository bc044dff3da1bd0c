"""The lane worker: a helper process that runs the lanes of lane programs after the first, so
that two lanes share no GIL.

Lanes on two threads of one interpreter take turns at the GIL between numpy calls, and on a
virtual machine a thread that waits for it is woken tens of microseconds later: lenet5's
convolutions, a few hundred microseconds each in calls of 10-50 us, ran no faster on two
threads than on one. The worker is a second interpreter (runtime/kernels/lane_worker.py, numpy
only) that maps the same arena (``SharedArena``, runtime/layout.py) and is sent each lane
program once, its arrays as (offset, shape, strides) in the arena; a request is then three
words in a shared control block, and while an iteration runs the worker polls for the next one
(for ``SPIN_SECONDS`` after each, then it sleeps until woken through its pipe), so a hand-off
costs under a microsecond. The caller runs lane 0 meanwhile and then waits for the worker,
yielding the CPU as it polls. A program whose arrays are not all in the arena, or that calls
anything but numpy, runs on threads instead.

Polling shared memory needs the processor to make the caller's earlier writes visible before
the request word (x86-64's total store order does); elsewhere ``available()`` is False and
lanes run on threads. The worker stops with its session, when its parent exits or is killed
(it polls for that), and ignores Ctrl-C, which its parent handles.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import platform
import select
import subprocess
import sys
from pathlib import Path

import numpy as np

from trainplan.runtime.kernels.base import KernelError
from trainplan.runtime.kernels.lane_worker import (
    ASLEEP,
    DONE,
    FAILED,
    LANE,
    NAP,
    PROGRAM,
    SEQ,
    STATE,
    read_message,
    write_message,
)
from trainplan.runtime.kernels.parallel import before_threads
from trainplan.runtime.kernels.program import LaneProgram, Scratch

START_TIMEOUT_S = 60.0
_CHECK_EVERY = 256  # polls between checks that the worker is still alive


def available() -> bool:
    """Whether this platform can run a lane worker: a memfd to share the arena and a
    processor whose stores become visible in order (x86-64)."""
    return hasattr(os, "memfd_create") and platform.machine().lower() in ("x86_64", "amd64")


class Unshippable(Exception):
    """A program the worker cannot run (an array outside the arena, a non-numpy call)."""


def _picklable(key) -> tuple | int:
    """A scratch buffer's key as the worker is sent it (a private buffer's: its identity)."""
    return key if isinstance(key, tuple) else id(key)


class LaneWorker:
    """The helper process of one arena; ``run(program)`` runs a program's lanes with it."""

    def __init__(self, arena_fd: int, arena: np.ndarray):
        self.arena = arena
        self.base = arena.__array_interface__["data"][0]
        self.size = arena.nbytes
        self._ctl_fd = os.memfd_create("trainplan-lane-control", os.MFD_CLOEXEC)
        os.ftruncate(self._ctl_fd, mmap.PAGESIZE)
        self._ctl_map = mmap.mmap(self._ctl_fd, mmap.PAGESIZE)
        self.ctl = np.ndarray((8,), np.int64, buffer=self._ctl_map)
        cmd_r, self._cmd = os.pipe()
        self._res, res_w = os.pipe()
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
                   MKL_NUM_THREADS="1")
        script = Path(__file__).with_name("lane_worker.py")
        fds = (arena_fd, self._ctl_fd, cmd_r, res_w)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, str(script), str(arena_fd), str(self.size),
                 str(self._ctl_fd), str(cmd_r), str(res_w)],
                pass_fds=fds, env=env, stdin=subprocess.DEVNULL)
        finally:
            os.close(cmd_r)
            os.close(res_w)
        self.seq = 0
        self.requests = 0  # lanes the worker ran
        self.sent: set[int] = set()
        self.refused: set[int] = set()
        self.alive = self._ready()
        if self.alive:
            before_threads(self.nap)

    def _ready(self) -> bool:
        ready, _, _ = select.select([self._res], [], [], START_TIMEOUT_S)
        if not ready:
            self.close()
            return False
        try:
            return read_message(self._res)[0] == "ready"
        except EOFError:
            self.close()
            return False

    def run(self, program: LaneProgram) -> bool:
        """Lane 0 here and the others in the worker; False (nothing run) when the worker
        cannot run this program."""
        if not self.alive or program.id in self.refused:
            return False
        lanes = None
        if program.id not in self.sent:
            try:
                lanes = {1: [self._encode_call(c) for lane in program.lanes[1:] for c in lane]}
            except Unshippable:
                self.refused.add(program.id)
                return False
        self.seq += 1
        ctl = self.ctl
        ctl[PROGRAM] = program.id
        ctl[LANE] = 1
        ctl[SEQ] = self.seq
        self.wake()
        if lanes is not None:  # after the request, which has the worker read it as we write:
            # a program larger than the pipe holds then waits for no end of its polling
            write_message(self._cmd, ("program", program.id, lanes))
            self.sent.add(program.id)
        error: BaseException | None = None
        try:
            program.run_lane(0)
        except BaseException as exc:  # noqa: BLE001 (the worker is waited for all the same)
            error = exc
        self._wait(self.seq)
        if ctl[FAILED] == self.seq:
            message = read_message(self._res)
            raise KernelError(f"a lane in the lane worker failed in {message[2]}")
        if error is not None:
            raise error
        self.requests += 1
        return True

    def wake(self) -> None:
        """Have the worker poll again if it went to sleep (it does after SPIN_SECONDS idle,
        or when told to ``nap``): a request then waits for no wake-up."""
        if self.alive:
            self.ctl[NAP] = 0
            if self.ctl[STATE] == ASLEEP:
                write_message(self._cmd, ("wake",))

    def nap(self) -> None:
        """Have the worker stop polling now: this process is about to run lanes on threads,
        which need the core it would hold."""
        if self.alive:
            self.ctl[NAP] = 1

    def _wait(self, seq: int) -> None:
        ctl, polls = self.ctl, 0
        while ctl[DONE] != seq:
            os.sched_yield()  # lets this process's other threads (the swap file's) run
            polls += 1
            if polls % _CHECK_EVERY == 0 and self.proc.poll() is not None:
                self.alive = False
                raise KernelError(f"the lane worker exited (code {self.proc.returncode}) "
                                  "while running a lane; run with threads=1 to go without it")

    def _encode_call(self, c) -> tuple:
        fn = c.fn
        if not (isinstance(fn, np.ufunc) or getattr(fn, "__module__", "").startswith("numpy")):
            raise Unshippable(fn)
        args, kwargs = c.spec
        return (fn, tuple(self._encode(a) for a in args),
                {k: self._encode(v) for k, v in kwargs.items()})

    def _encode(self, value):
        if isinstance(value, Scratch):
            return ("scratch", _picklable(value.key), value.shape, value.dtype,
                    value.view_shape)
        if isinstance(value, np.ndarray):
            address = value.__array_interface__["data"][0]
            low = address + sum(min(0, (n - 1) * s) for n, s in zip(value.shape, value.strides))
            high = address + sum(max(0, (n - 1) * s) for n, s in zip(value.shape, value.strides))
            if value.size and (low < self.base or high + value.itemsize > self.base + self.size):
                raise Unshippable("an array outside the arena")
            return ("arena", address - self.base, value.shape, value.strides, value.dtype.str)
        if isinstance(value, tuple):
            return tuple(self._encode(v) for v in value)
        if value is None or isinstance(value, (bool, int, float, str, slice, np.generic)):
            return value
        raise Unshippable(type(value))

    def pid(self) -> int | None:
        return self.proc.pid if self.alive else None

    def unique_bytes(self) -> int:
        """Memory the worker holds of its own (its interpreter, numpy, its temporaries; the
        shared arena not counted): its unique set size, 0 once it has stopped."""
        import psutil

        try:
            return int(psutil.Process(self.proc.pid).memory_full_info().uss)
        except (psutil.Error, AttributeError):
            return 0

    def close(self) -> None:
        """Stop the worker (it also stops by itself when this process is gone)."""
        if getattr(self, "_closed", False):
            return
        self._closed, self.alive = True, False
        before_threads(self.nap, remove=True)
        with contextlib.suppress(OSError, ValueError):
            self.ctl[SEQ] = -1
            write_message(self._cmd, ("stop",))
        for fd in (self._cmd, self._res, self._ctl_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
