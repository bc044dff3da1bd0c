"""The fast greedy planners give exactly the offsets of straightforward reference loops.

The planners index their state (a segment tree of byte unions over time, minimum trees of
stack ends, free gaps by size class, sorted slot intervals) so that 10^5 buffers plan in
seconds (``experiments/bench_scaling.py``). The references below are the plain loops they
replace, kept here as the oracle: every live or placed buffer visited one by one. Random
problems are drawn to hit the corner cases: many equal sizes and equal intervals (ties),
alignments, fixed offsets, and few time steps (many buffers overlap).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from trainplan.planner.allocation import AllocationProblem, Buffer
from trainplan.planner.offsets import _stdsort
from trainplan.planner.offsets._common import align_up
from trainplan.planner.offsets._free_gaps import FreeGaps
from trainplan.planner.offsets._min_tree import MinTree
from trainplan.planner.offsets._occupancy import Occupancy
from trainplan.planner.offsets._place import place_best_fit
from trainplan.planner.offsets._stdsort import std_sort_order
from trainplan.planner.offsets.nntrainer import (
    _nntrainer_clash,
    _v1_offsets,
    _v3_offsets,
    _wgrad_slot_offsets,
)

SETTINGS = settings(max_examples=200, deadline=None)


@st.composite
def buffers(draw, max_n: int = 50, fixed: bool = False) -> list[Buffer]:
    """Up to ``max_n`` buffers over a few time steps, sizes from a short list (ties), random
    alignments and kinds; with ``fixed`` some have fixed offsets in disjoint 64-byte bands."""
    n = draw(st.integers(0, max_n))
    horizon = draw(st.integers(1, 20))
    sizes = draw(st.lists(st.integers(1, 48), min_size=1, max_size=4))
    out = []
    for i in range(n):
        start = draw(st.integers(0, horizon))
        offset = None
        if fixed and draw(st.integers(0, 5)) == 0:
            offset = 64 * draw(st.integers(0, 3)) + 64 * 4 * i
        out.append(Buffer(
            f"b{i}", start, start + draw(st.integers(1, 8)), draw(st.sampled_from(sizes)),
            draw(st.sampled_from([1, 1, 1, 2, 4, 8])), draw(st.sampled_from(["", "gradient"])),
            offset=offset,
        ))
    return out


# --- references: the loops the fast code replaces ------------------------------------------


def reference_place(bufs: list[Buffer], order: list[int], first_fit: bool) -> list[int]:
    """Fixed buffers where they must be, then each buffer in ``order``: the placed buffers
    alive with it, by offset; the smallest (or lowest) aligned hole from the bottom, else on top
    of the highest."""
    offsets, placed = [0] * len(bufs), []
    fixed = [i for i, b in enumerate(bufs) if b.offset is not None]
    for i in fixed + [i for i in order if bufs[i].offset is None]:
        b = bufs[i]
        if b.offset is not None:
            offsets[i] = b.offset
            placed.append(i)
            continue
        best, best_hole, bottom = None, None, 0
        for j in sorted(placed, key=lambda j: offsets[j]):
            if bufs[j].end <= b.start or bufs[j].start >= b.end:
                continue
            aligned = align_up(bottom, b.alignment)
            if aligned + b.size <= offsets[j] and (
                    best is None or (not first_fit and offsets[j] - bottom < best_hole)):
                best, best_hole = aligned, offsets[j] - bottom
            bottom = max(bottom, offsets[j] + bufs[j].size)
        offsets[i] = best if best is not None else align_up(bottom, b.alignment)
        placed.append(i)
    return offsets


def reference_v1(reqs: list[Buffer]) -> dict[str, int]:
    """NNTrainer V1: pop expired entries from the top, scan the whole stack from the top for
    an expired entry of the same size, else push."""
    stack, offsets = [], {}
    for i in std_sort_order([(b.start, b.end) for b in reqs]):
        b = reqs[i]
        while stack and stack[-1][2] <= b.start:
            stack.pop()
        for entry in reversed(stack):
            if entry[1] == b.size and entry[2] <= b.start and entry[0] % b.alignment == 0:
                entry[2] = b.end
                offsets[b.id] = entry[0]
                break
        else:
            off = align_up(stack[-1][0] + stack[-1][1], b.alignment) if stack else 0
            stack.append([off, b.size, b.end])
            offsets[b.id] = off
    return offsets


def reference_v3(reqs: list[Buffer]) -> dict[str, int]:
    """NNTrainer V3: drop all expired requests, walk the live ones by offset, first gap that
    holds the request, else on top."""
    live, offsets = [], {}
    for i in std_sort_order([(b.start, b.end) for b in reqs]):
        b = reqs[i]
        live = sorted((off, top, end) for off, top, end in live if end > b.start)
        off, bottom = None, 0
        for lo, hi, _ in live:
            if lo > bottom and align_up(bottom, b.alignment) + b.size <= lo:
                off = align_up(bottom, b.alignment)
                break
            bottom = hi
        if off is None:
            off = align_up(live[-1][1] if live else 0, b.alignment)
        live.append((off, off + b.size, b.end))
        offsets[b.id] = off
    return offsets


def reference_slots(wgrads: list[Buffer], base: int, nntrainer_test: bool) -> dict[str, int]:
    """NNTrainer V2's second phase: largest first, the first slot none of whose intervals
    clashes, else a new slot on top."""
    clash = _nntrainer_clash if nntrainer_test else (
        lambda iv, s, e: iv[0] < e and s < iv[1])
    slots, offsets = [], {}
    for i in std_sort_order([-b.size for b in wgrads]):
        b = wgrads[i]
        for off, size, intervals in slots:
            if size >= b.size and off % b.alignment == 0 and not any(
                    clash(iv, b.start, b.end) for iv in intervals):
                offsets[b.id] = off
                intervals.append((b.start, b.end))
                break
        else:
            off = align_up(slots[-1][0] + slots[-1][1] if slots else base, b.alignment)
            slots.append((off, b.size, [(b.start, b.end)]))
            offsets[b.id] = off
    return offsets


# --- the fast code against them -------------------------------------------------------------


@SETTINGS
@given(buffers(fixed=True), st.booleans(), st.randoms(use_true_random=False))
def test_best_fit_placement_matches_the_reference_loop(bufs, first_fit, rnd):
    AllocationProblem(tuple(bufs))  # fixed offsets drawn disjoint: the problem is valid
    order = list(range(len(bufs)))
    rnd.shuffle(order)
    assert place_best_fit(bufs, order, first_fit=first_fit) == reference_place(
        bufs, order, first_fit)


@SETTINGS
@given(buffers())
def test_nntrainer_v1_matches_the_full_stack_scan(bufs):
    assert _v1_offsets(bufs) == reference_v1(bufs)


@SETTINGS
@given(buffers())
def test_nntrainer_v3_matches_the_live_list_walk(bufs):
    assert _v3_offsets(bufs) == reference_v3(bufs)


@SETTINGS
@given(buffers(), st.integers(0, 100), st.booleans())
def test_nntrainer_v2_slots_match_the_interval_by_interval_test(bufs, base, nntrainer_test):
    assert _wgrad_slot_offsets(bufs, base, nntrainer_test) == reference_slots(
        bufs, base, nntrainer_test)


# --- the index structures against brute force ----------------------------------------------


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, 9), st.integers(1, 5), st.integers(0, 60),
                          st.integers(1, 12)), max_size=40),
       st.integers(0, 9), st.integers(1, 5))
def test_occupancy_gives_the_ranges_overlapping_a_window_sorted(ranges, first, width):
    slots = 14
    occupancy, taken = Occupancy(slots), set()
    last = min(first + width, slots)
    for a, w, lo, size in ranges:
        b = min(a + w, slots)
        occupancy.add(a, b, lo, lo + size)
        if a < last and first < b:
            taken |= set(range(lo, lo + size))
    parts = occupancy.taken(first, last)
    assert {x for lo, hi in parts for x in range(lo, hi)} == taken
    assert parts == sorted(parts)


@SETTINGS
@given(st.lists(st.integers(0, 30), max_size=60), st.integers(0, 30), st.integers(0, 70))
def test_min_tree_finds_the_rightmost_value_at_most_a_bound(values, bound, limit):
    tree = MinTree(len(values))
    for i, v in enumerate(values):
        tree.set(i, v)
    limit = min(limit, len(values))
    expected = max((i for i in range(limit) if values[i] <= bound), default=None)
    assert tree.rightmost_at_most(bound, limit=limit) == expected


@SETTINGS
@given(st.lists(st.integers(1, 40), max_size=30), st.data())
def test_free_gaps_first_fit_is_the_lowest_holding_gap(lengths, data):
    gaps, kept, lo = FreeGaps(), [], 0
    for length in lengths:  # disjoint gaps one byte apart, some removed again
        gaps.add(lo, lo + length)
        kept.append((lo, lo + length))
        lo += length + 1
    for gap in data.draw(st.lists(st.sampled_from(kept), unique=True)) if kept else []:
        gaps.remove(*gap)
        kept.remove(gap)
    size, alignment = data.draw(st.integers(1, 40)), data.draw(st.sampled_from([1, 2, 4, 8]))
    fits = [align_up(g, alignment) for g, h in kept if align_up(g, alignment) + size <= h]
    assert gaps.first_fit(size, alignment) == (fits[0] if fits else None)


def test_the_references_agree_with_the_planners_on_a_deep_stack():
    """Hundreds of equal sizes alive at once: the case the indexes exist for."""
    bufs = [Buffer(f"w{i}", 0, 1000, 64) for i in range(300)]
    bufs += [Buffer(f"a{i}", i, 600 - i, 32, kind="gradient") for i in range(300)]
    bufs += [Buffer(f"g{i}", 600 + i, 602 + i, 32, kind="gradient") for i in range(300)]
    assert _v1_offsets(bufs) == reference_v1(bufs)
    assert _v3_offsets(bufs) == reference_v3(bufs)
    assert _wgrad_slot_offsets(bufs, 7, False) == reference_slots(bufs, 7, False)
    order = sorted(range(len(bufs)), key=lambda i: -bufs[i].size)
    assert place_best_fit(bufs, order) == reference_place(bufs, order, False)


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 3)), max_size=300))
def test_std_sort_on_ranks_replays_the_same_steps_as_on_the_keys(keys):
    """``std_sort_order`` sorts the keys' ranks; the replay run on the tuples themselves (the
    g++ test in test_stdsort checks that one against libstdc++) leaves the same order."""
    items, n = list(range(len(keys))), len(keys)
    if n > 1:
        _stdsort._introsort_loop(items, keys, 0, n, 2 * (n.bit_length() - 1))
        _stdsort._final_insertion_sort(items, keys, 0, n)
    assert std_sort_order(keys) == items


@SETTINGS
@given(buffers(max_n=30))
def test_live_curve_without_gaps_is_the_step_by_step_sum(bufs):
    times, live = AllocationProblem(tuple(bufs)).live_curve()
    if not bufs:
        assert list(times) == [0] and list(live) == [0]
        return
    assert list(times) == sorted({b.start for b in bufs} | {b.end for b in bufs})
    assert list(live) == [sum(b.size for b in bufs if b.start <= t < b.end) for t in times]
