"""The planner-independent allocation problem: buffers with fixed lifetimes, offsets to choose.

This is the Dynamic Storage Allocation problem MiniMalloc solves: every buffer occupies the
half-open time interval ``[start, end)`` and ``size`` bytes at an offset that is a multiple of
its ``alignment``; buffers whose intervals overlap must not overlap in bytes.

MiniMalloc's format in full: a buffer may have **gaps**, intervals inside its lifetime where it
is inactive (no bytes in use) or, with a *window* ``[lo, hi)``, where only bytes
``[offset + lo, offset + hi)`` stay in use; it may have a **fixed offset** every plan keeps,
and a **hint** (an offset a planner may start from). Whatever its gaps, a buffer reserves
``[offset, offset + size)`` of the arena: ``offset + size`` never exceeds the arena.

>>> p = AllocationProblem((Buffer("a", 0, 2, 4), Buffer("b", 1, 3, 4), Buffer("c", 2, 4, 8)))
>>> p.lower_bound()
12
>>> p.no_reuse_bytes()
16
>>> q = AllocationProblem((Buffer("x", 0, 4, 4, gaps=(Gap(1, 3),)), Buffer("y", 1, 3, 4)))
>>> q.lower_bound()  # y fits into x's gap
4
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
class Gap:
    """``[start, end)`` inside a lifetime where the buffer is inactive; with ``window`` only
    bytes ``[offset + window[0], offset + window[1])`` stay in use."""

    start: int
    end: int
    window: tuple[int, int] | None = None


@dataclass(frozen=True)
class Buffer:
    """One request: ``size`` bytes live over ``[start, end)``; ``kind`` is a free tag (role);
    ``gaps`` (in time order), a fixed ``offset`` and a ``hint`` are MiniMalloc's options."""

    id: str
    start: int
    end: int
    size: int
    alignment: int = 1
    kind: str = ""
    gaps: tuple[Gap, ...] = ()
    offset: int | None = None
    hint: int | None = None

    def pieces(self) -> tuple[tuple[int, int, int, int], ...]:
        """The parts in use, in time order: ``(start, end, lo, hi)`` = bytes
        ``[offset + lo, offset + hi)`` over ``[start, end)``.

        >>> Buffer("x", 0, 9, 8, gaps=(Gap(2, 4), Gap(5, 6, (0, 2)))).pieces()
        ((0, 2, 0, 8), (4, 5, 0, 8), (5, 6, 0, 2), (6, 9, 0, 8))
        """
        if not self.gaps:
            return ((self.start, self.end, 0, self.size),)
        out, t = [], self.start
        for g in self.gaps:
            if g.start > t:
                out.append((t, g.start, 0, self.size))
            if g.window is not None and g.window[1] > g.window[0]:
                out.append((g.start, g.end, g.window[0], g.window[1]))
            t = g.end
        if self.end > t:
            out.append((t, self.end, 0, self.size))
        return tuple(out)


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
            _check_buffer(b)
        if self.capacity is not None and self.capacity < 0:
            raise InvalidProblem(f"capacity must be >= 0, got {self.capacity}")
        _check_fixed_disjoint([b for b in self.buffers if b.offset is not None])

    @property
    def has_gaps(self) -> bool:
        return any(b.gaps for b in self.buffers)

    @property
    def has_fixed(self) -> bool:
        return any(b.offset is not None for b in self.buffers)

    def live_curve(self) -> tuple[np.ndarray, np.ndarray]:
        """Bytes in use over time: (times, bytes) with bytes[i] in use on [times[i], times[i+1])
        (a gap counts its window only); every buffer's start and end is among the times."""
        if self.buffers and not self.has_gaps:  # one piece per buffer: vectorised
            start, end, size = (np.array([getattr(b, f) for b in self.buffers], dtype=np.int64)
                                for f in ("start", "end", "size"))
            times = np.unique(np.concatenate((start, end)))
            delta = np.zeros(len(times), dtype=np.int64)
            np.add.at(delta, np.searchsorted(times, start), size)
            np.add.at(delta, np.searchsorted(times, end), -size)
            return times, np.cumsum(delta)
        pieces = [p for b in self.buffers for p in b.pieces()]
        if not pieces:
            return np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64)
        bounds = {b.start for b in self.buffers} | {b.end for b in self.buffers}
        times = np.array(sorted(bounds | {p[0] for p in pieces} | {p[1] for p in pieces}))
        delta = np.zeros(len(times), dtype=np.int64)
        index = {t: i for i, t in enumerate(times)}
        for t0, t1, lo, hi in pieces:
            delta[index[t0]] += hi - lo
            delta[index[t1]] -= hi - lo
        return times, np.cumsum(delta)

    def lower_bound(self) -> int:
        """No plan uses fewer bytes: the most bytes in use at once, the largest buffer, and the
        top of every fixed buffer."""
        if not self.buffers:
            return 0
        fixed = max((b.offset + b.size for b in self.buffers if b.offset is not None), default=0)
        biggest = max(b.size for b in self.buffers)
        return max(int(self.live_curve()[1].max()), biggest, fixed)

    def no_reuse_bytes(self) -> int:
        """Sum of all sizes: the arena when nothing shares bytes."""
        return sum(b.size for b in self.buffers)

    def with_capacity(self, capacity: int | None) -> AllocationProblem:
        return AllocationProblem(self.buffers, capacity, self.name, self.meta)

    # --- MiniMalloc CSV ---------------------------------------------------------------

    @staticmethod
    def from_csv(text_or_path: str, capacity: int | None = None) -> AllocationProblem:
        """Read MiniMalloc's CSV (``id,lower,upper,size[,alignment][,hint][,gaps][,offset]``)
        from a path (any text without a line break) or from the text itself; errors name the
        line. An ``offset`` fixes the buffer there (MiniMalloc's meaning; an empty cell or -1
        leaves it free); gaps are ``lower-upper`` or ``lower-upper@lo:hi`` separated by
        spaces."""
        if "\n" not in text_or_path:
            text = read_text_file(text_or_path, "CSV problem")
            return _parse_csv(text, capacity, os.path.basename(text_or_path))
        return _parse_csv(text_or_path, capacity, "")

    def to_csv(self, offsets: dict[str, int] | None = None) -> str:
        """MiniMalloc's CSV; with ``offsets`` a solution (their ``offset`` column), else the
        fixed offsets when there are any (empty cells for free buffers)."""
        has_hint = any(b.hint is not None for b in self.buffers)
        has_offset = offsets is not None or self.has_fixed
        header = ["id", "lower", "upper", "size", "alignment"]
        header += ["hint"] * has_hint + ["gaps"] * self.has_gaps + ["offset"] * has_offset
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        for b in self.buffers:
            row = [b.id, b.start, b.end, b.size, b.alignment]
            row += [-1 if b.hint is None else b.hint] * has_hint
            row += [" ".join(_gap_text(g) for g in b.gaps)] * self.has_gaps
            if has_offset:
                row.append(offsets[b.id] if offsets is not None else
                           ("" if b.offset is None else b.offset))
            writer.writerow(row)
        return out.getvalue()

    def write_csv(self, path: str, offsets: dict[str, int] | None = None) -> None:
        atomic_write_text(path, self.to_csv(offsets))


