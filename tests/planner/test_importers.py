"""The importers' registry: the --model value picks the importer; initial weights ride on the
spec into the graph and the runtime's first state."""

from __future__ import annotations

import numpy as np
import pytest

from trainplan.planner.build import build_training_graph
from trainplan.planner.errors import InvalidGraph, UnknownModel
from trainplan.planner.importers import IMPORTERS, import_model, importer_for
from trainplan.planner.initial_weights import WeightTable
from trainplan.planner.spec import LayerDef, ModelSpec
from trainplan.planner.zoo import get_model
from trainplan.runtime.session import Session


@pytest.mark.parametrize("value,importer", [
    ("lenet5", "zoo"), ("resnet18_cifar", "zoo"), ("mnist.ini", "ini"),
    ("models/x.ini", "ini"), ("some/dir/model", "ini"), ("model.onnx", "onnx"),
    ("a/b/Model.ONNX", "onnx"), ("net.py:build", "torch"), ("pkg.models:resnet", "torch"),
    ("nothing", None), ("bad.py:", None), ("x:y-z", None),
])
def test_each_value_picks_one_importer(value, importer):
    assert importer_for(value) == importer


def test_registry_holds_the_four_importers():
    assert list(IMPORTERS) == ["onnx", "torch", "ini", "zoo"]


def test_get_model_dispatches_through_the_registry():
    assert get_model("lenet5", batch=4) == import_model("lenet5", batch=4)
    assert get_model("mnist.ini").name == "mnist"


def test_unknown_value_names_every_form():
    with pytest.raises(UnknownModel, match=r"zoo model \(mlp.*\.ini.*\.onnx.*file\.py:fn"):
        get_model("nothing")


def test_missing_files_are_named():
    with pytest.raises(UnknownModel, match="nowhere.onnx"):
        get_model("nowhere.onnx")


def _tiny(weights) -> ModelSpec:
    layers = (LayerDef("x", "input", {"input_shape": (3,)}),
              LayerDef("fc", "fully_connected", {"unit": 2}, ("x",)),
              LayerDef("loss", "mse", {}, ("fc",)))
    return ModelSpec("tiny", layers, 4, "sgd", weights=WeightTable(weights))


def test_initial_weights_reach_the_runtime():
    w = np.arange(6, dtype=np.float32).reshape(3, 2)
    graph = build_training_graph(_tiny({"fc:weight": w, "fc:bias": np.ones(2)}))
    assert repr(graph.graph["initial_weights"]) == "WeightTable(2 tensors, 8 values)"
    with Session.reference(graph) as session:
        state = session.state()
    np.testing.assert_array_equal(state["fc:weight"], w)
    np.testing.assert_array_equal(state["fc:bias"], np.ones(2, np.float32))


@pytest.mark.parametrize("weights,message", [
    ({"fc:kernel": np.zeros((3, 2))}, "'fc:kernel' is not a weight"),
    ({"fc:weight": np.zeros((2, 3))}, r"shape \(2, 3\), the graph's tensor \(3, 2\)"),
])
def test_initial_weights_that_do_not_fit_are_named(weights, message):
    with pytest.raises(InvalidGraph, match=message):
        build_training_graph(_tiny(weights))


def test_weight_table_is_read_only_float32():
    table = WeightTable({"a:w": np.ones(3, dtype=np.float64)})
    assert table["a:w"].dtype == np.float32
    with pytest.raises(ValueError):
        table["a:w"][0] = 2
