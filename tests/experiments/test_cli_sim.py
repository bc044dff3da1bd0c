"""`trainplan simulate`, `timeline`, `devices`, `calibrate` and `compare --plot`."""

from __future__ import annotations

import json
import os

import pytest

from trainplan.experiments.cli import main
from trainplan.simulator.device import PROFILE_DIR, device_names

PNG = b"\x89PNG\r\n\x1a\n"


def run_json(capsys, argv):
    code = main(argv + ["--json"])
    out = capsys.readouterr()
    return code, (json.loads(out.out) if code == 0 else out.err)


def profile_doc(name: str) -> dict:
    with open(os.path.join(PROFILE_DIR, f"{name}.json")) as fh:
        return json.load(fh)


def budget_between(capsys, model: str = "lenet5", batch: str = "4") -> str:
    """Halfway between the smallest feasible swap budget and the lower bound, in bytes."""
    _, plan = run_json(capsys, ["plan", "--model", model, "--batch", batch])
    _, swap = run_json(capsys, ["plan", "--model", model, "--batch", batch,
                                "--budget", str(plan["lower_bound_bytes"])])
    return str((swap["min_budget_bytes"] + plan["lower_bound_bytes"]) // 2)


def test_devices_lists_every_profile(capsys):
    code, rows = run_json(capsys, ["devices"])
    assert code == 0 and [r["device"] for r in rows] == device_names()
    assert {"ram_mib", "read_mb_s", "write_mb_s", "channel"} <= set(rows[0])


def test_simulate_prints_the_summary(capsys):
    code, out = run_json(capsys, ["simulate", "--model", "lenet5", "--batch", "4",
                                  "--device", "raspberry-pi-4", "--iterations", "2"])
    assert code == 0 and out["fits"] is True and out["iterations"] == 2
    for key in ("iteration_seconds", "total_compute_seconds", "total_stall_seconds",
                "peak_resident_bytes", "total_bytes_read", "total_bytes_written"):
        assert key in out
    _, plan = run_json(capsys, ["plan", "--model", "lenet5", "--batch", "4"])
    assert out["arena_bytes"] == plan["arena_bytes"]
    assert out["peak_resident_bytes"] == plan["peak_resident_bytes"]
    assert out["peak_live_bytes"] == plan["peak_live_bytes"]
    assert main(["simulate", "--model", "lenet5", "--batch", "4", "--device",
                 "raspberry-pi-4"]) == 0
    assert "iteration_seconds" in capsys.readouterr().out


def test_simulate_with_a_budget_swaps_and_stalls(capsys, tmp_path):
    out_json = tmp_path / "tl.json"
    budget = budget_between(capsys)
    code, out = run_json(capsys, ["simulate", "--model", "lenet5", "--batch", "4",
                                  "--device", "smartwatch", "--budget", budget,
                                  "--out", str(out_json)])
    assert code == 0 and out["budget_bytes"] == int(budget) and out["within_budget"] is True
    assert out["total_bytes_written"] > 0 and out["total_bytes_read"] > 0
    summary = json.loads(out_json.read_text())["summary"]
    assert summary["total_bytes_read"] == out["total_bytes_read"]


def test_a_plan_too_big_for_the_device_is_not_an_error(capsys, tmp_path):
    doc = profile_doc("smartwatch")
    doc["ram"], doc["reserved"] = "64 MiB", "60 MiB"
    tiny = tmp_path / "tiny.json"
    tiny.write_text(json.dumps(doc))
    code, out = run_json(capsys, ["simulate", "--model", "lenet5", "--batch", "64",
                                  "--device", str(tiny)])
    assert code == 0 and out["fits"] is False
    assert out["out_of_ram"]["available_bytes"] == 4 * 2**20 and out["out_of_ram"]["layer"]


def test_bad_devices_are_errors_that_name_the_problem(capsys, tmp_path):
    code, err = run_json(capsys, ["simulate", "--model", "mlp", "--device", "pi5"])
    assert code == 2 and "valid: " in err and "raspberry-pi-4" in err
    bad = tmp_path / "bad.json"
    doc = profile_doc("jetson-tx2")
    del doc["storage"]["read_latency"]
    bad.write_text(json.dumps(doc))
    code, err = run_json(capsys, ["simulate", "--model", "mlp", "--device", str(bad)])
    assert code == 2 and "storage.read_latency" in err


@pytest.mark.parametrize("x, suffix", [("time", "png"), ("eo", "svg")])
def test_timeline_writes_a_figure(capsys, tmp_path, x, suffix):
    fig = tmp_path / f"t.{suffix}"
    code, out = run_json(capsys, ["timeline", "--model", "lenet5", "--batch", "4", "--x", x,
                                  "--budget", budget_between(capsys), "--iterations", "2",
                                  "--out", str(fig)])
    assert code == 0 and out["figure"] == str(fig)
    data = fig.read_bytes()
    assert data.startswith(PNG) if suffix == "png" else b"<svg" in data[:400]
    assert [p.name for p in tmp_path.iterdir()] == [fig.name]  # no temporary left


def test_timeline_stacked_by_layer_and_a_bad_suffix(capsys, tmp_path):
    fig = tmp_path / "layers.png"
    assert main(["timeline", "--model", "mlp", "--batch", "4", "--stack", "layer",
                 "--device", "jetson-tx2", "--out", str(fig)]) == 0
    assert fig.read_bytes().startswith(PNG)
    capsys.readouterr()
    assert main(["timeline", "--model", "mlp", "--out", str(tmp_path / "t.jpg")]) == 2
    assert ".png, .svg or .pdf" in capsys.readouterr().err


def test_compare_plot(capsys, tmp_path):
    fig = tmp_path / "cmp.png"
    code, rows = run_json(capsys, ["compare", "--models", "mlp,lenet5", "--planners",
                                   "basic,nntrainer_v1,greedy_size", "--batch", "4",
                                   "--plot", str(fig)])
    assert code == 0 and len(rows) == 6 and fig.read_bytes().startswith(PNG)


def test_calibrate_writes_a_profile(capsys, tmp_path):
    out = tmp_path / "host.json"
    code, rec = run_json(capsys, ["calibrate", "--dir", str(tmp_path), "--storage", "8MiB",
                                  "--out", str(out)])
    assert code == 0 and rec["out"] == str(out) and rec["gemm_gflops"] > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["host.json"]
    code, sim = run_json(capsys, ["simulate", "--model", "mlp", "--batch", "4",
                                  "--device", str(out)])
    assert code == 0 and sim["device"] == "host"
