"""Shared fixtures: small training graphs built fresh for each test."""

import pytest

from trainplan.planner.build import build_training_graph
from trainplan.planner.spec import LayerDef, ModelSpec


def three_layer_mlp(optimizer: str = "sgd") -> ModelSpec:
    """input(4) -> fc 8 -> relu -> fc 6 -> relu -> fc 3 -> softmax cross-entropy, batch 2."""
    return ModelSpec("mlp3", (
        LayerDef("in", "input", {"input_shape": (4,)}),
        LayerDef("fc1", "fully_connected", {"unit": 8}, ("in",)),
        LayerDef("relu1", "activation", {"activation": "relu"}, ("fc1",)),
        LayerDef("fc2", "fully_connected", {"unit": 6}, ("relu1",)),
        LayerDef("relu2", "activation", {"activation": "relu"}, ("fc2",)),
        LayerDef("fc3", "fully_connected", {"unit": 3}, ("relu2",)),
        LayerDef("loss", "cross_softmax", {}, ("fc3",)),
    ), batch=2, optimizer=optimizer)


@pytest.fixture
def mlp3_spec() -> ModelSpec:
    return three_layer_mlp()


@pytest.fixture
def mlp3_graph(mlp3_spec):
    return build_training_graph(mlp3_spec)