def _check_buffer(b: Buffer) -> None:
    """Sizes, times, alignment, gaps, fixed offset and hint of one buffer, or InvalidProblem."""
    if b.size <= 0 or b.end <= b.start or b.alignment <= 0:
        raise InvalidProblem(
            f"buffer {clip(b.id)}: needs size > 0, end > start and alignment > 0 "
            f"(got size={b.size}, start={b.start}, end={b.end}, alignment={b.alignment})"
        )
    t = b.start
    for g in b.gaps:
        if not (t <= g.start < g.end <= b.end):
            raise InvalidProblem(
                f"buffer {clip(b.id)}: gap [{g.start},{g.end}) must lie inside its lifetime "
                f"[{b.start},{b.end}), after the previous gap, and end after it starts"
            )
        if g.window is not None and not 0 <= g.window[0] <= g.window[1] <= b.size:
            raise InvalidProblem(
                f"buffer {clip(b.id)}: gap window {g.window[0]}:{g.window[1]} must lie within "
                f"0:{b.size} (its size)"
            )
        t = g.end
    if b.offset is not None and (b.offset < 0 or b.offset % b.alignment):
        raise InvalidProblem(
            f"buffer {clip(b.id)}: fixed offset {b.offset} must be >= 0 and a multiple of its "
            f"alignment {b.alignment}"
        )
    if b.hint is not None and b.hint < 0:
        raise InvalidProblem(f"buffer {clip(b.id)}: hint {b.hint} must be >= 0")


