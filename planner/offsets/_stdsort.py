"""GNU libstdc++'s ``std::sort`` (introsort), reproduced so that ties fall where NNTrainer's do.

NNTrainer sorts its requests with ``std::sort``, which is not stable: requests with equal keys
(e.g. a layer's weight and bias gradients, same interval) come out in an order fixed by the
algorithm, and that order decides offsets. Python's stable sort would give other offsets, so
this module replays libstdc++'s algorithm step for step (GCC >= 4.9, unchanged since):

- introsort loop while a range holds more than 16 elements: median of (second, middle, last)
  moved to the front as pivot, unguarded Hoare partition of the rest, recurse on the right
  part, loop on the left part; after ``2 * floor(log2 n)`` levels, heapsort the range instead;
- a final insertion sort: guarded on the first 16 elements, unguarded on the rest.

Builds with clang's libc++ (Android, macOS) sort differently; NNTrainer's Linux builds use GCC.

>>> std_sort_order([(2, 5), (1, 3), (2, 5), (1, 3)])
[1, 3, 0, 2]
"""

from __future__ import annotations

from collections.abc import Sequence

_THRESHOLD = 16


def std_sort_order(keys: Sequence) -> list[int]:
    """Indices of ``keys`` in the order ``std::sort`` with ``a < b`` on the keys leaves them."""
    distinct = set(keys)
    if len(distinct) == len(keys):  # no ties: every correct sort gives the same order
        return sorted(range(len(keys)), key=keys.__getitem__)
    # the replay only compares keys, so their ranks (plain ints, cheaper to compare than
    # tuples) give the same steps and the same order
    rank = {key: r for r, key in enumerate(sorted(distinct))}
    keys = [rank[key] for key in keys]
    items = list(range(len(keys)))
    n = len(items)
    if n > 1:
        _introsort_loop(items, keys, 0, n, 2 * (n.bit_length() - 1))
        _final_insertion_sort(items, keys, 0, n)
    return items


def _introsort_loop(v: list[int], k: Sequence, first: int, last: int, depth: int) -> None:
    while last - first > _THRESHOLD:
        if depth == 0:
            _heap_sort(v, k, first, last)
            return
        depth -= 1
        cut = _partition_pivot(v, k, first, last)
        _introsort_loop(v, k, cut, last, depth)
        last = cut


def _partition_pivot(v: list[int], k: Sequence, first: int, last: int) -> int:
    mid = first + (last - first) // 2
    _move_median_to_first(v, k, first, first + 1, mid, last - 1)
    return _unguarded_partition(v, k, first + 1, last, first)


def _move_median_to_first(v: list[int], k: Sequence, res: int, a: int, b: int, c: int) -> None:
    ka, kb, kc = k[v[a]], k[v[b]], k[v[c]]
    if ka < kb:
        pick = b if kb < kc else (c if ka < kc else a)
    else:
        pick = a if ka < kc else (c if kb < kc else b)
    v[res], v[pick] = v[pick], v[res]


def _unguarded_partition(v: list[int], k: Sequence, first: int, last: int, pivot: int) -> int:
    kp = k[v[pivot]]  # the pivot stays at ``pivot`` (outside [first, last)) throughout
    while True:
        while k[v[first]] < kp:
            first += 1
        last -= 1
        while kp < k[v[last]]:
            last -= 1
        if not first < last:
            return first
        v[first], v[last] = v[last], v[first]
        first += 1


def _final_insertion_sort(v: list[int], k: Sequence, first: int, last: int) -> None:
    if last - first > _THRESHOLD:
        _insertion_sort(v, k, first, first + _THRESHOLD)
        for i in range(first + _THRESHOLD, last):
            _unguarded_linear_insert(v, k, i)
    else:
        _insertion_sort(v, k, first, last)


def _insertion_sort(v: list[int], k: Sequence, first: int, last: int) -> None:
    for i in range(first + 1, last):
        if k[v[i]] < k[v[first]]:
            v[first : i + 1] = [v[i]] + v[first:i]  # move_backward then put at the front
        else:
            _unguarded_linear_insert(v, k, i)


def _unguarded_linear_insert(v: list[int], k: Sequence, last: int) -> None:
    val = v[last]
    kval = k[val]
    nxt = last - 1
    while kval < k[v[nxt]]:
        v[last] = v[nxt]
        last = nxt
        nxt -= 1
    v[last] = val


def _heap_sort(v: list[int], k: Sequence, first: int, last: int) -> None:
    """``std::__partial_sort(first, last, last)``: make_heap, then sort_heap."""
    n = last - first
    if n >= 2:
        parent = (n - 2) // 2
        while True:
            _adjust_heap(v, k, first, parent, n, v[first + parent])
            if parent == 0:
                break
            parent -= 1
    while last - first > 1:
        last -= 1
        val = v[last]
        v[last] = v[first]
        _adjust_heap(v, k, first, 0, last - first, val)


def _adjust_heap(v: list[int], k: Sequence, first: int, hole: int, n: int, val: int) -> None:
    top = hole
    child = hole
    while child < (n - 1) // 2:
        child = 2 * (child + 1)
        if k[v[first + child]] < k[v[first + child - 1]]:
            child -= 1
        v[first + hole] = v[first + child]
        hole = child
    if n % 2 == 0 and child == (n - 2) // 2:
        child = 2 * (child + 1)
        v[first + hole] = v[first + child - 1]
        hole = child - 1
    parent = (hole - 1) // 2  # push_heap back up towards ``top``
    while hole > top and k[v[first + parent]] < k[val]:
        v[first + hole] = v[first + parent]
        hole = parent
        parent = (hole - 1) // 2
    v[first + hole] = val
