"""Real swap files: a private file, written and read on a background thread.

The file lives in a fresh directory (mode 0700) and is itself mode 0600; both are removed when
the SwapFile closes, at interpreter exit, and after an exception or Ctrl-C (or SIGTERM, which the
CLI turns into one) unwinds through the ``with`` block. The directory holds a ``pid`` file
naming its process; one whose process no longer runs (killed with SIGKILL, or by a power cut)
is removed when the next SwapFile is made in the same place. Transfers run in submission order (FIFO) on one thread, so a read into bytes an
earlier eviction is still writing out cannot overtake that write. A failed transfer (a full disk,
a read-only directory, a short read) is raised, with its cause, by whoever waits on it.

By default the file goes through the page cache: a write returns once the kernel holds the
bytes, which stay in RAM (outside the process's RSS) until the kernel writes them back. With
``through=True`` swapped bytes leave RAM as they would on a device under memory pressure: each
write is flushed to storage (``fdatasync``) and its pages dropped from the cache, and so are the
pages each read brought in (whole pages: buffers sit at page-aligned offsets,
runtime/swap_layout.py), with read-ahead off (``POSIX_FADV_RANDOM``), so every read comes from
storage and no swapped buffer's pages come back into RAM beside another's.
simulator/calibrate_storage.py times these same requests for the device profile.

While a swap file is open the interpreter's switch interval is SWITCH_INTERVAL_S (restored when
the last one closes): the transfer thread needs the GIL back after each system call, and a
compute thread running Python between small numpy calls would otherwise keep it for the
default 5 ms each time, tripling a millisecond's write.

Every ticket carries its times (``submitted``, ``started``, ``ended``: ``time.perf_counter``)
and size; a measurement sets ``journal`` to a list and every ticket submitted from then on is
appended to it, in submission order (runtime/measure.py lines them up with the simulator's).
"""

from __future__ import annotations

import atexit
import os
import queue
import shutil
import sys
import tempfile
import threading
import time

import numpy as np

from trainplan.planner.errors import TrainplanError
from trainplan.planner.fileio import owner_stamp, stamp_is_stale

PREFIX = "trainplan-swap-"
PAGE = 4096  # the span of cache advice rounds up to whole pages
SWITCH_INTERVAL_S = 2e-4


def page_round(nbytes: int) -> int:
    """``nbytes`` rounded up to whole pages (the span a buffer's slot and its advice cover)."""
    return -(-nbytes // PAGE) * PAGE


def swap_request(fd: int, kind: str, buf: memoryview, offset: int, through: bool = True) -> int:
    """One request as the swap file makes it (simulator/calibrate_storage.py times the same):
    ``pwrite`` or ``preadv`` of ``buf`` at ``offset``; through to storage, a write is flushed
    (``fdatasync``) and the pages moved are dropped from the cache. Returns the bytes moved."""
    if kind == "write":
        done = os.pwrite(fd, buf, offset)
        if through:
            os.fdatasync(fd)
    else:
        done = os.preadv(fd, [buf], offset)
    if through:
        os.posix_fadvise(fd, offset, page_round(done), os.POSIX_FADV_DONTNEED)
    return done


class SwapIOError(TrainplanError):
    """Swapping failed: the message says which transfer and why."""


def remove_stale_swap_dirs(parent: str) -> list[str]:
    """Remove this user's swap directories in ``parent`` whose process no longer runs (their
    ``pid`` file says which); return them. Directories without a pid file are left alone: a
    process may be between creating one and stamping it."""
    removed = []
    try:
        names = [n for n in os.listdir(parent) if n.startswith(PREFIX)]
    except OSError:
        return removed
    for name in names:
        path = os.path.join(parent, name)
        stamp = os.path.join(path, "pid")
        try:
            if os.lstat(path).st_uid != os.getuid() or not os.path.isfile(stamp):
                continue
            with open(stamp) as fh:
                owner = fh.read(32)
            if stamp_is_stale(owner, os.path.getmtime(stamp)):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        except OSError:
            continue
    return removed


class Ticket:
    """One transfer; ``wait`` blocks until it is done and returns the seconds waited.
    ``kind`` ("read" or "write"), ``buffer``, ``nbytes`` and the times it was submitted,
    started on the transfer thread and ended (``time.perf_counter``; NaN until then)."""

    def __init__(self, what: str, kind: str = "", buffer: str = "", nbytes: int = 0):
        self.what, self.kind, self.buffer, self.nbytes = what, kind, buffer, nbytes
        self.submitted = time.perf_counter()
        self.started = self.ended = float("nan")
        self.cpu_s = float("nan")  # CPU time of the transfer thread on it (copies, syscalls)
        self._done = threading.Event()
        self.error: BaseException | None = None

    def finish(self, error: BaseException | None = None) -> None:
        self.error = error
        self._done.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self) -> float:
        began = time.perf_counter()
        self._done.wait()
        if self.error is not None:
            raise SwapIOError(f"{self.what} failed: {self.error}") from self.error
        return time.perf_counter() - began


