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


def test_a_held_out_model_cannot_calibrate(tmp_path):
    with pytest.raises(SystemExit):
        bench.main(["--models", "mlp", "--calibration-models", "mlp,lenet5",
                    "--out", str(tmp_path / "x.json")])
