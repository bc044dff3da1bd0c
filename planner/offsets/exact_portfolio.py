"""A portfolio on both cores for one question: does a plan of height ``H`` exist?

How long one complete search needs on a tight instance is heavy-tailed: it depends on the
order in which buffers are tried far more than on the instance (MiniMalloc's own round robin
over three orders exists for that reason). So the question goes to several strategies at once,
each restarted in *slices* whose budget doubles every round:

* **Time windows first.** Where no buffer crosses from one section to the next the problem
  splits into independent windows (``exact_layout`` cut points); each is decided on its own,
  and one window without a plan settles the whole question.
* **The search** (``exact_search.Restarts``, main thread): canonical plans, cross-section
  inference, dominance, cut points and a memo, restarted under MiniMalloc's preorders and
  randomised ones.
* **CP-SAT slices** (``exact_clique``, a second thread; CP-SAT releases the interpreter lock):
  the clique model under a fixed bottom-left search in the same three orders and three
  randomly perturbed ones, with clause learning, then CP-SAT's own search, each bounded by
  CP-SAT's deterministic time.

Whichever settles the question first (a plan, or a proof that none exists) stops the other.
With ``deterministic=True`` the two advance in lockstep rounds of fixed work (nodes for the
search, deterministic time for CP-SAT); after each round the search's answer wins over
CP-SAT's, so the answer depends on the seed and the budget only, not on the machine's speed or
load (the wall-clock deadline stays as a guard, and ``Outcome.cut_by_clock`` says when it
fired). With ``workers=1`` the slices alternate on one core.

>>> from trainplan.planner.allocation import AllocationProblem, Buffer
>>> from trainplan.planner.offsets.exact_common import scale
>>> s = scale(AllocationProblem((Buffer("a", 0, 2, 4), Buffer("b", 1, 3, 4),
...                              Buffer("c", 2, 4, 8), Buffer("d", 5, 6, 4))))
>>> out = decide_height(s, 3, deadline=float("inf"))
>>> out.result, out.windows, s.height(out.offsets)
('found', 2, 3)
>>> decide_height(s, 2, deadline=float("inf")).result
'exhausted'
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace

import numpy as np

from trainplan.planner.allocation import AllocationProblem
from trainplan.planner.offsets.exact_clique import clique_model, solve_clique
from trainplan.planner.offsets.exact_common import Parts, Scaled
from trainplan.planner.offsets.exact_layout import (
    HEURISTICS,
    build_layout,
    perturb,
    preorder,
    section_bound,
)
from trainplan.planner.offsets.exact_search import (
    ABORTED,
    EXHAUSTED,
    FOUND,
    TIMEOUT,
    Restarts,
    slice_limit,
)

CPSAT_SLICE = 0.005  # deterministic time of a first-round CP-SAT slice (about 0.1 s of CPU)
CPSAT_KINDS = (*HEURISTICS, "random", "random", "random", "auto")


@dataclass
class Outcome:
    """FOUND (``offsets`` in units), EXHAUSTED (proven: nothing fits) or TIMEOUT; which
    strategy settled each window, how many windows, and whether the clock cut a
    deterministic run short."""

    result: str
    offsets: np.ndarray | None
    by: list[str]
    windows: int
    cut_by_clock: bool = False


@dataclass(frozen=True)
class Strategy:
    """What the portfolio runs: the search's slices (``Restarts.SLICES`` or a subset; None:
    no search), CP-SAT's slice kinds (None: no CP-SAT), and whether time splits into windows.
    The default is everything; the others measure what each part buys."""

    search: tuple | None = Restarts.SLICES
    cpsat: tuple | None = CPSAT_KINDS
    windows: bool = True


FULL = Strategy()


def decide_height(
    s: Scaled, height: int, *, deadline: float, seed: int = 0, workers: int = 2,
    deterministic: bool = False, budget_rounds: int | None = None, strategy: Strategy = FULL,
) -> Outcome:
    """Decide ``height`` window by window (see module doc). ``budget_rounds`` caps the rounds
    of a deterministic run (the machine-independent budget)."""
    windows = split_windows(s) if strategy.windows else [np.arange(s.n)]
    offsets = np.zeros(s.n, dtype=np.int64)
    by: list[str] = []
    cut = False
    for idx in windows:
        sub = restrict(s, idx) if len(windows) > 1 else s
        race = _Race(sub, height, deadline, seed, workers, deterministic, budget_rounds,
                     strategy)
        result, found, who = race.run()
        cut = cut or race.cut_by_clock
        if result != FOUND:
            return Outcome(result, None, by, len(windows), cut)
        offsets[idx] = found
        by.append(who)
    return Outcome(FOUND, offsets, by, len(windows), cut)


def split_windows(s: Scaled) -> list[np.ndarray]:
    """Buffer indices of each independent time window (one window unless ``s.plain``)."""
    if not s.plain or not s.n:
        return [np.arange(s.n)]
    lay = build_layout(s.start, s.end)
    bounds = [0, *(np.flatnonzero(lay.cuts == 0) + 1).tolist(), lay.n_sections]
    return [np.flatnonzero((lay.s0 < z) & (lay.s1 > a)) for a, z in zip(bounds, bounds[1:])]


def restrict(s: Scaled, idx: np.ndarray) -> Scaled:
    """The plain sub-problem of buffers ``idx``, on the same unit grid."""
    problem = AllocationProblem(tuple(s.problem.buffers[i] for i in idx), s.problem.capacity)
    start, end, size, align = s.start[idx], s.end[idx], s.size[idx], s.align[idx]
    bound = section_bound(build_layout(start, end), size, align)
    parts = Parts(np.arange(len(idx)), start, end, np.zeros(len(idx), dtype=np.int64), size)
    return replace(s, problem=problem, start=start, end=end, size=size, align=align,
                   bound=bound, lower_bound=bound, fixed=s.fixed[idx], hint=s.hint[idx],
                   parts=parts)


class _Race:
    """The search and CP-SAT slices on one window (see module doc)."""

    def __init__(self, s: Scaled, height: int, deadline: float, seed: int, workers: int,
                 deterministic: bool, budget_rounds: int | None, strategy: Strategy):
        self.s, self.height, self.deadline, self.seed = s, height, deadline, seed
        self.workers, self.deterministic, self.budget_rounds = workers, deterministic, budget_rounds
        self.stop = threading.Event()
        self.search = None
        if s.plain and strategy.search:
            lay = build_layout(s.start, s.end)
            self.search = Restarts(lay, s.size, s.align, height, seed=seed, stop=self.stop,
                                   slices=strategy.search)
        self.cpsat = None
        if strategy.cpsat or not s.plain:
            self.cpsat = _CpsatSlices(s, height, seed, self.stop, strategy.cpsat or ("auto",))
        self.cut_by_clock = False

    def run(self) -> tuple[str, np.ndarray | None, str]:
        if not self.s.plain:  # gaps or fixed offsets: CP-SAT alone, on every core
            return self._cpsat_only()
        if self.cpsat is None or self.search is None:
            return self._alone()
        if self.deterministic or self.workers < 2:
            return self._lockstep()
        return self._free_race()

    def _alone(self) -> tuple[str, np.ndarray | None, str]:
        """One side only (measuring what each buys): its slices until settled or time."""
        rounds = self.budget_rounds if self.deterministic else None
        if self.search is not None:
            result = self._search_until(self.deadline, rounds)
            return (result, self.search.solution, "search") if result in (FOUND, EXHAUSTED) \
                else (TIMEOUT, None, "")
        if rounds is None:
            self.cpsat.run_until(self.deadline)
        else:
            self.cpsat.run_rounds(rounds, self.deadline)
        self.cpsat.halt()
        return (self.cpsat.result or TIMEOUT), self.cpsat.solution, self.cpsat.settled_by

    def _free_race(self) -> tuple[str, np.ndarray | None, str]:
        """Both sides run their slices continuously; the first to settle stops the other."""
        thread = threading.Thread(target=self.cpsat.run_until, args=(self.deadline,),
                                  daemon=True)
        thread.start()
        try:
            result = self._search_until(self.deadline)
        finally:
            self.stop.set()
            self.cpsat.halt(thread)
        if result in (FOUND, EXHAUSTED):
            return result, self.search.solution, "search"
        if self.cpsat.result in (FOUND, EXHAUSTED):
            return self.cpsat.result, self.cpsat.solution, self.cpsat.settled_by
        return TIMEOUT, None, ""

    def _search_until(self, deadline: float, rounds: int | None = None) -> str:
        """Search slices until settled, the deadline, a stop, or the end of round ``rounds``."""
        n = len(self.s.size)
        while not self.stop.is_set():
            k = self.search.slices
            if rounds is not None and k >= rounds * self.search.per_round:
                return ABORTED
            result = self.search.run(slice_limit(k, n, self.search.per_round), deadline)
            if result in (FOUND, EXHAUSTED):
                return result
            if result == TIMEOUT or time.perf_counter() > deadline:
                return TIMEOUT
        return TIMEOUT

    def _lockstep(self) -> tuple[str, np.ndarray | None, str]:
        """Rounds of fixed work on each side (in parallel with two workers, else one after
        the other); after each round the search's answer wins over CP-SAT's."""
        rounds = 0
        while self.budget_rounds is None or rounds < self.budget_rounds:
            rounds += 1
            thread = None
            if self.workers >= 2:
                thread = threading.Thread(target=self.cpsat.run_rounds, args=(rounds,
                                          self.deadline), daemon=True)
                thread.start()
            result = self._search_until(self.deadline, rounds)
            if result in (FOUND, EXHAUSTED):
                self.stop.set()
            elif result == TIMEOUT:
                self.cut_by_clock = True
            if thread is not None:
                self.cpsat.halt(thread, stop=result in (FOUND, EXHAUSTED))
            elif result not in (FOUND, EXHAUSTED):
                self.cpsat.run_rounds(rounds, self.deadline)
            if result in (FOUND, EXHAUSTED):
                return result, self.search.solution, "search"
            if self.cpsat.result in (FOUND, EXHAUSTED):
                return self.cpsat.result, self.cpsat.solution, self.cpsat.settled_by
            if time.perf_counter() > self.deadline:
                self.cut_by_clock = True
                return TIMEOUT, None, ""
        return TIMEOUT, None, ""

    def _cpsat_only(self) -> tuple[str, np.ndarray | None, str]:
        work = None
        if self.deterministic:  # the CP-SAT work its slices would have had in those rounds
            rounds = self.budget_rounds or 1
            work = CPSAT_SLICE * len(CPSAT_KINDS) * ((1 << rounds) - 1)
        self.cpsat.run_whole(self.deadline, self.workers, work)
        if self.deterministic and self.cpsat.result is None:
            self.cut_by_clock = time.perf_counter() >= self.deadline
        return (self.cpsat.result or TIMEOUT), self.cpsat.solution, self.cpsat.settled_by


class _CpsatSlices:
    """CP-SAT on the clique model in slices: bottom-left in MiniMalloc's three orders, then
    its own search, each slice's deterministic time doubling every round."""

    def __init__(self, s: Scaled, height: int, seed: int, stop: threading.Event,
                 kinds: tuple = CPSAT_KINDS):
        from ortools.sat.python import cp_model

        self.s, self.height, self.seed, self.stop, self.kinds = s, height, seed, stop, kinds
        self.lay = build_layout(s.start, s.end) if s.plain else None
        self.rng = np.random.default_rng(seed)
        self.solver = cp_model.CpSolver()
        self.slices = 0
        self.result: str | None = None
        self.solution: np.ndarray | None = None
        self.settled_by = ""
        self.error: BaseException | None = None
        self._lock = threading.Lock()

    def _orders(self, kind: str) -> np.ndarray | None:
        """Buffers in the order of a heuristic (or a perturbed one); None: CP-SAT's search."""
        if kind == "auto" or self.lay is None:
            return None
        if kind == "random":
            base = HEURISTICS[int(self.rng.integers(len(HEURISTICS)))]
            return np.argsort(perturb(preorder(self.lay, self.s.size, base), self.rng))
        return np.argsort(preorder(self.lay, self.s.size, kind), kind="stable")

    def run_slice(self, deadline: float) -> str | None:
        """One slice; sets ``result`` when it settles the question."""
        kind = self.kinds[self.slices % len(self.kinds)]
        dtime = CPSAT_SLICE * (1 << (self.slices // len(self.kinds)))
        self.slices += 1
        order = self._orders(kind)
        built = clique_model(self.s, self.height, order=order)
        status, offsets = self._solve(built, deadline, dtime, order is not None, 1)
        return self._record(status, offsets, f"cpsat {kind}")

    def run_until(self, deadline: float) -> None:
        """Slices until settled, stopped or past the deadline (the thread of a free race)."""
        try:
            while not self.stop.is_set() and time.perf_counter() < deadline:
                if self.run_slice(deadline) is not None:
                    self.stop.set()
                    return
        except BaseException as exc:  # noqa: BLE001 -- reported by the caller through halt
            self.error = exc
            self.stop.set()

    def run_rounds(self, rounds: int, deadline: float) -> None:
        """Slices up to the end of round ``rounds`` (lockstep mode)."""
        try:
            while (self.result is None and not self.stop.is_set()
                   and self.slices < rounds * len(self.kinds)
                   and time.perf_counter() < deadline):
                self.run_slice(deadline)
        except BaseException as exc:  # noqa: BLE001 -- re-raised by halt
            self.error = exc

    def run_whole(self, deadline: float, workers: int, work: float | None) -> None:
        """One CP-SAT run on the whole question (problems the search cannot take); with
        ``work`` (deterministic time) on one worker, so the answer does not depend on load."""
        built = clique_model(self.s, self.height, hint=self.s.hint if (self.s.hint >= 0).all()
                             else None)
        status, offsets = self._solve(built, deadline, work, False,
                                      workers if work is None else 1)
        self._record(status, offsets, "cpsat")

    def _solve(self, built, deadline: float, dtime: float | None, fixed_search: bool,
               workers: int):
        remaining = deadline - time.perf_counter()
        if remaining <= 0.001 or self.stop.is_set():
            return "UNKNOWN", None
        return solve_clique(built, time_limit=remaining, seed=self.seed, workers=workers,
                            deterministic_time=dtime, fixed_search=fixed_search,
                            solver=self.solver)

    def _record(self, status: str, offsets: np.ndarray | None, who: str) -> str | None:
        with self._lock:
            if status in ("FEASIBLE", "OPTIMAL"):
                self.result, self.solution, self.settled_by = FOUND, offsets, who
            elif status == "INFEASIBLE":
                self.result, self.settled_by = EXHAUSTED, who
            return self.result

    def halt(self, thread: threading.Thread | None = None, *, stop: bool = True) -> None:
        """Wait for ``thread`` (stopping its solves unless ``stop`` is False); re-raise a
        failure of the thread."""
        while thread is not None and thread.is_alive():
            if stop:
                self.solver.stop_search()
            thread.join(0.02)
        if self.error is not None:
            raise self.error