def _check_fixed_disjoint(fixed: list[Buffer]) -> None:
    """Two fixed buffers that share a byte while both in use leave no plan: say which."""
    fixed = sorted(fixed, key=lambda b: b.start)
    for i, a in enumerate(fixed):
        for b in fixed[i + 1:]:
            if b.start >= a.end:
                break
            for s0, e0, lo0, hi0 in a.pieces():
                for s1, e1, lo1, hi1 in b.pieces():
                    if s0 < e1 and s1 < e0 and a.offset + lo0 < b.offset + hi1 and (
                            b.offset + lo1 < a.offset + hi0):
                        raise InvalidProblem(
                            f"buffers {a.id!r} and {b.id!r} have fixed offsets ({a.offset}, "
                            f"{b.offset}) that share bytes while both are in use at time "
                            f"{max(s0, s1)}; free one of them or move it"
                        )


def _gap_text(g: Gap) -> str:
    text = f"{g.start}-{g.end}"
    return text if g.window is None else f"{text}@{g.window[0]}:{g.window[1]}"


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
            "id,lower,upper,size (optionally alignment, hint, gaps, offset)"
        )
    col = {h: i for i, h in enumerate(header)}
    buffers = []
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) < len(header):
            raise InvalidProblem(f"line {lineno}: expected {len(header)} fields, got {len(row)}")
        buffers.append(_parse_row(row, col, lineno, int(closed_end)))
    total = sum(b.size + b.alignment - 1 for b in buffers)
    if total >= MAX_BYTES:
        raise InvalidProblem(f"{name or 'CSV'}: the sizes add up to {magnitude(total)} bytes, "
                             "beyond 2^62: the bounds' int64 arithmetic would overflow; is the "
                             "file in bytes?")
    try:
        return AllocationProblem(tuple(buffers), capacity, name)
    except InvalidProblem as exc:
        raise InvalidProblem(f"{name or 'CSV'}: {exc}") from None


def _parse_row(row: list[str], col: dict[str, int], lineno: int, addend: int) -> Buffer:
    """One CSV row as a Buffer; ``addend`` is 1 for the old closed ``end`` column."""
    values: dict[str, int | None] = {}
    for key in ("lower", "upper", "size", "alignment", "hint", "offset"):
        if key in col:
            raw = row[col[key]].strip()
            optional = key in ("hint", "offset") and raw in ("", "-1")
            values[key] = None if optional else _int(raw, key, lineno)
    values["upper"] += addend
    if values["size"] <= 0:
        raise InvalidProblem(f"line {lineno}: size must be positive, got {values['size']}")
    if values["upper"] <= values["lower"]:
        raise InvalidProblem(
            f"line {lineno}: upper ({values['upper']}) must be greater than lower "
            f"({values['lower']}); intervals are half-open [lower, upper)"
        )
    if (values.get("alignment") or 1) <= 0:
        raise InvalidProblem(f"line {lineno}: alignment must be positive")
    gaps = _parse_gaps(row[col["gaps"]], lineno, addend) if "gaps" in col else ()
    return Buffer(row[col["id"]].strip(), values["lower"], values["upper"], values["size"],
                  values.get("alignment") or 1, gaps=gaps, offset=values.get("offset"),
                  hint=values.get("hint"))


def _parse_gaps(text: str, lineno: int, addend: int) -> tuple[Gap, ...]:
    """``"2-4 5-6@0:2"`` -> gaps in time order; errors show the expected syntax."""
    gaps = []
    for item in text.split():
        span, _, window = item.partition("@")
        lower, dash, upper = span.partition("-")
        lo, colon, hi = window.partition(":")
        if not dash or (window and not colon):
            raise InvalidProblem(
                f"line {lineno}: gap {item!r} is not 'lower-upper' or 'lower-upper@lo:hi'")
        win = (_int(lo, "gap window", lineno), _int(hi, "gap window", lineno)) if window else None
        gaps.append(Gap(_int(lower, "gap", lineno), _int(upper, "gap", lineno) + addend, win))
    return tuple(sorted(gaps, key=lambda g: g.start))


def _int(raw: str, what: str, lineno: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise InvalidProblem(f"line {lineno}: {what} must be an integer, got {clip(raw)}") \
            from None
    if abs(value) >= MAX_BYTES:
        raise InvalidProblem(f"line {lineno}: {what} {magnitude(value)} is too large; sizes and "
                             "times must be below 2^62")
    return value
