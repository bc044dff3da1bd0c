"""Perfect packings: allocation problems whose optimum equals their capacity and lower bound.

The generator simulates an allocator that keeps the whole arena ``[0, capacity)`` in use at every
time step. At time 0 the arena is cut into a few buffers. At each later step some live buffers
end; freed blocks that touch merge into one free region, and every free region is cut at random
points (multiples of ``granule``) into new buffers that start at that step. At the last step
every live buffer ends. Because freed neighbours merge before being re-cut, new buffers straddle
the boundaries of the old ones, so the packing interleaves in memory instead of following
recursive guillotine cuts (which greedy planners and canonical search solve too easily).

Every time step has exactly ``capacity`` bytes live, so ``lower_bound() == capacity``, and the
simulated offsets (kept in ``problem.meta["offsets"]``) are a plan of height ``capacity``: the
optimum is known. With the defaults (150-450 buffers, 128 granules, about n/5 live at once)
greedy_size lands 5-16 % above it and plain CP-SAT rarely closes the gap in 20 s
(``trainplan.experiments.bench_exact``). Fewer buffers live at once (``live`` of 8-16 with 300
buffers, ``DENSE``) make much harder instances: greedy lands 10-45 % above, and MiniMalloc fails
them (``trainplan.experiments.bench_minimalloc --perfect``).

>>> p = perfect_packing(40, capacity=4096, seed=1)
>>> len(p.buffers), p.capacity, p.lower_bound()
(40, 4096, 4096)
>>> max(p.meta["offsets"][b.id] + b.size for b in p.buffers)
4096
"""

from __future__ import annotations

import itertools

import numpy as np

from trainplan.planner.allocation import AllocationProblem, Buffer
from trainplan.planner.errors import InvalidProblem

_Live = tuple[int, int, int]  # (offset, size, start time) of a live simulated buffer

# The dense setting: few buffers live at once, each spanning more steps; MiniMalloc (C++)
# fits none of 20 such instances within 30 s (docs/BENCHMARKS.md).
DENSE = {"live": 10}


def perfect_packing(
    n: int,
    capacity: int = 1 << 20,
    seed: int = 0,
    *,
    granule: int | None = None,
    live: int | None = None,
    end_probability: float = 0.3,
) -> AllocationProblem:
    """Generate ``n`` buffers that tile ``[0, capacity)`` at every time step (see module doc).

    ``granule`` (default ``capacity // 128``) is the grid of cut points, so every size is a
    multiple of it; ``live`` (default ``n // 5`` within 16..64, which keeps about 15-25 time
    steps) is the number of buffers live at once that the simulation steers towards;
    ``end_probability`` is the chance a live buffer ends at each step.
    """
    granule = granule or max(1, capacity // 128)
    live = live or min(64, max(16, n // 5))
    if n < 1 or capacity < granule or capacity % granule:
        raise InvalidProblem(
            f"perfect_packing needs n >= 1 and capacity a positive multiple of granule "
            f"(got n={n}, capacity={capacity}, granule={granule})"
        )
    rng = np.random.default_rng(seed)
    units = capacity // granule
    alive = [(o, s, 0) for o, s in _cut(rng, 0, units, min(n, live, units))]
    done: list[tuple[int, int, int, int]] = []  # (offset, size, start, end) in granules
    created, t = len(alive), 0
    while created < n:
        t += 1
        alive, born = _step(rng, alive, t, n - created, end_probability, live, done)
        created += born
    done.extend((o, s, start, t + 1) for o, s, start in alive)
    return _to_problem(done, granule, capacity, seed)


def _step(
    rng: np.random.Generator,
    live: list[_Live],
    t: int,
    budget: int,
    end_probability: float,
    target: int,
    done: list[tuple[int, int, int, int]],
) -> tuple[list[_Live], int]:
    """End some live buffers at ``t``, merge touching freed blocks, re-cut each free region."""
    ending = rng.random(len(live)) < end_probability
    if not ending.any():
        ending[rng.integers(len(live))] = True
    regions = _free_regions([b for b, e in zip(live, ending) if e])
    if len(regions) > budget:  # too few buffers left to refill every region: free one only
        ending[:] = False
        ending[rng.integers(len(live))] = True
        regions = _free_regions([b for b, e in zip(live, ending) if e])
    done.extend((o, s, start, t) for (o, s, start), e in zip(live, ending) if e)
    kept = [b for b, e in zip(live, ending) if not e]
    # one piece per region, plus extra pieces that steer the live count towards the target
    extra = min(budget - len(regions), max(0, target - len(kept) - len(regions)))
    extra = min(budget - len(regions), max(0, extra + int(rng.integers(-1, 2))))
    share = rng.multinomial(extra, np.full(len(regions), 1 / len(regions)))
    born = 0
    for (lo, hi), more in zip(regions, share):
        pieces = 1 + min(int(more), hi - lo - 1)
        born += pieces
        kept.extend((o, s, t) for o, s in _cut(rng, lo, hi, pieces))
    return sorted(kept), born


def _free_regions(freed: list[_Live]) -> list[tuple[int, int]]:
    """Merge freed blocks that touch into maximal free regions ``[lo, hi)``."""
    regions: list[list[int]] = []
    for o, s, _ in sorted(freed):
        if regions and regions[-1][1] == o:
            regions[-1][1] = o + s
        else:
            regions.append([o, o + s])
    return [(lo, hi) for lo, hi in regions]


def _cut(rng: np.random.Generator, lo: int, hi: int, pieces: int) -> list[tuple[int, int]]:
    """Cut ``[lo, hi)`` at ``pieces - 1`` distinct random interior points: (offset, size) list."""
    inner = rng.choice(np.arange(lo + 1, hi), size=pieces - 1, replace=False) if pieces > 1 else []
    points = [lo, *sorted(int(p) for p in inner), hi]
    return [(a, b - a) for a, b in itertools.pairwise(points)]


def _to_problem(
    done: list[tuple[int, int, int, int]], granule: int, capacity: int, seed: int
) -> AllocationProblem:
    """Scale granules to bytes, name buffers by birth order, keep the generating offsets."""
    done.sort(key=lambda d: (d[2], d[0]))
    buffers = tuple(
        Buffer(f"b{i}", start, end, size * granule) for i, (_, size, start, end) in enumerate(done)
    )
    offsets = {f"b{i}": off * granule for i, (off, *_rest) in enumerate(done)}
    meta = {"offsets": offsets, "generator": "perfect_packing", "seed": seed}
    return AllocationProblem(buffers, capacity, f"perfect-{len(buffers)}-s{seed}", meta)
