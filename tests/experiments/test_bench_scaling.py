"""bench_scaling: its deep-MLP lifespans are the built graph's, and its records are sound."""

from __future__ import annotations

import json

import pytest

from trainplan.experiments.bench_scaling import deep_mlp_pools, main, problems
from trainplan.planner.build import build_training_graph
from trainplan.planner.order import execution_order
from trainplan.planner.problems import graph_problems
from trainplan.planner.spec import LayerDef, ModelSpec


def _deep_mlp(layers: int) -> ModelSpec:
    defs = [LayerDef("in", "input", {"input_shape": (64,)}, ())]
    prev = "in"
    for i in range(layers):
        defs.append(LayerDef(f"fc{i}", "fully_connected", {"unit": 64}, (prev,)))
        defs.append(LayerDef(f"r{i}", "activation", {"activation": "relu"}, (f"fc{i}",)))
        prev = f"r{i}"
    defs.append(LayerDef("loss", "mse", {}, (prev,)))
    return ModelSpec("deep", tuple(defs), batch=8, optimizer="sgd")


@pytest.mark.parametrize("layers", [1, 2, 3, 7, 20])
def test_deep_mlp_pools_are_the_built_graphs_pools(layers):
    graph = build_training_graph(_deep_mlp(layers))
    built = graph_problems(graph, execution_order(graph, "nntrainer"))
    written = deep_mlp_pools(layers)
    assert set(built) == set(written)
    for pool in built:
        assert built[pool].buffers == written[pool].buffers, pool


def test_every_problem_has_exactly_n_buffers():
    assert {label: len(p.buffers) for label, p in problems(101).items()} == {
        "deep_weight": 101, "deep_tensor": 101, "random": 101}


def test_main_writes_one_valid_record_per_size_problem_and_planner(tmp_path, capsys):
    out = tmp_path / "scaling.json"
    main(["--sizes", "50,200", "--planners", "nntrainer_v1,best_fit", "--out", str(out)])
    data = json.loads(out.read_text())
    assert len(data["load_average"]) == 3
    records = data["records"]
    assert len(records) == 2 * 3 * 2
    assert all(r["valid"] and r["arena"] >= r["lower_bound"] > 0 for r in records)
    assert {r["problem"] for r in records} == {"deep_weight", "deep_tensor", "random"}


def test_unknown_planner_is_refused_before_any_work(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--planners", "nope", "--out", str(tmp_path / "x.json")])
    assert "unknown planner(s) nope" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()
