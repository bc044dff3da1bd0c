"""experiments/bench_runtime.py and experiments/torch_models.py: tiny runs, ratios, twins.

The PyTorch parts skip when torch (an optional extra) is not installed.
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from trainplan.experiments import bench_runtime as bench
from trainplan.planner.build import build_training_graph
from trainplan.planner.summary import parameter_count
from trainplan.planner.zoo import get_model

needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                 reason="torch is an optional extra: pip install 'trainplan[torch]'")

TINY = ["--batch", "2", "--iterations", "1", "--warmup", "0", "--min-seconds", "0",
        "--threads", "1"]


def fake(framework: str, model: str, peak: int, seconds: float, planner=None) -> dict:
    return {"framework": framework, "model": model, "planner": planner, "threads": 2,
            "arena_bytes": peak // 2, "peak_rss_above_baseline": peak, "peak_rss_bytes": peak,
            "seconds_per_iteration": seconds}


def test_worker_runs_one_tiny_iteration_of_ours(tmp_path):
    out = tmp_path / "bench.json"
    result = bench.main(["--models", "lenet5", "--planners", "nntrainer_v1", "--no-torch",
                         "--no-mnist", "--out", str(out), *TINY])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    (record,) = result["records"]
    assert "error" not in record, record
    assert (record["framework"], record["model"], record["planner"], record["threads"]) == \
        ("ours", "lenet5", "nntrainer_v1", 1)
    assert record["iterations"] == 1 and record["seconds_per_iteration"] > 0
    assert record["finite"] and record["arena_bytes"] > 0
    assert record["peak_rss_above_baseline"] > 0
    assert record["lower_bound_bytes"] <= record["arena_bytes"]
    assert result["ratios"] == []


def test_timed_runs_warmup_then_enough_iterations():
    calls: list[int] = []
    times = bench.timed(calls.append, warmup=2, iterations=3, min_seconds=0)
    assert calls == [0, 1, 2, 3, 4] and len(times) == 3 and min(times) >= 0


def test_jobs_put_ours_and_torch_side_by_side():
    todo = bench.jobs(["lenet5"], ["nntrainer_v1", "greedy_size"], [2, 1], torch=True,
                      mnist=True)
    assert [(j.framework, j.model, j.planner, j.threads) for j in todo[:4]] == [
        ("ours", "lenet5", "nntrainer_v1", 2), ("ours", "lenet5", "greedy_size", 2),
        ("torch", "lenet5", None, 2), ("ours", bench.MNIST_INI, "nntrainer_v1", 2)]
    assert len(todo) == 10 and {j.threads for j in todo[5:]} == {1}
    assert not any(j.framework == "torch" and j.model == bench.MNIST_INI for j in todo)


def test_ratios_are_ours_over_pytorch_against_the_targets():
    records = [fake("ours", "m", 40, 3.0, "nntrainer_v1"), fake("ours", "m", 60, 1.0, "basic"),
               fake("torch", "m", 100, 2.0), fake("ours", "other", 1, 1.0, "basic")]
    rows = bench.ratios(records)
    assert [(r["planner"], r["memory ratio"], r["time ratio"]) for r in rows] == [
        ("nntrainer_v1", 0.4, 1.5), ("basic", 0.6, 0.5)]
    assert [(r["memory ok"], r["time ok"]) for r in rows] == [(True, False), (False, True)]


def test_slowdowns_compare_each_framework_under_load_with_its_quiet_run():
    def at(load: int, record: dict) -> dict:
        return {**record, "load": load}

    records = [at(0, fake("ours", "m", 1, 1.0, "basic")), at(1, fake("ours", "m", 1, 1.5, "basic")),
               at(0, fake("torch", "m", 1, 1.0)), at(1, fake("torch", "m", 1, 2.5)),
               at(1, fake("ours", "other", 1, 9.0, "basic"))]  # no quiet run: no row
    (row,) = bench.slowdowns(records)
    assert (row["ours slowdown"], row["torch slowdown"], row["load"]) == (1.5, 2.5, 1)
    assert row["slowdown ratio"] == pytest.approx(0.6) and row["slowdown ok"]
    assert row["loaded time ratio"] == pytest.approx(0.6)
    assert [r["planner"] for r in bench.ratios(records)] == ["basic"]  # quiet runs only


def test_jobs_repeat_every_measurement_at_each_load_and_the_load_runs():
    todo = bench.jobs(["lenet5"], ["basic"], [2], torch=True, mnist=False, loads=[0, 1])
    assert [(j.framework, j.load) for j in todo] == [("ours", 0), ("torch", 0), ("ours", 1),
                                                     ("torch", 1)]
    import psutil

    procs = bench.start_load(1)
    try:
        busy = psutil.Process(procs[0].pid)
        assert len(procs) == 1 and busy.cpu_affinity() == [max(psutil.Process().cpu_affinity())]
        assert busy.cpu_times().user > 0  # spinning since it started
    finally:
        bench.stop_load(procs)
    assert procs[0].poll() is not None and bench.start_load(0) == []


def test_best_rounds_keep_the_fastest_run_of_each_measurement():
    slow, fast = fake("torch", "m", 100, 2.0), fake("torch", "m", 90, 1.0)
    failed = {**fake("ours", "m", 1, 0.1, "basic"), "error": ["boom"]}
    ours = fake("ours", "m", 50, 3.0, "basic")
    assert bench.best_rounds([slow, failed, fast, ours]) == [fast, ours]


def test_contention_counts_only_other_processes():
    probe = bench.Contention()
    sum(i * i for i in range(200_000))  # our own work is not contention
    assert probe.cores() >= 0.0
    assert bench.wait_quiet(0) == 0.0


def test_mnist_rows_put_nntrainer_first():
    rows = bench.mnist_rows([fake("ours", "mnist", 3_000_000, 0.01, "nntrainer_v1")], 1_153_320)
    assert rows[0]["run"].startswith("NNTrainer") and rows[0]["arena / pools MB"] == 1.15332
    assert rows[1]["peak above baseline MB"] == 3.0 and len(rows) == 2


def test_nntrainer_pool_bytes_is_what_plan_prints():
    # NNTrainer's own pools for its MNIST INI: weight pool 46,776 + tensor pool 1,106,544
    assert bench.nntrainer_pool_bytes() == 46_776 + 1_106_544


@needs_torch
@pytest.mark.parametrize("model", ["lenet5", "resnet18_cifar", "transformer"])
def test_torch_twin_has_our_parameter_count_and_output(model):
    import torch

    from trainplan.experiments.torch_models import TORCH_MODELS
    from trainplan.experiments.torch_models import parameter_count as torch_count

    spec = TORCH_MODELS[model]()
    ours = build_training_graph(get_model(model, batch=1))
    assert torch_count(spec.module) == parameter_count(ours)
    assert ours.nodes[f"{ours.graph['layers'][0]['name']}:input"]["shape"][1:] == \
        spec.input_shape
    x = (torch.randint(0, spec.vocab, (2, *spec.input_shape)) if spec.vocab
         else torch.randn(2, *spec.input_shape))
    assert tuple(spec.module(x).shape) == (2, spec.classes)


@needs_torch
def test_torch_worker_runs_one_tiny_iteration():
    job = bench.Job("torch", "lenet5", None, 1)
    record = bench.run_job(job, bench.parse_args(TINY))
    assert "error" not in record, record
    assert record["parameters"] == 61_706 and record["finite"]
    assert {"api": "torch intra-op", "threads": 1} in record["thread_pools"]
    assert record["peak_rss_above_baseline"] > 0 and record["seconds_per_iteration"] > 0


def test_ours_swapping_under_a_fraction_of_the_lower_bound(tmp_path):
    """A swap job trains under its fraction of the lower bound, through to storage, and the
    table labels it apart from the plain runs."""
    result = bench.main(["--models", "lenet5", "--planners", "greedy_size", "--no-torch",
                         "--no-mnist", "--swap", "0.9:through", "--out",
                         str(tmp_path / "b.json"), *TINY])
    plain, swapped = result["records"]
    assert "error" not in swapped, swapped
    assert swapped["swap"] == "0.9:through" and swapped["swap_through"]
    assert swapped["budget_bytes"] == int(0.9 * swapped["lower_bound_bytes"])
    assert swapped["arena_bytes"] <= swapped["budget_bytes"] < plain["arena_bytes"]
    assert swapped["bytes_written_per_iteration"] > 0 < swapped["bytes_read_per_iteration"]
    label = bench._run_label(swapped)
    assert "0.9x lower bound" in label and "through to disk" in label
    assert bench._run_label(plain) == "greedy_size"
    assert len(bench.best_rounds(result["records"])) == 2


@pytest.mark.parametrize("spec", ["abc", "0", "-0.5", "0.6:disk"])
def test_a_malformed_swap_budget_is_refused_before_any_worker_runs(capsys, spec):
    with pytest.raises(SystemExit):
        bench.main(["--swap", spec, "--no-torch", "--no-mnist"])
    assert "FRACTION[:through]" in capsys.readouterr().err


def test_ours_recomputing_lowers_the_arena_without_storage(tmp_path):
    """A remat job recomputes instead of keeping: below the plain arena, nothing on storage,
    labelled apart; its lower bound is the recomputed graph's, beside the one without."""
    result = bench.main(["--models", "lenet5", "--planners", "greedy_size", "--no-torch",
                         "--no-mnist", "--remat", "greedy:0.7", "--out",
                         str(tmp_path / "b.json"), *TINY])
    plain, recomputed = result["records"]
    assert "error" not in recomputed, recomputed
    assert recomputed["remat"] == "greedy:0.7" and recomputed["recomputed_ops"] > 0
    assert recomputed["lower_bound_without_remat_bytes"] == plain["lower_bound_bytes"]
    assert recomputed["lower_bound_bytes"] < plain["lower_bound_bytes"]
    assert recomputed["arena_bytes"] < plain["arena_bytes"]
    assert "bytes_written_per_iteration" not in recomputed
    assert "remat greedy" in bench._run_label(recomputed)
    assert len(bench.best_rounds(result["records"])) == 2


@pytest.mark.parametrize("spec", ["nosuch", "sqrt:0", "greedy:x", "none"])
def test_a_malformed_remat_run_is_refused_before_any_worker_runs(capsys, spec):
    with pytest.raises(SystemExit):
        bench.main(["--remat", spec, "--no-torch", "--no-mnist"])
    assert "NAME[:FRACTION]" in capsys.readouterr().err
