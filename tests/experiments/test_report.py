"""`trainplan report` (small): the Markdown and every figure written, each table rebuilt by
the query it prints from the rows it names, a rerun that sweeps nothing; figures from rows."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainplan.experiments import plot_sweep
from trainplan.experiments.cli import main
from trainplan.experiments.report import SECTIONS
from trainplan.experiments.sweep_store import load_sweep, query

pytest.importorskip("distributed")
pytest.importorskip("duckdb")

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report(tmp_path_factory, local_dask):
    out = str(tmp_path_factory.mktemp("report"))
    argv = ["report", "--out", out, "--size", "small", "--scheduler", local_dask.address,
            "--no-progress", "--json"]
    return out, argv


def test_small_report_writes_markdown_and_every_figure(report, capsys):
    out, argv = report
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    text = Path(out, "report.md").read_text()
    assert len(re.findall(r"^## \d+\. ", text, re.MULTILINE)) == len(SECTIONS)
    figures = re.findall(r"!\[[^]]*\]\((figures/[^)]+)\)", text)
    assert sorted(figures) == sorted(result["figures"]) and len(figures) >= 6
    for figure in figures:
        with open(os.path.join(out, figure), "rb") as fh:
            assert fh.read(8) == PNG
    assert "— no accuracy change" in result["claims"]["No accuracy change: the same bits"]
    assert result["tasks_run"] == result["rows"] == len(load_sweep(os.path.join(out, "sweep")))
    for name in ("grid-1.toml", "grid-2.toml"):
        assert os.path.getsize(os.path.join(out, name)) > 0


def test_each_table_is_its_printed_query_over_the_rows_it_names(report):
    out, _ = report
    text = Path(out, "report.md").read_text()
    sweep = os.path.join(out, "sweep")
    rows = load_sweep(sweep)
    parts = re.findall(r"From (\d+) rows .*?```sql\n(.*?)```\n\n(.*?)\n\n</details>", text,
                       re.DOTALL)
    assert len(parts) == len(SECTIONS)
    for count, sql, hashes in parts:
        named = [] if hashes == "(none)" else hashes.split()
        assert len(named) == int(count) > 0
        assert set(named) <= set(rows["task_hash"])
        where = re.search(r"WHERE (.*?)\)\n", sql).group(1)
        selected = query(sweep, f"SELECT task_hash FROM results WHERE {where}")
        assert sorted(selected["task_hash"]) == sorted(named)
        assert len(query(sweep, sql)) > 0  # the printed query runs as printed


def test_rerun_resumes_without_sweeping_again(report, capsys):
    _, argv = report
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["tasks_run"] == 0


@settings(deadline=None, max_examples=80)  # the first call imports pandas' machinery
@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=1, max_size=30))
def test_pareto_front_is_exactly_the_undominated_points(points):
    frame = pd.DataFrame(points, columns=["x", "y"])
    front = plot_sweep.pareto_front(frame, "x", "y")
    pairs = set(zip(frame.x, frame.y, strict=True))

    def dominated(p):
        return any(q != p and q[0] <= p[0] and q[1] <= p[1] for q in pairs)
    assert set(zip(front.x, front.y, strict=True)) == {p for p in pairs if not dominated(p)}
    assert list(front.x) == sorted(front.x) and list(front.y) == sorted(front.y, reverse=True)


def test_single_axes_figures_draw_into_a_given_axes(report):
    out, _ = report
    rows = load_sweep(os.path.join(out, "sweep"))
    ok = rows[rows.error.isna()]
    fig, ax = plt.subplots()
    for draw in (plot_sweep.draw_pareto, plot_sweep.plot_bytes_moved):
        ax.clear()
        assert draw(ok[ok.model == "lenet5.ini"], ax) is fig
        assert ax.get_xlabel() and ax.lines
    table = plot_sweep.planner_table(ok)
    assert plot_sweep.plot_planner_table(table, ax) is fig
    assert (table.ratio >= 1).all() and set(table.planner) >= {"basic", "nntrainer_v1"}
    plt.close(fig)
