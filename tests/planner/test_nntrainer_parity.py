"""NNTrainer 0.6's measured requests for resnet18.ini (batch 128, adam) and vgg_small.ini,
memory optimisation on and off (data/nntrainer_parity/, from the shared reference): the graph
NNTrainer realises, every request of both pools in request order, and the planned pools."""

from __future__ import annotations

import csv
import os

import pytest

from trainplan.planner.build import build_training_graph
from trainplan.planner.offsets import run_planner
from trainplan.planner.order import execution_order
from trainplan.planner.problems import graph_problems
from trainplan.planner.zoo import get_model

DATA = os.path.join(os.path.dirname(__file__), "data", "nntrainer_parity")
STEPS = ("forward", "calc_gradient", "calc_derivative", "apply_gradient")
# (csv prefix, shipped example, memory_optimization) -> (weight pool, planned tensor pool)
MEASURED = {
    ("resnet18_b128", "resnet18.ini", True): (150_653_560, 735_123_712),
    ("resnet18_b128", "resnet18.ini", False): (150_653_560, 3_579_310_376),
    ("vgg_small", "vgg_small.ini", True): (11_612_784, 44_630_528),
    ("vgg_small", "vgg_small.ini", False): (11_612_784, 162_955_984),
}
CASES = sorted(MEASURED)


def rows(name: str) -> list[dict]:
    with open(os.path.join(DATA, name), newline="") as fh:
        return list(csv.DictReader(fh))


def graph_of(example: str, optimise: bool):
    return build_training_graph(get_model(example), compat=True, inplace=optimise)


def _id(case):
    return f"{case[0]}-{'opt' if case[2] else 'noopt'}"


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_realised_graph_and_execution_orders(case):
    prefix, example, optimise = case
    graph = graph_of(example, optimise)
    eo = execution_order(graph)
    expected = rows(f"{prefix}_{'opt' if optimise else 'noopt'}_eo.csv")
    got = [(x["name"], x["type"], *(eo.layer_eos[x["name"]][s] for s in STEPS), int(x["learns"]))
           for x in graph.graph["layers"]]
    assert got == [(r["name"], r["type"], int(r["fwd"]), int(r["calc_grad"]),
                    int(r["calc_deriv"]), int(r["apply_grad"]), int(r["trainable"]))
                   for r in expected]


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_tensor_pool_requests_and_offsets(case):
    """Name, bytes and [start, end) of every request in NNTrainer's order; NNTrainer's planner
    (OptimizedV1 with memory optimisation, Basic without) gives its offsets and its pool."""
    prefix, example, optimise = case
    problem = graph_problems(graph_of(example, optimise))["tensor"]
    expected = rows(f"{prefix}_{'opt' if optimise else 'noopt'}_tensor_pool.csv")
    assert [(b.id, b.size, b.start, b.end) for b in problem.buffers] == [
        (r["name"], int(r["bytes"]), int(r["valid_start"]), int(r["valid_end_excl"]))
        for r in expected]
    plan = run_planner("nntrainer_v1" if optimise else "basic", problem)
    assert plan.offsets == {r["name"]: int(r["offset"]) for r in expected}
    assert plan.arena_bytes == MEASURED[case][1]


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_weight_pool_requests(case):
    """Weights in NNTrainer's request order (each layer's weights as it finalises, then every
    optimizer variable: our m and v are NNTrainer's opt0 and opt1), and the pool's sum."""
    prefix, example, optimise = case
    problem = graph_problems(graph_of(example, optimise))["weight"]
    expected = rows(f"{prefix}_opt_weight_pool.csv")  # measured with optimisation on
    names = [b.id.rsplit(":", 1)[0] + {"m": ":opt0", "v": ":opt1"}[b.id.rsplit(":", 1)[1]]
             if b.kind == "optimizer_state" else b.id for b in problem.buffers]
    assert [(n, b.size) for n, b in zip(names, problem.buffers)] == [
        (r["name"], int(r["bytes"])) for r in expected]
    assert problem.no_reuse_bytes() == MEASURED[case][0]
