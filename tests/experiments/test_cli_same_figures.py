"""One vocabulary: `plan`, `simulate`, `timeline` and `train` on the same model, budget and
swap planner report the same peak_resident_bytes, arena_bytes and peak_live_bytes (and the
planner the plan used), as docs/glossary.md defines them."""

from __future__ import annotations

import json

import pytest

from trainplan.experiments.cli import main

FIGURES = ("arena_bytes", "peak_resident_bytes", "peak_live_bytes")


def run_json(capsys, argv):
    assert main(argv + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("swap", ["belady", "lookahead"])
def test_every_command_reports_the_plans_figures(capsys, tmp_path, swap):
    model = ["--model", "lenet5", "--batch", "4"]
    lower = run_json(capsys, ["plan", *model])["lower_bound_bytes"]
    minimum = run_json(capsys, ["plan", *model, "--budget", str(lower)])["min_budget_bytes"]
    options = [*model, "--budget", str((lower + minimum) // 2), "--swap", swap]
    plan = run_json(capsys, ["plan", *options])
    assert plan["peak_live_bytes"] > plan["peak_resident_bytes"]  # it swaps
    simulated = run_json(capsys, ["simulate", *options, "--device", "raspberry-pi-4"])
    timeline = run_json(capsys, ["timeline", *options, "--trace", str(tmp_path / "t.json")])
    trained = run_json(capsys, ["train", *options, "--iterations", "2", "--no-progress",
                                "--swap-dir", str(tmp_path)])
    for key in FIGURES:
        assert plan[key] == simulated[key] == timeline[key] == trained[key], key
    for key in ("planner", "swap"):
        assert plan[key] == simulated[key] == timeline[key] == trained[key], key
    assert plan["swap"] == swap
