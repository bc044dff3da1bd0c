"""Free byte ranges sorted by where they start, grouped by size class: the lowest one that
holds a request (first fit) without walking the ranges below it.

NNTrainer V3 takes the lowest gap between live requests that holds the new one. Walking the
live list costs O(live) per request; here a gap of length L sits in class floor(log2 L), each
class a sorted list of starts, so a query looks at the lowest gaps of the classes that may hold
the request and stops in each at the first that does (or above the best found so far).

>>> gaps = FreeGaps()
>>> gaps.add(0, 3); gaps.add(10, 30); gaps.add(40, 48)
>>> gaps.first_fit(8, 1), gaps.first_fit(8, 16), gaps.first_fit(30, 1)
(10, 16, None)
>>> gaps.remove(10, 30); gaps.first_fit(8, 1)
40
"""

from __future__ import annotations

from bisect import bisect_left, insort


class FreeGaps:
    """Disjoint free ranges ``[lo, hi)``; ``first_fit`` finds the lowest that holds a size."""

    def __init__(self):
        self.end: dict[int, int] = {}  # start -> end
        self.classes: dict[int, list[int]] = {}  # floor(log2(length)) -> starts, ascending

    def add(self, lo: int, hi: int) -> None:
        self.end[lo] = hi
        insort(self.classes.setdefault((hi - lo).bit_length() - 1, []), lo)

    def remove(self, lo: int, hi: int) -> None:
        del self.end[lo]
        size_class = (hi - lo).bit_length() - 1
        starts = self.classes[size_class]
        del starts[bisect_left(starts, lo)]
        if not starts:
            del self.classes[size_class]

    def first_fit(self, size: int, alignment: int) -> int | None:
        """The aligned offset in the lowest range that holds ``size`` bytes, or None."""
        best_lo, best = None, None
        for size_class, starts in self.classes.items():
            if (2 << size_class) <= size:  # every range in the class is shorter than size
                continue
            for lo in starts:
                if best_lo is not None and lo >= best_lo:
                    break
                off = -(-lo // alignment) * alignment
                if off + size <= self.end[lo]:
                    best_lo, best = lo, off
                    break
        return best