def _bytes(view: np.ndarray) -> memoryview:
    return memoryview(np.ascontiguousarray(view).reshape(-1).view(np.uint8))


class _SwitchInterval:
    """The interpreter's switch interval lowered while any swap file is open."""

    def __init__(self):
        self.lock, self.open, self.saved = threading.Lock(), 0, 0.0

    def enter(self) -> None:
        with self.lock:
            if not self.open:
                self.saved = sys.getswitchinterval()
                sys.setswitchinterval(min(self.saved, SWITCH_INTERVAL_S))
            self.open += 1

    def leave(self) -> None:
        with self.lock:
            self.open -= 1
            if not self.open:
                sys.setswitchinterval(self.saved)


_SWITCH = _SwitchInterval()


class SwapFile:
    """A private swap file of ``nbytes`` with a FIFO transfer thread; ``through``: every
    transfer goes to storage, none stays in the page cache (see the module docstring)."""

    def __init__(self, nbytes: int, directory: str | None = None, *, through: bool = False):
        if through and not (hasattr(os, "posix_fadvise") and hasattr(os, "fdatasync")):
            raise SwapIOError("swapping through to storage needs fdatasync and posix_fadvise, "
                              "which this system lacks; swap through the page cache instead")
        self.directory, self.fd, self.through = "", -1, through
        self.bytes_read = self.bytes_written = 0
        self.journal: list[Ticket] | None = None  # set to a list to record every ticket
        self._queue: queue.Queue = queue.Queue()
        try:
            remove_stale_swap_dirs(directory or tempfile.gettempdir())
            self.directory = tempfile.mkdtemp(prefix=PREFIX, dir=directory)
            os.chmod(self.directory, 0o700)
            with open(os.path.join(self.directory, "pid"), "w") as fh:
                fh.write(owner_stamp())
            self.path = os.path.join(self.directory, "swap.bin")
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            os.ftruncate(self.fd, max(nbytes, 1))
            if through:  # read only what is asked: no neighbour's pages back into RAM
                os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_RANDOM)
        except OSError as exc:
            self.close()
            raise SwapIOError(f"cannot create the swap file in {directory or 'the temp dir'}"
                              f": {exc}") from exc
        self._thread = threading.Thread(target=self._serve, name="trainplan-swap", daemon=True)
        _SWITCH.enter()
        self._switched = True
        self._thread.start()
        atexit.register(self.close)

    def write(self, view: np.ndarray, offset: int, what: str) -> Ticket:
        """Queue writing ``view``'s bytes at ``offset``."""
        return self._submit("write", view, offset, what)

    def read(self, view: np.ndarray, offset: int, what: str) -> Ticket:
        """Queue reading ``view.nbytes`` bytes at ``offset`` into ``view`` (contiguous)."""
        return self._submit("read", view, offset, what)

    def _submit(self, kind: str, view: np.ndarray, offset: int, what: str) -> Ticket:
        ticket = Ticket(f"{kind} of {what}", kind, what, int(view.nbytes))
        if self.journal is not None:
            self.journal.append(ticket)
        self._queue.put((kind, view, offset, ticket))
        return ticket

    def _serve(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            kind, view, offset, ticket = item
            ticket.started, cpu = time.perf_counter(), time.thread_time()
            try:
                if kind == "write":
                    data = _bytes(view)
                    done = swap_request(self.fd, kind, data, offset, self.through)
                    if done != len(data):
                        raise OSError(f"short write: {done} of {len(data)} bytes")
                    self.bytes_written += done
                else:
                    target = memoryview(view.reshape(-1).view(np.uint8))
                    done = swap_request(self.fd, kind, target, offset, self.through)
                    if done != len(target):
                        raise OSError(f"short read: {done} of {len(target)} bytes at {offset}")
                    self.bytes_read += done
                ticket.ended, ticket.cpu_s = time.perf_counter(), time.thread_time() - cpu
                ticket.finish()
            except BaseException as exc:  # handed to the waiter
                ticket.finish(exc)

    def close(self) -> None:
        """Stop the thread, close and remove the file and its directory (idempotent)."""
        thread = getattr(self, "_thread", None)
        if thread is not None and thread.is_alive():
            self._queue.put(None)
            thread.join(timeout=30)
        if getattr(self, "_switched", False):
            self._switched = False
            _SWITCH.leave()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.directory and os.path.isdir(self.directory):
            shutil.rmtree(self.directory, ignore_errors=True)
        atexit.unregister(self.close)

    def __enter__(self) -> SwapFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
