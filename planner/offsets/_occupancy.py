"""Which bytes are taken during a time window: two segment trees over time of merged byte ranges.

Best-fit placement asks, for each new buffer, for the holes among the byte ranges of every
placed buffer whose lifetime overlaps its own. Only the union of those ranges matters (a hole
is a gap in it), and in training graphs that union is a few segments even when thousands of
buffers overlap (weights live throughout, activations nest). So instead of visiting the
overlapping buffers, the trees keep unions. Time is cut into elementary slots between
consecutive start/end times; a range placed over slots ``[first, last)`` overlaps a window
``[f, l)`` exactly when it starts inside the window (``f <= first < l``) or covers slot ``f``:

- ``by_start``: per tree node, the union of the ranges whose first slot lies under it; a range
  is merged into its first slot's leaf and the nodes above, stopping at the first node whose
  union already holds it (the ones above hold it too). The window's nodes give the first kind.
- ``covering``: the range is merged into the O(log m) nodes that exactly cover its slots; the
  nodes on slot ``f``'s root path give the second kind.

Both operations cost O(log m) list operations plus the number of segments read, instead of the
number of buffers overlapping.

>>> occ = Occupancy(3)  # three time slots
>>> occ.add(0, 1, 0, 8); occ.add(1, 3, 16, 24)  # bytes [0,8) over slot 0, [16,24) over 1..2
>>> occ.taken(0, 2), occ.taken(2, 3)  # sorted by start, repeats allowed: the union counts
([(0, 8), (0, 8), (16, 24)], [(16, 24)])
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from trainplan.planner.offsets._min_tree import cover_nodes

_Ranges = tuple[list[int], list[int]]  # starts, ends of disjoint sorted ranges


class Occupancy:
    """Byte ranges placed over time-slot ranges; ``taken`` lists those overlapping a window."""

    def __init__(self, slots: int):
        self.leaves = 1 << (max(1, slots) - 1).bit_length()
        self.by_start: list[_Ranges | None] = [None] * (2 * self.leaves)
        self.covering: list[_Ranges | None] = [None] * (2 * self.leaves)

    def add(self, first: int, last: int, lo: int, hi: int) -> None:
        """Bytes ``[lo, hi)`` taken over slots ``[first, last)``."""
        covering, by_start = self.covering, self.by_start
        for node in self._cover(first, last):
            ranges = covering[node]
            if ranges is None:
                covering[node] = ([lo], [hi])
            else:
                _merge_into(ranges, lo, hi)
        node = first + self.leaves
        while node:
            ranges = by_start[node]
            if ranges is None:
                by_start[node] = ([lo], [hi])
            elif not _merge_into(ranges, lo, hi):
                break
            node >>= 1

    def taken(self, first: int, last: int) -> list[tuple[int, int]]:
        """The byte ranges overlapping slots ``[first, last)``, sorted by start; they may
        overlap each other (their union is what is taken)."""
        parts: list[tuple[int, int]] = []
        by_start, covering = self.by_start, self.covering
        for node in self._cover(first, last):
            ranges = by_start[node]
            if ranges is not None:
                parts.extend(zip(*ranges))
        node = first + self.leaves
        while node:
            ranges = covering[node]
            if ranges is not None:
                parts.extend(zip(*ranges))
            node >>= 1
        parts.sort()
        return parts

    def _cover(self, first: int, last: int) -> list[int]:
        """The tree nodes that exactly cover slots ``[first, last)``."""
        from_left, from_right = cover_nodes(first + self.leaves, last + self.leaves)
        return from_left + from_right


def _merge_into(ranges: _Ranges, lo: int, hi: int) -> bool:
    """Merge ``[lo, hi)`` into disjoint sorted ranges (touching ones join); False when they
    already held it."""
    starts, ends = ranges
    i = bisect_left(ends, lo)  # the first range that ends at or after lo
    if i == len(ends) or starts[i] > hi:
        starts.insert(i, lo)
        ends.insert(i, hi)
        return True
    if starts[i] <= lo and ends[i] >= hi:
        return False
    j = bisect_right(starts, hi, i)  # ranges i .. j-1 touch [lo, hi)
    new_lo = min(starts[i], lo)
    new_hi = max(ends[j - 1], hi)
    if j == i + 1:
        starts[i], ends[i] = new_lo, new_hi
    else:
        starts[i:j] = [new_lo]
        ends[i:j] = [new_hi]
    return True
