"""The ``optimal`` swap planner and the stall model every swap planner is measured by.

Oracles: closed forms for single transfers; a flow LP (CP-SAT) for the stall of random job
sets; brute force over every gap choice on tiny problems; validate_swap, and the heuristics
(never better than ``optimal``) on random problems and zoo graphs.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import replace

import pytest
from ortools.sat.python import cp_model

from trainplan.planner.build import build_training_graph
from trainplan.planner.errors import TrainplanError
from trainplan.planner.swap import graph_buffers, plan_swap
from trainplan.planner.swap.belady import belady_gaps
from trainplan.planner.swap.lookahead import lookahead_gaps
from trainplan.planner.swap.optimal import plan_optimal
from trainplan.planner.swap.schedule import Gap, build_schedule
from trainplan.planner.swap.stall_model import (
    UFS_PHONE,
    Job,
    StorageModel,
    boundary_phase,
    compute_phase,
    edf,
    estimate_stall,
    min_stall,
    phase_capacities,
)
from trainplan.planner.swap.uses import BufferUses, Use
from trainplan.planner.swap.working_set import min_budget
from trainplan.planner.validate_swap import validate_swap
from trainplan.planner.zoo import get_model

# 1 byte per microsecond, no latency: every transfer a whole number of microseconds, so the
# model's integer time is exact and its optimum can be compared with brute force exactly
MICRO = StorageModel(1e6, 1e6, 0.0, 0.0, shared_channel=False)
SD_CARD = StorageModel(45.5e6, 24.5e6, 5.1e-6, 18.5e-6, shared_channel=True)  # POET's a72
MS = 1e-3


def weight(name: str, nbytes: int, uses: list[tuple[int, bool, bool]]) -> BufferUses:
    return BufferUses(name, nbytes, "weight", 0, 0, tuple(Use(*u) for u in uses), True)


def activation(name: str, nbytes: int, uses: list[tuple[int, bool, bool]]) -> BufferUses:
    eos = [u[0] for u in uses]
    return BufferUses(name, nbytes, "activation", eos[0], eos[-1] + 1,
                      tuple(Use(*u) for u in uses), False)


def moved(schedule) -> int:
    return schedule.bytes_read + schedule.bytes_written


# --- the stall model ------------------------------------------------------------------------

@pytest.mark.parametrize("start", range(10))
def test_prefetch_started_k_eos_early_stalls_by_what_their_compute_cannot_hide(start):
    steps = [0.5 * MS * (e + 1) for e in range(10)]
    bufs = {"w": weight("w", 5000, [(9, True, False)])}  # read-only: no write at the end
    gaps = [Gap("w", -1, 9, start), Gap("w", 9, 10, 10)]
    schedule = build_schedule("t", bufs, gaps, 10, 10**6)
    expected = max(0.0, 5000e-6 - sum(steps[start:9]))
    assert estimate_stall(schedule, steps, MICRO) == pytest.approx(expected, abs=1e-12)
    assert schedule.bytes_written == 0 and schedule.bytes_read == 5000


def test_latency_and_bandwidth_make_the_transfer_time():
    storage = StorageModel(2e6, 1e6, 1e-3, 2e-3)
    bufs = {"w": weight("w", 4000, [(0, True, False)])}
    schedule = build_schedule("t", bufs, [Gap("w", -1, 0, 0), Gap("w", 0, 3, 3)], 3, 10**6)
    assert estimate_stall(schedule, [MS] * 3, storage) == pytest.approx(1e-3 + 4000 / 2e6)


def test_a_read_and_a_write_in_the_same_slots_add_up_only_on_a_shared_channel():
    caps = phase_capacities([MS] * 4)
    jobs = [Job("read", compute_phase(1), boundary_phase(3), 3 * MS),
            Job("write", compute_phase(1), compute_phase(2), 3 * MS)]
    assert min_stall(jobs, caps, shared=False) == pytest.approx(1 * MS)  # 3 ms each in 2 ms
    assert min_stall(jobs, caps, shared=True) == pytest.approx(4 * MS)  # 6 ms in 2 ms


def test_a_weight_changed_at_the_last_eo_stalls_for_its_whole_write():
    bufs = {"w": weight("w", 2000, [(0, True, False), (3, True, True)])}
    gaps = [Gap("w", -1, 0, 0), Gap("w", 3, 4, 4)]
    schedule = build_schedule("t", bufs, gaps, 4, 10**6)
    assert schedule.bytes_written == 2000
    assert estimate_stall(schedule, [MS] * 4, MICRO) == pytest.approx(2000e-6 + 2000e-6)


def _lp_stall(jobs: list[Job], caps: list[int], shared: bool) -> int:
    """The least stall as a flow LP: each job's I/O split over the phases of its window,
    stall per phase = load beyond capacity on a channel."""
    m = cp_model.CpModel()
    big = sum(j.amount for j in jobs)
    load: dict[tuple[int, str], list] = {}
    for i, j in enumerate(jobs):
        phases = range(j.release, j.deadline + 1)
        xs = [m.new_int_var(0, j.amount, f"x{i}_{k}") for k in phases]
        m.add(sum(xs) == j.amount)
        for k, x in zip(phases, xs):
            load.setdefault((k, "io" if shared else j.channel), []).append(x)
    stall = {k: m.new_int_var(0, big, f"s{k}") for k in range(len(caps))}
    for (k, _), xs in load.items():
        m.add(stall[k] >= sum(xs) - caps[k])
    m.minimize(sum(stall.values()))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = 10
    solver.parameters.num_workers = 1
    assert solver.solve(m) == cp_model.OPTIMAL
    return round(solver.objective_value)


@pytest.mark.parametrize("seed", range(60))
def test_earliest_deadline_first_finds_the_least_stall(seed):
    rng = random.Random(seed)
    n_eo = rng.randint(2, 10)
    caps = [0] * (2 * n_eo + 1)
    for e in range(n_eo):
        caps[compute_phase(e)] = rng.randint(0, 10)
    jobs = []
    for _ in range(rng.randint(1, 12)):
        release = rng.randint(0, 2 * n_eo)
        deadline = rng.randint(release, 2 * n_eo)
        jobs.append(Job(rng.choice(["read", "write"]), release, deadline, rng.randint(1, 25)))
    for shared in (False, True):
        assert edf(jobs, caps, shared)[0] == _lp_stall(jobs, caps, shared)


# --- optimal against brute force ------------------------------------------------------------

def _choices(b: BufferUses, n_eo: int) -> list[list[Gap]]:
    """Every valid set of gaps of one buffer."""
    eos = b.use_eos
    per_gap = [[None] + [Gap(b.tensor, a, z, p) for p in range(a + 2, z + 1)]
               for a, z in itertools.pairwise(eos) if z - a >= 2]
    if b.persistent:  # pinned all iteration, or it starts and ends the iteration in storage
        per_gap.append([[Gap(b.tensor, -1, eos[0], p), Gap(b.tensor, eos[-1], n_eo, n_eo)]
                        for p in range(eos[0] + 1)])
    out = [[]] if b.persistent else []
    for combo in itertools.product(*per_gap):
        gaps = []
        for g in combo:
            gaps += g if isinstance(g, list) else [g] if g else []
        out.append(gaps)
    return out


def _brute_force(bufs, n_eo, budget, steps, storage) -> tuple[float, int]:
    best = None
    for combo in itertools.product(*(_choices(b, n_eo) for b in bufs.values())):
        s = build_schedule("bf", bufs, [g for gaps in combo for g in gaps], n_eo, budget)
        if s.peak_resident_bytes <= budget:
            key = (round(estimate_stall(s, steps, storage), 9), moved(s))
            best = key if best is None or key < best else best
    return best


def _tiny(seed: int) -> tuple[dict[str, BufferUses], int]:
    rng = random.Random(seed)
    n_eo = rng.randint(5, 7)
    bufs = {"w": weight("w", rng.choice([1000, 2000]),
                        sorted({(rng.randrange(n_eo), True, rng.random() < 0.5)
                                for _ in range(2)}, key=lambda u: u[0]))}
    for name in ("a", "b"):
        start = rng.randrange(n_eo - 2)
        eos = sorted({start, *rng.sample(range(start + 1, n_eo), rng.randint(1, 2))})
        bufs[name] = activation(name, rng.choice([1000, 2000, 3000]),
                                [(eos[0], False, True)]
                                + [(e, True, rng.random() < 0.3) for e in eos[1:]])
    return _dedupe(bufs), n_eo


def _dedupe(bufs):
    """Drop duplicate EOs (a buffer has one Use per EO)."""
    out = {}
    for t, b in bufs.items():
        seen, uses = set(), []
        for u in b.uses:
            if u.eo not in seen:
                seen.add(u.eo)
                uses.append(u)
        out[t] = replace(b, uses=tuple(uses))
    return out


@pytest.mark.parametrize("seed", range(8))
def test_optimal_matches_brute_force_on_tiny_problems(seed):
    bufs, n_eo = _tiny(seed)
    storage = replace(MICRO, shared_channel=seed % 2 == 1)
    steps = [1.5 * MS] * n_eo
    low = min_budget(bufs, n_eo)
    peak = build_schedule("none", bufs, [], n_eo, 0).peak_resident_bytes
    for budget in sorted({low, (low + peak) // 2}):
        s = plan_optimal(bufs, n_eo, budget, step_seconds=steps, storage=storage, time_limit=5)
        assert validate_swap(bufs, s) == []
        assert s.options["proven"], s.options
        assert (round(s.options["estimated_stall_seconds"], 9), moved(s)) == \
            _brute_force(bufs, n_eo, budget, steps, storage)


# --- optimal against the heuristics ---------------------------------------------------------

def _random_problem(seed: int) -> tuple[dict[str, BufferUses], int]:
    """5-15 buffers over 10-30 EOs: weights read and sometimes updated, activations written
    first and read (sometimes updated) later."""
    rng = random.Random(seed)
    n_eo, bufs = rng.randint(10, 30), {}
    for i in range(rng.randint(5, 15)):
        size = rng.choice([500, 1000, 2000, 4000])
        if rng.random() < 0.3:
            eos = sorted(rng.sample(range(n_eo), rng.randint(1, 3)))
            bufs[f"w{i}"] = weight(f"w{i}", size, [(e, True, rng.random() < 0.4) for e in eos])
        else:
            start = rng.randrange(n_eo - 1)
            eos = sorted({start, *rng.sample(range(start + 1, n_eo),
                                             min(rng.randint(1, 3), n_eo - start - 1))})
            bufs[f"a{i}"] = activation(f"a{i}", size, [(eos[0], False, True)]
                                       + [(e, True, rng.random() < 0.2) for e in eos[1:]])
    return bufs, n_eo


def _heuristics(bufs, n_eo, budget) -> dict[str, object]:
    """The heuristics' schedules that fit ``budget``."""
    out = {}
    makers = {"lookahead": lambda: lookahead_gaps(bufs, n_eo, 1),
              "belady": lambda: belady_gaps(bufs, n_eo, budget)}
    for name, make in makers.items():
        try:
            s = build_schedule(name, bufs, make(), n_eo, budget)
        except (TrainplanError, AssertionError):  # a heuristic's failure: its own tests' business
            continue
        if s.peak_resident_bytes <= budget:
            out[name] = s
    return out


