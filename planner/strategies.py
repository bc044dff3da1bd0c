"""Joint strategies under a budget: keep, swap or recompute each value, one registry.

A strategy proposes combinations of a recomputation planner (with the live bytes it should
reach) and a swap planner for what remains over the budget; every combination is planned in
full (planner/plan_training.py) and the one with the least iteration time on the device — by
the caller's ``score`` (the simulator, experiments/device_costs.py) — is kept. The ends of the
range are swap-only (no recomputation) and recompute-only (recomputation down to the budget, so
nothing needs storage), so a strategy is never slower than the best of the two it tries.

- ``joint``: the CP-SAT planners on both sides — the least recomputation reaching each of a
  ladder of live budgets between the budget and the lower bound (planner/remat/optimal.py),
  then the belady and the CP-SAT swap planner for the rest;
- ``joint_greedy``: the fast heuristic — recompute what is cheapest per byte (planner/remat/
  greedy.py) down to the same ladder, swap the rest with belady or lookahead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Combination:
    """Recompute with ``remat`` down to ``fraction`` of the way from the lower bound to the
    budget (1: down to the budget, 0: nothing), then swap with ``swap``."""

    remat: str
    fraction: float
    swap: str


LADDER = (0.0, 0.25, 0.5, 0.75, 1.0)


def _joint() -> list[Combination]:
    out = [Combination("none", 0.0, s) for s in ("belady", "lookahead", "optimal")]
    out += [Combination("optimal", f, s) for f in LADDER[1:] for s in ("belady", "optimal")]
    return out + [Combination("sqrt", 1.0, "belady")]


def _joint_greedy() -> list[Combination]:
    out = [Combination("none", 0.0, s) for s in ("belady", "lookahead")]
    out += [Combination("greedy", f, s) for f in LADDER[1:] for s in ("belady", "lookahead")]
    return out + [Combination("sqrt", 1.0, "belady")]


STRATEGIES: dict[str, tuple[Callable[[], list[Combination]], str]] = {
    "joint": (_joint, "keep, swap or recompute: CP-SAT recomputation at a ladder of live "
              "budgets, belady or CP-SAT swapping for the rest, the least simulated time"),
    "joint_greedy": (_joint_greedy, "the fast heuristic: recompute what is cheap per byte, swap "
                     "what storage hides behind compute, the least simulated time"),
}
