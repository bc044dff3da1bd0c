"""Zoo models: published parameter counts, valid graphs, sane bounds."""

import pytest

from trainplan.planner.build import build_training_graph
from trainplan.planner.errors import UnknownModel
from trainplan.planner.graph import check_graph
from trainplan.planner.order import execution_order, lifespans, lower_bound, no_reuse_bytes
from trainplan.planner.summary import parameter_count
from trainplan.planner.zoo import MODELS, get_model

PUBLISHED = {
    "resnet18": 11_689_512,
    "mobilenetv2": 3_504_872,
    "vgg16": 138_357_544,
    "lenet5": 61_706,
}


@pytest.mark.parametrize("name,count", PUBLISHED.items())
def test_published_parameter_counts(name, count):
    assert parameter_count(build_training_graph(get_model(name, batch=1))) == count


@pytest.mark.parametrize("name", list(MODELS))
def test_every_zoo_model_builds_a_valid_graph(name):
    graph = build_training_graph(get_model(name, batch=4))
    check_graph(graph)
    eo = execution_order(graph)
    spans = lifespans(graph, eo)
    assert 0 < lower_bound(spans, eo.n_eo) <= no_reuse_bytes(spans)


def test_builders_take_batch_shape_and_classes():
    spec = get_model("resnet18", batch=8, input_shape=(3, 64, 64), classes=7)
    graph = build_training_graph(spec)
    assert graph.graph["batch"] == 8
    assert graph.nodes["fc:out0"]["shape"] == (8, 7)
    assert graph.nodes["input:input"]["shape"] == (8, 3, 64, 64)


def test_cifar_variants_are_32x32_with_10_classes():
    for name in ("resnet18_cifar", "mobilenetv2_cifar", "vgg16_cifar"):
        graph = build_training_graph(get_model(name, batch=2))
        assert graph.nodes["input:input"]["shape"] == (2, 3, 32, 32)
        assert graph.nodes["loss:out0"]["shape"] == (2, 10)


def test_unknown_model_names_the_valid_ones():
    with pytest.raises(UnknownModel, match="resnet18"):
        get_model("resnet19")