def _check_never_worse(bufs, n_eo, budget, steps, storage, time_limit):
    s = plan_optimal(bufs, n_eo, budget, step_seconds=steps, storage=storage,
                     time_limit=time_limit)
    assert validate_swap(bufs, s) == []
    assert s.resident_curve().max(initial=0) <= budget
    stall, o = estimate_stall(s, steps, storage), s.options
    assert stall == pytest.approx(o["estimated_stall_seconds"], abs=1e-9)
    if not o["restricted"] and o["status"] == "OPTIMAL":  # the model prices stall as estimated
        assert o["proven"]
        assert o["model_stall_seconds"] <= stall + 1e-9
        assert o["model_stall_seconds"] >= stall - o["rounding_slack_seconds"]
    for name, h in _heuristics(bufs, n_eo, budget).items():
        other = estimate_stall(h, steps, storage)
        assert stall <= other + 1e-9, (name, stall, other)
        if stall >= other - 1e-9:  # a tie on stall: fewer bytes moved
            assert moved(s) <= moved(h), name
    return s


@pytest.mark.parametrize("seed", range(12))
def test_optimal_never_stalls_more_than_the_heuristics_on_random_problems(seed):
    bufs, n_eo = _random_problem(seed)
    storage = replace(MICRO, shared_channel=seed % 2 == 1)
    low = min_budget(bufs, n_eo)
    peak = build_schedule("none", bufs, [], n_eo, 0).peak_resident_bytes
    for budget in sorted({low, low + (peak - low) // 3, peak}):
        s = _check_never_worse(bufs, n_eo, budget, [MS] * n_eo, storage, time_limit=3)
        if budget == peak:
            assert moved(s) == 0  # no need to swap, so nothing moves


@pytest.mark.parametrize("name, storage, step", [("mlp", SD_CARD, MS), ("lenet5", SD_CARD, MS),
                                                  ("lstm", UFS_PHONE, 0.1 * MS)])
def test_optimal_never_stalls_more_than_the_heuristics_on_zoo_graphs(name, storage, step):
    bufs, n_eo = graph_buffers(build_training_graph(get_model(name, batch=32)))
    low = min_budget(bufs, n_eo)
    peak = build_schedule("none", bufs, [], n_eo, 0).peak_resident_bytes
    for budget in (low, low + (peak - low) // 4):
        s = _check_never_worse(bufs, n_eo, budget, [step] * n_eo, storage, time_limit=3)
        assert {"status", "best_bound_seconds", "gap", "estimated_stall_seconds"} <= \
            set(s.options)


def test_registry_runs_optimal_with_its_options():
    bufs, n_eo = _random_problem(3)
    budget = min_budget(bufs, n_eo)
    s = plan_swap(bufs, n_eo, budget, "optimal", storage=MICRO, step_seconds=[MS] * n_eo,
                  time_limit=2, seed=1, workers=1)
    assert s.planner == "optimal" and validate_swap(bufs, s) == []


@pytest.mark.slow
def test_report_resnet18_cifar_at_half_the_lower_bound(capsys):
    """Stall of every planner on resnet18_cifar, batch 32, budget = 50% of the no-swap peak
    (the max-live lower bound of offset planning), UFS phone, 1 ms per EO."""
    bufs, n_eo = graph_buffers(build_training_graph(get_model("resnet18_cifar", batch=32)))
    budget = build_schedule("none", bufs, [], n_eo, 0).peak_resident_bytes // 2
    s = _check_never_worse(bufs, n_eo, budget, None, None, time_limit=10)
    with capsys.disabled():
        for name, h in _heuristics(bufs, n_eo, budget).items():
            print(f"\n{name}: stall {estimate_stall(h) * 1e3:.3f} ms, {moved(h) / 1e6:.1f} MB")
        o = s.options
        print(f"optimal: stall {o['estimated_stall_seconds'] * 1e3:.3f} ms, "
              f"{moved(s) / 1e6:.1f} MB, {o['status']}, bound {o['best_bound_seconds'] * 1e3:.3f}"
              f" ms, gap {o['gap']:.3f}, restricted {o['restricted']}, "
              f"{o['variables']} variables")
