"""The planner-independent allocation problem: buffers with fixed lifetimes, offsets to choose.

This is the Dynamic Storage Allocation problem MiniMalloc solves: every buffer occupies the
half-open time interval ``[start, end)`` and ``size`` bytes at an offset that is a multiple of
its ``alignment``; buffers whose intervals overlap must not overlap in bytes.

>>> p = AllocationProblem((Buffer("a", 0, 2, 4), Buffer("b", 1, 3, 4), Buffer("c", 2, 4, 8)))
>>> p.lower_bound()
12
>>> p.no_reuse_bytes()
16
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field

import numpy as np

from trainplan.planner.errors import InvalidProblem
from trainplan.planner.fileio import atomic_write_text, clip, read_text_file
from trainplan.planner.resources import MAX_BYTES, magnitude


@dataclass(frozen=True)
class Buffer:
    """One request: ``size`` bytes live over ``[start, end)``; ``kind`` is a free tag (role)."""

    id: str
    start: int
    end: int
    size: int
    alignment: int = 1
    kind: str = ""


@dataclass(frozen=True)
class AllocationProblem:
    """Buffers plus an optional capacity (the arena may not exceed it)."""

    buffers: tuple[Buffer, ...]
    capacity: int | None = None
    name: str = ""
    meta: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "buffers", tuple(self.buffers))
        seen = set()
        for b in self.buffers:
            if b.id in seen:
                raise InvalidProblem(f"buffer id {clip(b.id)} appears twice; ids must be unique")
            seen.add(b.id)
            if b.size <= 0 or b.end <= b.start or b.alignment <= 0:
                raise InvalidProblem(
                    f"buffer {clip(b.id)}: needs size > 0, end > start and alignment > 0 "
                    f"(got size={b.size}, start={b.start}, end={b.end}, alignment={b.alignment})"
                )
        if self.capacity is not None and self.capacity < 0:
            raise InvalidProblem(f"capacity must be >= 0, got {self.capacity}")

    def live_curve(self) -> tuple[np.ndarray, np.ndarray]:
        """Bytes live over time: (times, bytes) with bytes[i] live on [times[i], times[i+1])."""
        if not self.buffers:
            return np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64)
        times = np.array(sorted({b.start for b in self.buffers} | {b.end for b in self.buffers}))
        delta = np.zeros(len(times), dtype=np.int64)
        index = {t: i for i, t in enumerate(times)}
        for b in self.buffers:
            delta[index[b.start]] += b.size
            delta[index[b.end]] -= b.size
        return times, np.cumsum(delta)

    def lower_bound(self) -> int:
        """Max over time of live bytes: no offset assignment can use fewer bytes."""
        return int(self.live_curve()[1].max()) if self.buffers else 0

    def no_reuse_bytes(self) -> int:
        """Sum of all sizes: the arena when nothing shares bytes."""
        return sum(b.size for b in self.buffers)

    def with_capacity(self, capacity: int | None) -> AllocationProblem:
        return AllocationProblem(self.buffers, capacity, self.name, self.meta)

    # --- MiniMalloc CSV ---------------------------------------------------------------

    @staticmethod
    def from_csv(text_or_path: str, capacity: int | None = None) -> AllocationProblem:
        """Read MiniMalloc's CSV (``id,lower,upper,size[,alignment][,offset]``) from a path
        (any text without a line break) or from the text itself; errors name the line."""
        if "\n" not in text_or_path:
            text = read_text_file(text_or_path, "CSV problem")
            return _parse_csv(text, capacity, os.path.basename(text_or_path))
        return _parse_csv(text_or_path, capacity, "")

    def to_csv(self, offsets: dict[str, int] | None = None) -> str:
        """MiniMalloc's CSV; with ``offsets`` a solution (adds the ``offset`` column)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        header = ["id", "lower", "upper", "size", "alignment"]
        writer.writerow(header + (["offset"] if offsets is not None else []))
        for b in self.buffers:
            row = [b.id, b.start, b.end, b.size, b.alignment]
            writer.writerow(row + ([offsets[b.id]] if offsets is not None else []))
        return out.getvalue()

    def write_csv(self, path: str, offsets: dict[str, int] | None = None) -> None:
        atomic_write_text(path, self.to_csv(offsets))


_REQUIRED = ("id", "lower", "upper", "size")
_LEGACY = {"start": "lower", "begin": "lower", "buffer": "id", "buffer_id": "id"}


def _parse_csv(text: str, capacity: int | None, name: str) -> AllocationProblem:
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise InvalidProblem(f"{name or 'CSV'}: not a CSV file ({exc})") from None
    if not rows:
        raise InvalidProblem("empty CSV: expected a header line 'id,lower,upper,size'")
    header = [_LEGACY.get(h.strip().lower(), h.strip().lower()) for h in rows[0]]
    closed_end = "end" in header and "upper" not in header
    if closed_end:
        header = ["upper" if h == "end" else h for h in header]
    missing = [c for c in _REQUIRED if c not in header]
    if missing:
        raise InvalidProblem(
            f"line 1: missing column(s) {', '.join(missing)}; the header must contain "
            "id,lower,upper,size (optionally alignment)"
        )
    col = {h: i for i, h in enumerate(header)}
    buffers = []
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) < len(header):
            raise InvalidProblem(f"line {lineno}: expected {len(header)} fields, got {len(row)}")
        values = {}
        for key in ("lower", "upper", "size", "alignment"):
            if key not in col:
                continue
            raw = row[col[key]].strip()
            try:
                values[key] = int(raw)
            except ValueError:
                raise InvalidProblem(
                    f"line {lineno}: {key} must be an integer, got {clip(raw)}"
                ) from None
            if abs(values[key]) >= MAX_BYTES:
                raise InvalidProblem(f"line {lineno}: {key} {magnitude(values[key])} is too large; "
                                     "sizes and times must be below 2^62")
        if closed_end:
            values["upper"] += 1
        if values["size"] <= 0:
            raise InvalidProblem(f"line {lineno}: size must be positive, got {values['size']}")
        if values["upper"] <= values["lower"]:
            raise InvalidProblem(
                f"line {lineno}: upper ({values['upper']}) must be greater than lower "
                f"({values['lower']}); intervals are half-open [lower, upper)"
            )
        if values.get("alignment", 1) <= 0:
            raise InvalidProblem(f"line {lineno}: alignment must be positive")
        buffers.append(
            Buffer(row[col["id"]].strip(), values["lower"], values["upper"], values["size"],
                   values.get("alignment", 1))
        )
    total = sum(b.size + b.alignment - 1 for b in buffers)
    if total >= MAX_BYTES:
        raise InvalidProblem(f"{name or 'CSV'}: the sizes add up to {magnitude(total)} bytes, beyond "
                             "2^62: the bounds' int64 arithmetic would overflow; is the file "
                             "in bytes?")
    try:
        return AllocationProblem(tuple(buffers), capacity, name)
    except InvalidProblem as exc:
        raise InvalidProblem(f"{name or 'CSV'}: {exc}") from None

