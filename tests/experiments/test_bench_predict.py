"""experiments/bench_predict.py: interleaved rounds, pooled medians, the overlay figure."""

from __future__ import annotations

import json

import pytest

from trainplan.experiments import bench_predict as bench


def test_rounds_pool_every_iteration_against_one_prediction(tmp_path):
    out, figures = tmp_path / "predict.json", tmp_path / "figures"
    result = bench.main(["--profile", "raspberry-pi-4", "--models", "mlp", "--batch", "4",
                         "--rounds", "2", "--iterations", "2", "--min-seconds", "0",
                         "--out", str(out), "--figures", str(figures)])
    assert json.loads(out.read_text())["rounds"] == 2
    (row,) = result["results"]
    assert row["iterations"] == 4 and len(row["rounds_measured_s"]) == 2
    assert min(row["rounds_measured_s"]) <= row["measured_s"] <= max(row["rounds_measured_s"])
    assert row["error_pct"] == pytest.approx(100 * (row["predicted_s"] / row["measured_s"] - 1),
                                             abs=0.01)
    assert (figures / "predict_mlp.png").stat().st_size > 0


@pytest.mark.parametrize("seconds", ["-1", "nan", "1e9"])
def test_a_storage_window_out_of_range_is_refused(tmp_path, seconds, capsys):
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--swap", "--storage-seconds", seconds, "--out", str(tmp_path / "x.json")])
    assert exit_.value.code == 2 and "--storage-seconds" in capsys.readouterr().err


def test_a_held_out_model_cannot_calibrate(tmp_path):
    with pytest.raises(SystemExit):
        bench.main(["--models", "mlp", "--calibration-models", "mlp,lenet5",
                    "--out", str(tmp_path / "x.json")])


def test_a_swap_case_compares_the_medians_of_its_rounds(tmp_path):
    """Three rounds of lenet5 swapping through to storage, each predicted with the storage
    timed beside it: medians compared, every round listed, bytes checked in every round."""
    import argparse
    import statistics

    from trainplan.planner.plan_training import plan_training
    from trainplan.simulator.calibrate_storage import measure_transfer_interference
    from trainplan.simulator.device import load_device

    graph = bench.build("lenet5", 4)
    plan = plan_training(graph, budget=900_000, swap="belady")
    args = argparse.Namespace(swap_dir=str(tmp_path), swap_iterations=2, swap_min_seconds=0,
                              storage_seconds=0.05,
                              max_iterations=4, blas_threads=1, swap_fractions="0.4",
                              figures=str(tmp_path / "figures"))
    args.interference = [measure_transfer_interference(str(tmp_path), pairs=1, reps=5)]
    case = {"model": "lenet5", "swap": "belady", "fraction": 0.5, "budget_bytes": 900_000,
            "graph": graph, "plan": plan, "rounds": []}
    for _ in range(3):
        bench.measure_swap_case(case, args)
    rec = bench.predict_swap(case, load_device("raspberry-pi-4"), args)
    assert len(rec["rounds"]) == 3 and rec["bytes_equal"]
    for key in ("measured_s", "predicted_s", "stall_s", "predicted_stall_s"):
        assert rec[key] == pytest.approx(statistics.median(r[key] for r in rec["rounds"]),
                                         abs=1e-6)
    assert rec["error_pct"] == pytest.approx(100 * (rec["predicted_s"] / rec["measured_s"] - 1),
                                             abs=0.01)
    assert rec["within_15pct"] == (abs(rec["error_pct"]) <= 15)
    assert rec["storage"]["pickup"] > 0 and rec["transfers"] > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no swap file left behind
