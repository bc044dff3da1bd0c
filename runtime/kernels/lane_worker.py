"""The lane worker's process: runs lanes of lane programs over the shared arena.

Started by runtime/kernels/worker.py as ``python lane_worker.py ARENA_FD ARENA_BYTES CTL_FD
CMD_FD RES_FD`` (file descriptors inherited from its parent); it imports numpy and the
standard library only. Messages from the parent (``CMD_FD``, length-prefixed pickles):
``("program", id, lanes)`` — the calls of a program's lanes, arrays given as
``("arena", offset, shape, strides, dtype)`` or ``("scratch", key, shape, dtype, view)`` (a
temporary of its own, maybe its leading elements viewed as ``view``) — ``("wake",)``
and ``("stop",)``. Requests come through the control block (``CTL_FD``, int64 words, see
worker.py): the parent writes the program and lane, then the request's number; the worker runs
that lane and writes the number back as done (and as failed, with the error's text on
``RES_FD``, when it raised). Between requests it polls the control block for ``SPIN_SECONDS``
(a hand-off then costs well under a microsecond, where waking a sleeping thread or process
costs tens), then sleeps on ``CMD_FD`` until woken — at once when the parent sets ``NAP``
(before it runs lanes on its own threads, which need the core). It exits on ``("stop",)``, when the parent
closes its end, or when the parent is gone.
"""

import mmap
import os
import pickle
import select
import signal
import struct
import sys
import time
import traceback

import numpy as np

SEQ, PROGRAM, LANE, DONE, FAILED, STATE, NAP = range(7)
AWAKE, ASLEEP = 1, 0
SPIN_SECONDS = 0.02
SLEEP_POLL_SECONDS = 0.005
HEADER = struct.Struct("<I")


def _read_exact(fd: int, n: int) -> bytes:
    out = b""
    while len(out) < n:
        part = os.read(fd, n - len(out))
        if not part:
            raise EOFError
        out += part
    return out


def read_message(fd: int):
    (n,) = HEADER.unpack(_read_exact(fd, HEADER.size))
    return pickle.loads(_read_exact(fd, n))


def write_message(fd: int, message) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    os.write(fd, HEADER.pack(len(data)) + data)


def _decode(value, arena: mmap.mmap, scratch: dict):
    if isinstance(value, tuple) and value and value[0] == "arena":
        _, offset, shape, strides, dtype = value
        return np.ndarray(shape, np.dtype(dtype), buffer=arena, offset=offset, strides=strides)
    if isinstance(value, tuple) and value and value[0] == "scratch":
        _, key, shape, dtype, view_shape = value
        if key not in scratch:
            scratch[key] = np.empty(shape, np.dtype(dtype))
        if view_shape is None:
            return scratch[key]
        return scratch[key].reshape(-1)[:int(np.prod(view_shape))].reshape(view_shape)
    return value


def _program(lanes, arena: mmap.mmap, scratch: dict) -> dict:
    """{lane: [(fn, args, kwargs)]}; a temporary (``scratch``) is this process's own, one
    per key, shared by the calls (and programs) that name it."""
    out = {}
    for lane, calls in lanes.items():
        out[lane] = [(fn, tuple(_decode(a, arena, scratch) for a in args),
                      {k: _decode(v, arena, scratch) for k, v in kwargs.items()})
                     for fn, args, kwargs in calls]
    return out


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    arena_fd, arena_bytes, ctl_fd, cmd_fd, res_fd = (int(a) for a in argv[1:6])
    parent = os.getppid()
    arena = mmap.mmap(arena_fd, arena_bytes)
    ctl_map = mmap.mmap(ctl_fd, mmap.PAGESIZE)
    ctl = np.ndarray((8,), np.int64, buffer=ctl_map)
    programs: dict[int, dict] = {}
    scratch: dict = {}

    def handle(message) -> bool:
        kind = message[0]
        if kind == "program":
            programs[message[1]] = _program(message[2], arena, scratch)
        return kind != "stop"

    last = int(ctl[SEQ])  # before "ready": the parent may post a request right after it
    write_message(res_fd, ("ready", os.getpid()))
    idle_since = time.monotonic()
    spins = 0
    while True:
        seq = int(ctl[SEQ])
        if seq != last:
            last = seq
            if seq < 0:
                return 0
            number, lane = int(ctl[PROGRAM]), int(ctl[LANE])
            fn = None
            try:
                while number not in programs:
                    if not handle(read_message(cmd_fd)):
                        return 0
                for fn, args, kwargs in programs[number][lane]:
                    fn(*args, **kwargs)
            except EOFError:
                return 0
            except Exception as exc:  # noqa: BLE001 (reported to the parent, raised there)
                where = getattr(fn, "__name__", str(fn))
                text = "".join(traceback.format_exception_only(exc)).strip()
                write_message(res_fd, ("error", seq, f"{where}: {text}"))
                ctl[FAILED] = seq
            ctl[DONE] = seq
            idle_since = time.monotonic()
            continue
        spins += 1
        if not ctl[NAP] and (spins % 1024 or time.monotonic() - idle_since < SPIN_SECONDS):
            continue
        ctl[STATE] = ASLEEP
        while int(ctl[SEQ]) == last:
            # a wake-up the parent wrote just as we went to sleep is seen within the timeout
            ready, _, _ = select.select([cmd_fd], [], [], SLEEP_POLL_SECONDS)
            try:
                if ready and not handle(read_message(cmd_fd)):
                    return 0
            except EOFError:
                return 0
            if os.getppid() != parent:
                return 0
        ctl[STATE] = AWAKE
        idle_since = time.monotonic()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
