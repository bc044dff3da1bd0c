"""Limits checked before work starts: sizes the int64 arithmetic of the bounds can hold, and
RAM a large allocation needs against what the machine has available (refused with both
figures, instead of numpy's MemoryError half-way through).

>>> require_memory(1024, "a test array", "use less")
>>> require_memory(MAX_BYTES, "a test array", "use less")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
trainplan.planner.errors.NotEnoughMemory: a test array needs 4,611,686,018,427,387,904 bytes ...
"""

from __future__ import annotations

import psutil

from trainplan.planner.errors import NotEnoughMemory

MAX_BYTES = 2**62  # sizes (and sums of sizes) past this overflow the bounds' int64 arithmetic


def available_bytes() -> int:
    """RAM the system can give this process now without swapping (psutil's ``available``)."""
    return int(psutil.virtual_memory().available)


def require_memory(nbytes: int, what: str, fix: str) -> None:
    """Raise NotEnoughMemory (naming ``what``, the bytes needed and available, and ``fix``)
    when ``nbytes`` exceed the RAM available."""
    free = available_bytes()
    if nbytes > free:
        raise NotEnoughMemory(f"{what} needs {nbytes:,} bytes ({_human(nbytes)}), more than the "
                              f"{free:,} bytes ({_human(free)}) of RAM available; {fix}",
                              nbytes, free)


def magnitude(n: int) -> str:
    """A huge integer for a message: ``1e+30``, or its digit count past floats' range."""
    return f"{n:.3g}" if abs(n) < 10**300 else f"of {len(str(abs(n))):,} digits"


def _human(nbytes: int) -> str:
    value, unit = float(nbytes), "B"
    for bigger in ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.1f} {unit}"
