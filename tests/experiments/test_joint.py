"""Joint strategies (keep, swap or recompute): never slower in simulation than the best of
swap-only and recompute-only at the same budget."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainplan.experiments.cli import main
from trainplan.experiments.device_costs import device_costs, device_score
from trainplan.planner.build import build_training_graph
from trainplan.planner.errors import Infeasible
from trainplan.planner.plan_training import plan_training

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "planner"))
from test_remat import chain_spec  # noqa: E402

DEVICES = ("phone-ufs31", "raspberry-pi-4")


def best_single(graph, budget, score, singles=(("none", "belady"), ("none", "lookahead"),
                                               ("sqrt", "belady")), **search) -> float:
    """The least simulated time of swap-only and recompute-only plans at ``budget``."""
    times = []
    for remat, swap in singles:
        try:
            plan = plan_training(graph, budget=budget, swap=swap, remat=remat, **search)
        except Infeasible:
            continue
        if remat == "none" or not plan.swapped:  # recompute-only: nothing through storage
            times.append(score(graph, plan))
    return min(times)


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(convs=st.integers(4, 8), batch=st.sampled_from([2, 4]),
       fraction=st.sampled_from([0.3, 0.6, 0.9]), device=st.sampled_from(DEVICES))
def test_joint_greedy_is_never_slower_than_swap_or_recompute_alone(convs, batch, fraction,
                                                                   device):
    graph = build_training_graph(chain_spec(convs, 8, batch))
    bounds = plan_training(graph).bounds
    budget = int(bounds.min_budget_bytes
                 + fraction * (bounds.lower_bound_bytes - bounds.min_budget_bytes))
    score = device_score(device)
    try:
        joint = plan_training(graph, budget=budget, swap="joint_greedy",
                              costs=device_costs(device), score=score)
    except Infeasible:
        return
    assert joint.valid
    assert score(graph, joint) <= best_single(graph, budget, score) + 1e-12
    tried = joint.provenance.options["tried"]
    assert joint.provenance.options["seconds"] == pytest.approx(min(t["seconds"] for t in tried))


#: CP-SAT deterministic on one worker: the same plan in the strategy as in a single run
SEARCH = {"deterministic": True, "workers": 1, "seed": 0, "time_limit": 0.3}
CPSAT_SINGLES = (("none", "belady"), ("none", "lookahead"), ("none", "optimal"),
                 ("optimal", "belady"), ("sqrt", "belady"))


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(convs=st.integers(3, 6), batch=st.sampled_from([2, 4]),
       fraction=st.sampled_from([0.3, 0.7]), device=st.sampled_from(DEVICES))
def test_joint_is_never_slower_than_the_cp_sat_swap_or_recomputation_alone(convs, batch,
                                                                          fraction, device):
    """The CP-SAT strategy against the best single run of every swap planner (optimal
    included) and of recomputation alone (optimal and sqrt, nothing through storage)."""
    graph = build_training_graph(chain_spec(convs, 8, batch))
    bounds = plan_training(graph).bounds
    budget = int(bounds.min_budget_bytes
                 + fraction * (bounds.lower_bound_bytes - bounds.min_budget_bytes))
    costs, score = device_costs(device), device_score(device)
    try:
        joint = plan_training(graph, budget=budget, swap="joint", costs=costs, score=score,
                              **SEARCH)
    except Infeasible:
        return
    assert joint.valid
    best = best_single(graph, budget, score, CPSAT_SINGLES, costs=costs, **SEARCH)
    assert score(graph, joint) <= best + 1e-12


def test_joint_from_the_command_line_reports_what_it_tried(capsys):
    argv = ["plan", "--model", "lenet5", "--batch", "8", "--budget", "1MB", "--swap",
            "joint_greedy", "--device", "raspberry-pi-4", "--json"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert '"strategy": "joint_greedy"' in out and '"valid": true' in out
    assert main(argv[:-3] + ["--json"]) == 2
    assert "give --device" in capsys.readouterr().err


@pytest.mark.parametrize("strategy", ["joint", "joint_greedy"])
def test_a_strategy_needs_a_budget(strategy, capsys):
    assert main(["plan", "--model", "mlp", "--swap", strategy, "--device",
                 "phone-ufs31"]) == 2
    assert "--budget" in capsys.readouterr().err
