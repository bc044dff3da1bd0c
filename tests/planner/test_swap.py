"""Swap planners (lookahead, belady) under budgets, checked by the swap validator."""

from dataclasses import replace

import pytest

from trainplan.planner.build import build_training_graph
from trainplan.planner.errors import Infeasible, UnknownName
from trainplan.planner.order import execution_order, lifespans, lower_bound
from trainplan.planner.swap import graph_buffers, plan_swap
from trainplan.planner.swap.working_set import min_budget
from trainplan.planner.validate_swap import validate_swap
from trainplan.planner.zoo import get_model


@pytest.fixture(scope="module", params=["lenet5", "resnet18_cifar", "transformer", "lstm"])
def model(request):
    graph = build_training_graph(get_model(request.param, batch=4))
    buffers, n_eo = graph_buffers(graph)
    eo = execution_order(graph)
    return buffers, n_eo, lower_bound(lifespans(graph, eo), n_eo)


def test_belady_fits_every_budget_down_to_the_minimum(model):
    buffers, n_eo, bound = model
    low = min_budget(buffers, n_eo)
    for budget in (bound, (bound + low) // 2, low):
        schedule = plan_swap(buffers, n_eo, budget, "belady")
        assert validate_swap(buffers, schedule) == []
        assert schedule.peak_resident_bytes <= budget
    assert plan_swap(buffers, n_eo, bound, "belady").bytes_written == 0  # no swap needed


@pytest.mark.parametrize("k", [0, 1, 3])
def test_lookahead_schedules_are_valid_and_peak_at_the_window(model, k):
    buffers, n_eo, _ = model
    schedule = plan_swap(buffers, n_eo, 10**15, "lookahead", lookahead=k)
    assert validate_swap(buffers, schedule) == []
    assert schedule.peak_resident_bytes <= min_budget(buffers, n_eo, k) + 0
    with pytest.raises(Infeasible) as err:
        plan_swap(buffers, n_eo, schedule.peak_resident_bytes - 1, "lookahead", lookahead=k)
    assert err.value.needed_bytes == schedule.peak_resident_bytes


def test_saved_activation_is_written_once_and_read_once():
    graph = build_training_graph(get_model("lenet5", batch=4))
    buffers, n_eo = graph_buffers(graph)
    schedule = plan_swap(buffers, n_eo, 10**12, "lookahead", lookahead=1)
    writes = [e for e in schedule.evictions if e.tensor == "conv2:out0" and e.write]
    reads = [p for p in schedule.prefetches if p.tensor == "conv2:out0" and p.read]
    assert len(writes) == 1 and len(reads) == 1
    assert writes[0].after_eo < reads[0].use_eo
    workspace = [t for t, b in buffers.items() if b.role == "workspace" and len(b.uses) == 1]
    assert workspace and not any(e.tensor in workspace for e in schedule.evictions)


def test_budget_below_minimum_names_it():
    graph = build_training_graph(get_model("lenet5", batch=4))
    buffers, n_eo = graph_buffers(graph)
    need = min_budget(buffers, n_eo)
    with pytest.raises(Infeasible, match=f"needs at least {need} bytes"):
        plan_swap(buffers, n_eo, need - 1, "belady")


def test_unknown_swap_planner():
    with pytest.raises(UnknownName, match="belady"):
        plan_swap({}, 1, 1, "fifo")


def test_validator_catches_stale_reads_and_budget_overruns():
    graph = build_training_graph(get_model("lenet5", batch=4))
    buffers, n_eo = graph_buffers(graph)
    schedule = plan_swap(buffers, n_eo, 10**12, "lookahead", lookahead=1)
    no_write = tuple(replace(e, write=False) for e in schedule.evictions)
    errors = validate_swap(buffers, replace(schedule, evictions=no_write))
    assert any("without writing" in e for e in errors)
    tight = replace(schedule, budget_bytes=schedule.peak_resident_bytes - 1)
    assert any("exceed the budget" in e for e in validate_swap(buffers, tight))
    dropped = dict(schedule.resident, **{"conv2:out0": ((4, 5),)})
    assert any("not resident" in e for e in validate_swap(buffers, replace(schedule,
                                                                             resident=dropped)))
