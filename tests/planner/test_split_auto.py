"""Choosing splits (planner/split_auto.py) and ordering split graphs chunk by chunk
(planner/split_order.py)."""

from __future__ import annotations

import pytest

from trainplan.planner.build import build_training_graph
from trainplan.planner.order import execution_order, lifespans
from trainplan.planner.plan_training import plan_training
from trainplan.planner.split import split_graph
from trainplan.planner.split_auto import auto_splits
from trainplan.planner.split_order import chunk_major
from trainplan.planner.swap.uses import buffer_uses
from trainplan.planner.swap.working_set import min_budget
from trainplan.planner.verify import verify_plan
from trainplan.planner.zoo import get_model


def _graph(name: str, **kw):
    return build_training_graph(get_model(name, **kw))


def _min_budget(graph, order="nntrainer"):
    eo = order if not isinstance(order, str) else execution_order(graph, order)
    return min_budget(buffer_uses(graph, eo, lifespans(graph, eo)), eo.n_eo)


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv2", "vgg16"])
def test_auto_splits_fit_imagenet_models_into_a_twentieth_of_their_footprint(name):
    g = _graph(name, batch=32)
    budget = plan_training(g).bounds.no_reuse_bytes // 20
    unsplit = _min_budget(g)
    choice = auto_splits(g, budget)
    assert unsplit > budget  # the unsplit graph cannot be planned at all
    # working sets within the default fill (0.3) of the budget, or down to the weights'
    assert choice.fits and choice.min_budget_bytes <= budget / 2
    assert choice.min_budget_bytes == _min_budget(choice.graph)
    assert split_graph(g, choice.splits, choice.units).number_of_nodes() == \
        choice.graph.number_of_nodes()
    if name == "vgg16":  # a 411 MB weight: only splitting its units shrinks it
        assert "fc1" in choice.units


def test_auto_splits_pick_the_smallest_chunk_count_that_fits():
    g = _graph("resnet18", batch=8)
    choice = auto_splits(g, 45_000_000, fill=1.0)
    assert choice.fits and choice.splits
    for (first, last), k in choice.splits.items():
        fewer = {**choice.splits, (first, last): k - 1}
        if k > 2:  # one chunk fewer no longer fits
            assert _min_budget(split_graph(g, fewer, choice.units)) > 45_000_000


def test_auto_splits_report_when_the_budget_is_out_of_reach():
    g = _graph("resnet18", batch=4)
    choice = auto_splits(g, 10_000_000)  # below layer4's weights, gradient and Adam state
    assert not choice.fits and choice.min_budget_bytes > 10_000_000
    assert choice.min_budget_bytes < _min_budget(g) or not choice.splits


def test_auto_splits_with_a_fixed_chunk_count():
    g = _graph("resnet18", batch=32)
    choice = auto_splits(g, 150_000_000, chunks=4)
    assert choice.splits and set(choice.splits.values()) == {4}


def test_a_graph_within_the_budget_is_left_alone():
    g = _graph("lenet5", batch=4)
    choice = auto_splits(g, 10**9)
    assert choice.fits and not choice.splits and not choice.units and choice.graph is g


def test_chunk_major_keeps_an_unsplit_graph_in_the_rules_order():
    g = _graph("resnet18_cifar", batch=2)
    rule, major = execution_order(g), chunk_major(g)
    ranked = sorted(rule.op_eo, key=lambda o: (rule.op_eo[o], o))
    assert sorted(major.op_eo, key=major.op_eo.get) == [
        o for o in ranked]  # one op per EO, same sequence
    assert major.n_eo == len(major.op_eo)


def test_chunk_major_runs_each_chunk_deep_and_validates():
    g = _graph("resnet18_cifar", batch=4)
    s = split_graph(g, {("input", "layer1.1/relu2"): 4})
    eo = chunk_major(s)
    at = eo.op_eo
    # chunk 0 goes through conv1 and bn1's statistics before chunk 1 starts conv1
    assert at["conv1:forward#0"] < at["bn1:bn_statistics#0"] < at["conv1:forward#1"]
    # the normalisation waits for every chunk's statistics
    assert at["bn1:bn_statistics#3"] < at["bn1:bn_normalize#0"]
    plan = plan_training(s, order=eo)
    low = plan.bounds.min_budget_bytes
    swapped = plan_training(s, order=eo, budget=int(low * 1.3), swap="belady")
    assert plan.valid and swapped.valid and verify_plan(s, swapped) == []
    assert plan.order.name == "nntrainer, chunk-major"
