"""Step splitting through plan_training: the plan records the split, every consumer rebuilds the
split graph from the unsplit one, and a split plan trains on the bits of the split graph's
reference run; joint plans (keep, swap or recompute) on the unplanned run's bits."""

from __future__ import annotations

import pytest

from trainplan.experiments.cli import main
from trainplan.experiments.device_costs import device_costs, device_score
from trainplan.planner.build import build_training_graph
from trainplan.planner.errors import TrainplanError
from trainplan.planner.identity import fingerprint
from trainplan.planner.plan_training import plan_training
from trainplan.planner.split import graph_for
from trainplan.planner.training_plan import TrainingPlan
from trainplan.planner.zoo import get_model
from trainplan.runtime.data import synthetic
from trainplan.runtime.session import Session, SessionOptions
from trainplan.simulator.simulate import simulate


def weights_after_two_steps(graph, plan, batch: int) -> tuple[str, list[float]]:
    data = synthetic(graph_for(graph, plan) if plan else graph, 2 * batch, seed=3)
    options = SessionOptions(seed=7)
    session = Session(graph, plan, options) if plan else Session.reference(graph, options)
    with session:
        losses = [session.step(b).loss for b in data.batches(batch, None)]
        return session.weights_sha256(), losses


def test_a_split_plan_records_its_split_and_consumers_rebuild_it():
    graph = build_training_graph(get_model("resnet18", batch=8))
    unsplit = plan_training(graph).bounds.min_budget_bytes
    plan = plan_training(graph, budget=int(0.8 * unsplit), split="auto")
    assert plan.valid and plan.split is not None and plan.split.regions
    assert plan.split.unsplit == fingerprint(graph)
    assert plan.bounds.min_budget_bytes < unsplit
    split = graph_for(graph, plan)
    assert fingerprint(split) == plan.graph.fingerprint != fingerprint(graph)
    again = TrainingPlan.from_json(plan.to_json())
    assert again.split == plan.split
    unsplit_sim = simulate(graph, again, "phone-ufs31").summary
    assert unsplit_sim.arena_bytes == plan.arena_bytes == simulate(split, plan,
                                                                   "phone-ufs31").summary.arena_bytes


@pytest.mark.parametrize("name,batch", [("lenet5", 8), ("mobilenetv2_cifar", 4)])
def test_split_plans_train_on_the_reference_bits_of_the_split_graph(name, batch):
    graph = build_training_graph(get_model(name, batch=batch))
    low = plan_training(graph).bounds.min_budget_bytes
    split = plan_training(graph, budget=int(0.85 * low), split=2)
    assert split.split is not None and split.bounds.min_budget_bytes < low
    reference = weights_after_two_steps(graph_for(graph, split), None, batch)
    assert weights_after_two_steps(graph, split, batch) == reference


JOINT_MODELS = {"lenet5": dict(batch=8), "resnet18_cifar": dict(batch=2),
                "mobilenetv2_cifar": dict(batch=2), "transformer": dict(batch=2,
                                                                        input_shape=(16,))}


@pytest.mark.parametrize("name", list(JOINT_MODELS))
def test_joint_plans_train_on_the_reference_bits(name):
    """Keep, swap or recompute per value (joint_greedy) under a budget below the activations'
    peak: the same weights as the unplanned run."""
    kw = JOINT_MODELS[name]
    graph = build_training_graph(get_model(name, **kw))
    unbudgeted = plan_training(graph)
    budget = (unbudgeted.bounds.min_budget_bytes + unbudgeted.bounds.lower_bound_bytes) // 2
    joint = plan_training(graph, budget=budget, swap="joint_greedy",
                          costs=device_costs("raspberry-pi-4"),
                          score=device_score("raspberry-pi-4"))
    assert joint.valid and joint.provenance.options["strategy"] == "joint_greedy"
    assert budget < unbudgeted.bounds.lower_bound_bytes and (joint.swapped or joint.recomputes)
    assert weights_after_two_steps(graph, joint, kw["batch"]) == weights_after_two_steps(
        graph, None, kw["batch"])


@pytest.mark.parametrize("argv,says", [
    (["--split", "auto"], "give one"),
    (["--budget", "1MiB", "--split", "1"], "2 or more"),
    (["--budget", "1MiB", "--split", "many"], "use off, auto or a chunk count"),
])
def test_bad_splits_are_refused_naming_the_fix(argv, says, capsys):
    assert main(["plan", "--model", "lenet5", *argv]) == 2
    assert says in capsys.readouterr().err


def test_splitting_without_a_budget_is_refused_in_python():
    graph = build_training_graph(get_model("lenet5", batch=4))
    with pytest.raises(TrainplanError, match="give one"):
        plan_training(graph, split="auto")
