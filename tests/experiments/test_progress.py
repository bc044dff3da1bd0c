"""The solver's progress bar: its elapsed time moves while a planner searches, and it stays off
stderr when not asked for; plan reports the solver's figures in real wall-clock seconds."""

from __future__ import annotations

import io
import json
import time

from tqdm import tqdm

from trainplan.experiments.cli import main
from trainplan.experiments.progress import TICK_SECONDS, solving, ticking


def test_the_bar_moves_while_the_body_runs_without_steps():
    out = io.StringIO()
    with tqdm(desc="solving", file=out, bar_format="{desc}: {elapsed}") as bar, ticking(bar):
        time.sleep(6 * TICK_SECONDS)
    frames = [f for f in out.getvalue().split("\r") if f.strip()]
    assert len(frames) >= 4  # refreshed by the timer thread, not by any update


def test_a_disabled_bar_prints_nothing(capsys):
    with solving("exact", 5, enabled=False):
        time.sleep(2 * TICK_SECONDS)
    assert capsys.readouterr().err == ""


def test_searching_planners_report_status_bound_gap_and_wall_seconds(capsys):
    began = time.perf_counter()
    assert main(["plan", "--model", "mlp", "--batch", "4", "--planner", "exact",
                 "--time-limit", "5", "--json"]) == 0
    wall = time.perf_counter() - began
    rec = json.loads(capsys.readouterr().out)
    assert rec["status"] and rec["optimal"] is not None
    assert rec["best_bound_bytes"] is not None and rec["gap"] is not None
    assert 0 < rec["solve_seconds"] <= wall
    if rec["optimal"]:
        assert rec["gap"] == 0 and rec["best_bound_bytes"] <= rec["arena_bytes"]
