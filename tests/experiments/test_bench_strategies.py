"""The strategy benchmark runs end to end on a small model and its rows say what it found."""

from __future__ import annotations

import json

from trainplan.experiments.bench_strategies import main


def test_strategies_benchmark_writes_rows_and_a_figure(tmp_path):
    out, fig = tmp_path / "s.json", tmp_path / "s.png"
    frame = main(["--models", "lenet5", "--batch", "8", "--devices", "raspberry-pi-4",
                  "--strategies", "swap,recompute,joint_greedy", "--points", "3",
                  "--time-limit", "2", "--out", str(out), "--plot", str(fig)])
    rows = json.loads(out.read_text())
    assert len(rows) == 9 and fig.stat().st_size > 10_000
    fits = frame[frame["fits"]]
    assert fits["valid"].all() and (fits["slowdown"] >= 0.99).all()
    swap = fits[fits["strategy"] == "swap"].set_index("budget_bytes")["slowdown"]
    joint = fits[fits["strategy"] == "joint_greedy"].set_index("budget_bytes")["slowdown"]
    assert (joint <= swap.reindex(joint.index) + 1e-9).all()  # joint tries swap-only too
