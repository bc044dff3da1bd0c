"""Sweeps on Dask: rows as a direct call makes them, the same table on the embedded cluster and
through a real scheduler with two workers on 127.0.0.1, reruns that skip what is done, a
worker killed and a sweep interrupted mid-way without a task lost or written twice."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest

from trainplan.experiments.cli import main
from trainplan.experiments.sweep import comparable, run_sweep
from trainplan.experiments.sweep_grid import expand_grid, grid_toml
from trainplan.experiments.sweep_store import (
    PARTS,
    RESULTS,
    load_sweep,
    result_files,
    write_part,
)
from trainplan.experiments.sweep_task import VOLATILE, run_task

pytest.importorskip("distributed")
pytest.importorskip("pyarrow")

GRID = {"grid": [
    {"model": ["mlp", "lenet5", "mnist.ini"], "batch": [1, 2],
     "offsets": ["nntrainer_v1", "best_fit", "greedy_size"]},
    {"model": ["lenet5"], "batch": [2], "budget_fraction": [0.95, 0.8, 0.5],
     "swap": ["belady", "lookahead", "optimal"], "time_limit": 0.05},
    {"model": ["mnist.ini"], "batch": [2, 4], "iterations": [2], "reference": True,
     "budget_fraction": ["none", 0.95], "seed": [0, 1]},
]}


@pytest.fixture(scope="module")
def tasks():
    return expand_grid(GRID, origin="test grid")


@pytest.fixture(scope="module")
def embedded(tasks, tmp_path_factory):
    """The grid run once on the default embedded cluster (two processes here)."""
    out = str(tmp_path_factory.mktemp("embedded"))
    report = run_sweep(tasks, out, jobs=2, progress=False)
    return out, report, load_sweep(out)


def test_one_row_per_task_with_its_figures(tasks, embedded):
    _, report, frame = embedded
    assert report["ran"] == report["tasks"] == report["rows"] == len(tasks) == 35
    assert report["lost"] == 0 and report["already_done"] == 0
    assert sorted(frame.task_hash) == sorted(t.key for t in tasks)
    ok = frame[frame.error.isna()]
    assert ok.verified.all() and ok.valid.all()
    unbudgeted = ok[ok.budget_bytes.isna()]
    assert len(unbudgeted) == 18 + 4
    assert (unbudgeted.arena_bytes >= unbudgeted.lower_bound_bytes).all()
    assert (ok.sim_total_seconds > 0).all()
    # a budget under the working set of one EO fails by name, with the bytes it needs
    failed = frame[frame.error.notna()]
    assert report["failed"] == len(failed) == 3
    assert set(failed.error_type) == {"Infeasible"}
    assert (failed.budget_fraction == 0.5).all() and (failed.needed_bytes > 0).all()
    # under a budget the arena fits it
    swapped = ok[ok.budget_bytes.notna()]
    assert len(swapped) == 6 + 4 and (swapped.peak_resident_bytes <= swapped.budget_bytes).all()
    # planned and swapped training ends on the reference run's bits
    trained = frame[frame.iterations > 0]
    assert len(trained) == 8 and trained.same_bits.all()
    assert (trained.train_weights_sha256 == trained.reference_weights_sha256).all()
    assert trained[trained.budget_fraction.notna()].train_total_bytes_written.gt(0).all()


def test_rows_equal_a_direct_call(tasks, embedded):
    """The oracle: run_task called here, in this process, gives the rows the workers wrote."""
    _, _, frame = embedded
    picked = [tasks[0], tasks[-1], next(t for t in tasks if t.axes["swap"] == "optimal"
                                        and t.axes["budget_fraction"] == 0.95)]
    direct = comparable(pd.DataFrame([run_task(t) for t in picked]))
    stored = comparable(frame[frame.task_hash.isin([t.key for t in picked])])
    for column in direct.columns:
        a, b = direct[column].tolist(), stored[column].tolist()
        assert [None if pd.isna(x) else x for x in a] == [None if pd.isna(x) else x
                                                          for x in b], column


def test_rerun_skips_every_finished_task(tasks, embedded):
    out, _, frame = embedded
    report = run_sweep(tasks, out, jobs=1, progress=False)
    assert report["ran"] == 0 and report["already_done"] == len(tasks)
    pd.testing.assert_frame_equal(load_sweep(out), frame)


def test_distributed_sweep_equals_embedded(tasks, embedded, local_dask, tmp_path):
    report = run_sweep(tasks, str(tmp_path), scheduler=local_dask.address, progress=False)
    assert report["ran"] == len(tasks) and report["lost"] == 0
    pd.testing.assert_frame_equal(comparable(load_sweep(str(tmp_path))),
                                  comparable(embedded[2]))


@pytest.mark.slow
def test_thousand_tasks_identical_embedded_and_through_a_scheduler(local_dask, tmp_path):
    """The acceptance grid (experiments/bench_sweep.py measures it): 1,440 small tasks."""
    from trainplan.experiments.bench_sweep import bench_tasks

    tasks = bench_tasks()
    assert len(tasks) >= 1000
    here, there = str(tmp_path / "embedded"), str(tmp_path / "scheduler")
    assert run_sweep(tasks, here, jobs=2, progress=False)["ran"] == len(tasks)
    assert run_sweep(tasks, there, scheduler=local_dask.address, progress=False)["ran"] == \
        len(tasks)
    pd.testing.assert_frame_equal(comparable(load_sweep(here)), comparable(load_sweep(there)))


def test_worker_killed_mid_sweep_loses_nothing(tasks, embedded, start_dask, tmp_path):
    """SIGKILL one of two workers once rows are being written: Dask reruns its tasks on the
    other; every task is written once, and a rerun finds nothing left to do."""
    dask = start_dask(tmp_path)
    out = str(tmp_path / "out")
    result = {}
    sweep = threading.Thread(target=lambda: result.update(run_sweep(
            tasks, out, scheduler=dask.address, progress=False, batch_rows=2,
            batch_seconds=0.5)))
    sweep.start()
    deadline = time.monotonic() + 120
    while not _rows_on_disk(out) and time.monotonic() < deadline:
        time.sleep(0.05)
    at_kill = _rows_on_disk(out)
    dask.workers[0].send_signal(signal.SIGKILL)
    sweep.join(300)
    assert not sweep.is_alive()
    assert 0 < at_kill < len(tasks)
    assert result["ran"] == len(tasks) and result["lost"] == 0  # each written once
    again = run_sweep(tasks, out, scheduler=dask.address, progress=False)
    assert again["ran"] == 0 and again["already_done"] == len(tasks)
    pd.testing.assert_frame_equal(comparable(load_sweep(out)), comparable(embedded[2]))


def test_interrupted_sweep_keeps_finished_rows_and_resumes(tasks, embedded, local_dask,
                                                          tmp_path):
    """Ctrl-C in `trainplan sweep`: it stops with 130 keeping every finished row; the rerun
    runs only the rest and the table is the uninterrupted one."""
    grid = tmp_path / "grid.toml"
    grid.write_text(grid_toml(GRID["grid"]))
    out = str(tmp_path / "out")
    proc = subprocess.Popen([sys.executable, "-m", "trainplan", "sweep", str(grid), "--out",
                             out, "--scheduler", local_dask.address, "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    seen = _wait_for_progress(proc, at_least=5, seconds=180)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err.decode()[-2000:]
    assert "interrupted" in err.decode()
    kept = len(load_sweep(out))
    assert seen <= kept < len(tasks)
    report = run_sweep(tasks, out, scheduler=local_dask.address, progress=False)
    assert report["already_done"] == kept and report["ran"] == len(tasks) - kept
    pd.testing.assert_frame_equal(comparable(load_sweep(out)), comparable(embedded[2]))


def test_query_through_duckdb(embedded, capsys):
    out, _, frame = embedded
    sql = ("SELECT model, count(*) AS n, min(arena_bytes) AS least FROM results "
           "WHERE error IS NULL GROUP BY model ORDER BY model")
    assert main(["sweep", out, "--query", sql, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    ok = frame[frame.error.isna()]
    assert [r["model"] for r in rows] == sorted(ok.model.unique())
    for r in rows:
        assert r["n"] == (ok.model == r["model"]).sum()
        assert r["least"] == ok[ok.model == r["model"]].arena_bytes.min()
    assert main(["sweep", out, "--query", "SELECT nope FROM results"]) == 2
    assert "--query:" in capsys.readouterr().err


def test_parts_are_read_once_each_and_compacted(tmp_path, embedded):
    out = str(tmp_path)
    rows = [{k: (None if pd.isna(v) else v) for k, v in r.items()}
            for r in embedded[2].head(3).to_dict("records")]
    write_part(out, rows[:2])
    write_part(out, rows[1:])  # a row on disk twice, as after a crash mid-compaction
    assert len(result_files(out)) == 2
    frame = load_sweep(out)
    assert sorted(frame.task_hash) == sorted(r["task_hash"] for r in rows)
    from trainplan.experiments.sweep_store import compact
    assert compact(out) == 3
    assert result_files(out) == [os.path.join(out, RESULTS)]
    assert not os.listdir(os.path.join(out, PARTS))
    assert list(load_sweep(out).columns) == list(frame.columns)


def test_volatile_columns_are_only_measurements():
    assert set(VOLATILE) == {"seconds", "solve_seconds", "train_iteration_seconds",
                             "train_total_seconds", "train_total_stall_seconds",
                             "train_peak_rss_bytes", "train_baseline_rss_bytes",
                             "train_peak_rss_above_baseline_bytes", "train_thread_policy"}


def _rows_on_disk(out: str) -> int:
    try:
        return len(load_sweep(out))
    except Exception:  # noqa: BLE001 -- nothing written yet
        return 0


def _wait_for_progress(proc: subprocess.Popen, at_least: int, seconds: float) -> int:
    """Read the progress bar from stderr until it counts ``at_least`` tasks; the count."""
    os.set_blocking(proc.stderr.fileno(), False)
    text, deadline = b"", time.monotonic() + seconds
    while time.monotonic() < deadline:
        chunk = proc.stderr.read()
        text += chunk or b""
        counts = [int(n) for n in re.findall(rb"\| *(\d+)/\d+ \[", text)]
        if counts and counts[-1] >= at_least:
            os.set_blocking(proc.stderr.fileno(), True)
            return counts[-1]
        if proc.poll() is not None:
            raise AssertionError(f"sweep ended early: {text.decode()[-2000:]}")
        time.sleep(0.05)
    raise AssertionError(f"no progress within {seconds} s: {text.decode()[-2000:]}")

