"""A fixed-capacity array with a minimum tree: the rightmost entry at most a value, in O(log n).

NNTrainer V1 looks, among the stack entries of one size, for the highest one that has expired
(end <= now). Scanning them is quadratic when thousands of entries share a size and stay live
(a deep network's weights); this tree answers the same question in logarithmic time.

>>> ends = MinTree(5)
>>> for i, end in enumerate([7, 3, 9, 2]):
...     ends.set(i, end)
>>> ends.rightmost_at_most(3), ends.rightmost_at_most(3, limit=3), ends.rightmost_at_most(1)
(3, 1, None)
"""

from __future__ import annotations

import math


class MinTree:
    """Values at indices ``0 .. capacity-1`` (unset ones are +inf) and their minima."""

    def __init__(self, capacity: int):
        self.leaves = 1 << (max(1, capacity) - 1).bit_length()
        self.tree = [math.inf] * (2 * self.leaves)

    def set(self, index: int, value: float) -> None:
        """Store ``value`` at ``index`` (``math.inf`` clears it)."""
        tree = self.tree
        node = index + self.leaves
        tree[node] = value
        node >>= 1
        while node:
            low = min(tree[2 * node], tree[2 * node + 1])
            if tree[node] == low:
                break
            tree[node] = low
            node >>= 1

    def rightmost_at_most(self, bound: float, limit: int | None = None) -> int | None:
        """The highest index below ``limit`` (default: all) whose value is <= ``bound``."""
        tree, leaves = self.tree, self.leaves
        if tree[1] > bound:
            return None
        from_left, from_right = cover_nodes(leaves, leaves + (leaves if limit is None else limit))
        for node in from_right + from_left[::-1]:
            if tree[node] <= bound:
                while node < leaves:
                    node = 2 * node + 1 if tree[2 * node + 1] <= bound else 2 * node
                return node - leaves
        return None


def cover_nodes(lo: int, hi: int) -> tuple[list[int], list[int]]:
    """The nodes of a bottom-up binary tree (leaves from index ``leaves``) that exactly cover
    leaf indices ``[lo, hi)``: those met from the left, left to right, and those met from the
    right, right to left."""
    from_left, from_right = [], []
    while lo < hi:
        if lo & 1:
            from_left.append(lo)
            lo += 1
        if hi & 1:
            hi -= 1
            from_right.append(hi)
        lo >>= 1
        hi >>= 1
    return from_left, from_right
