"""Same bits: planned runs (any offset planner, with and without swapping to a real file)
give exactly the reference run's weights."""

import pytest

from trainplan.planner.build import build_training_graph
from trainplan.planner.swap import graph_buffers
from trainplan.planner.swap.working_set import min_budget
from trainplan.planner.zoo import get_model
from trainplan.runtime.data import synthetic
from trainplan.runtime.session import Session, SessionOptions

MODELS = {
    "mlp": dict(batch=4),
    "lenet5": dict(batch=4),
    "resnet18_cifar": dict(batch=2),
    "mobilenetv2": dict(batch=2, input_shape=(3, 32, 32), classes=10),
    "transformer": dict(batch=2, input_shape=(16,)),
}
ITERATIONS = 2


def train(graph, options: SessionOptions, batch: int) -> tuple[str, list[float]]:
    data = synthetic(graph, batch * ITERATIONS, seed=3)
    with Session(graph, options) as session:
        losses = [session.step(b).loss for b in data.batches(batch, None)]
        return session.weights_sha256(), losses


@pytest.mark.parametrize("name", list(MODELS))
def test_planned_and_swapped_runs_match_the_reference(name):
    kw = MODELS[name]
    graph = build_training_graph(get_model(name, **kw))
    reference, ref_losses = train(graph, SessionOptions(planner=None, seed=7), kw["batch"])
    low = min_budget(*graph_buffers(graph))
    runs = {
        "nntrainer_v1": SessionOptions(planner="nntrainer_v1", seed=7),
        "greedy_size": SessionOptions(planner="greedy_size", seed=7),
        "belady": SessionOptions(planner="best", budget=int(low * 1.25), swap="belady",
                                 seed=7),
        "lookahead": SessionOptions(planner="best", budget=10**12, swap="lookahead",
                                    lookahead=1, seed=7),
    }
    for label, options in runs.items():
        sha, losses = train(graph, options, kw["batch"])
        assert sha == reference, f"{name}: {label} differs from the reference"
        assert losses == ref_losses
