"""Which bytes are taken during a time window: a segment tree over time of merged byte ranges.

Best-fit placement asks, for each new buffer, for the holes among the byte ranges of every
placed buffer whose lifetime overlaps its own. Only the union of those ranges matters (a hole
is a gap in it), and in training graphs that union is a few segments even when thousands of
buffers overlap (weights live throughout, activations nest). So instead of visiting the
overlapping buffers, the tree keeps unions:

- time is cut into elementary slots between consecutive start/end times; each placed range is
  stored at the O(log m) tree nodes that exactly cover its slots (``stored``), and merged into
  the union of every node above them (``below``: all ranges stored in the node's subtree);
- a window's taken bytes are the ``below`` unions of the nodes that exactly cover it plus the
  ``stored`` unions of the nodes on the two root paths of its end slots (they contain a slot of
  the window, so whatever they store overlaps it), and nothing else overlaps it.

Adding a range stops climbing as soon as a node's union already holds it (every ancestor's
union contains the node's). Both operations cost O(log m) list operations plus the number of
segments read, instead of the number of buffers overlapping.

>>> occ = Occupancy(3)  # three time slots
>>> occ.add(0, 1, 0, 8); occ.add(1, 3, 16, 24)  # bytes [0,8) over slot 0, [16,24) over 1..2
>>> occ.taken(0, 2), occ.taken(2, 3)  # sorted by start; their union is what is taken
([(0, 8), (16, 24)], [(16, 24)])
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right


class Occupancy:
    """Byte ranges placed over time-slot ranges; ``taken`` merges those overlapping a window."""

    def __init__(self, slots: int):
        self.leaves = 1 << (max(1, slots) - 1).bit_length()
        # per tree node: (starts, ends) of disjoint sorted ranges, None while empty
        self.stored: list[tuple[list[int], list[int]] | None] = [None] * (2 * self.leaves)
        self.below: list[tuple[list[int], list[int]] | None] = [None] * (2 * self.leaves)

    def add(self, first: int, last: int, lo: int, hi: int) -> None:
        """Bytes ``[lo, hi)`` taken over slots ``[first, last)``."""
        stored, below = self.stored, self.below
        for node in self._cover(first, last):
            ranges = stored[node]
            if ranges is None:
                stored[node] = ([lo], [hi])
            else:
                _merge_into(ranges, lo, hi)
            while node:
                ranges = below[node]
                if ranges is None:
                    below[node] = ([lo], [hi])
                elif not _merge_into(ranges, lo, hi):
                    break
                node >>= 1

    def taken(self, first: int, last: int) -> list[tuple[int, int]]:
        """The byte ranges overlapping slots ``[first, last)``, sorted; they may overlap each
        other (their union is what is taken)."""
        parts: list[tuple[int, int]] = []
        below, stored, leaves = self.below, self.stored, self.leaves
        for node in self._cover(first, last):
            ranges = below[node]
            if ranges is not None:
                parts.extend(zip(*ranges))
        # the root paths of both end slots, once each where they join, skipping the nodes
        # inside the window (their ranges are in the unions just read)
        left, right, height = first + leaves, last - 1 + leaves, 0
        while left:
            ranges = stored[left]
            if ranges is not None:
                lo = (left << height) - leaves
                if lo < first or lo + (1 << height) > last:
                    parts.extend(zip(*ranges))
            if right != left:
                ranges = stored[right]
                if ranges is not None:
                    lo = (right << height) - leaves
                    if lo < first or lo + (1 << height) > last:
                        parts.extend(zip(*ranges))
            left >>= 1
            right >>= 1
            height += 1
        parts.sort()
        return parts

    def _cover(self, first: int, last: int) -> list[int]:
        """The tree nodes that exactly cover slots ``[first, last)``."""
        nodes, lo, hi = [], first + self.leaves, last + self.leaves
        while lo < hi:
            if lo & 1:
                nodes.append(lo)
                lo += 1
            if hi & 1:
                hi -= 1
                nodes.append(hi)
            lo >>= 1
            hi >>= 1
        return nodes


def _merge_into(ranges: tuple[list[int], list[int]], lo: int, hi: int) -> bool:
    """Merge ``[lo, hi)`` into disjoint sorted ranges (touching ones join); False when they
    already held it."""
    starts, ends = ranges
    i = bisect_left(ends, lo)
    if i < len(ends) and starts[i] <= lo and ends[i] >= hi:
        return False
    j = bisect_right(starts, hi, i)
    if i < j:
        new_lo, new_hi = min(lo, starts[i]), max(hi, ends[j - 1])
        starts[i:j] = [new_lo]
        ends[i:j] = [new_hi]
    else:
        starts.insert(i, lo)
        ends.insert(i, hi)
    return True
