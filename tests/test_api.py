"""The notebook API: ``import trainplan as tp`` stays light, gives the documented entry points
with short reprs, draws into given Axes, and its tour (docs/examples/api_tour.py) runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import trainplan as tp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOUR = os.path.join(ROOT, "docs", "examples", "api_tour.py")


def test_import_trainplan_loads_no_numerical_library():
    code = ("import sys, trainplan; heavy = [m for m in ('numpy', 'pandas', 'networkx', "
            "'matplotlib', 'ortools') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    assert out.strip() == "[]"


def test_the_documented_entry_points_are_there():
    with open(os.path.join(ROOT, "docs", "api.md"), encoding="utf-8") as fh:
        doc = fh.read()
    for name in ("graph", "plan", "simulate", "compare", "train", "measure", "trace", "buffers",
                 "c_header", "plot_timeline", "plot_measured", "models", "devices",
                 "planners"):
        assert callable(getattr(tp, name)) and f"tp.{name}(" in doc, name
        assert name in dir(tp)
    with pytest.raises(AttributeError):
        tp.no_such_function  # noqa: B018


@pytest.fixture(scope="module")
def lenet():
    g = tp.graph("lenet5", batch=4)
    plan = tp.plan(g, budget=int(0.8 * tp.plan(g).bounds.lower_bound_bytes))
    return g, plan, tp.simulate(g, plan, "smartwatch", iterations=2)


def test_records_have_short_reprs(lenet):
    g, plan, tl = lenet
    report = tp.train(g, plan, iterations=2)
    comparison = tp.compare("mlp", ["basic", "greedy_size"], batch=4)
    for value in (plan, tl, tl.summary, report, comparison):
        text = repr(value)
        assert "\n" not in text and len(text) < 400, text
    assert plan.swapped and "swap belady" in repr(plan)
    assert list(comparison.table["planner"]) == ["basic", "greedy_size"]
    assert report.epochs[0]["iterations"] == 2 == report.iterations


def test_sizes_take_units_and_the_device_guides_the_optimal_planner(lenet):
    g = lenet[0]
    bound = tp.plan(g).bounds.lower_bound_bytes
    plan = tp.plan(g, budget=f"{bound * 0.8 / 2**20:.3f}MiB", swap="optimal", time_limit=2,
                   device="smartwatch")
    assert plan.valid and plan.provenance.swap_requested == "optimal"
    assert plan.arena_bytes <= plan.budget_bytes


def test_plots_draw_into_the_axes_given_and_return_their_figure(lenet):
    tl = lenet[2]
    fig, axes = plt.subplots(2, 1)
    assert tp.plot_timeline(tl, ax=axes) is fig and axes[1].get_yticklabels()
    fig1, ax = plt.subplots()
    assert tp.plot_timeline(tl, ax=ax, x="eo") is fig1 and ax.get_xlabel().startswith("exec")
    fig2, ax = plt.subplots()
    comparison = tp.compare("mlp", ["basic", "greedy_size", "best_fit"], batch=4)
    assert comparison.plot(ax=ax) is fig2 and ax.get_legend() is not None
    whole = tp.compare(["mlp", "lenet5"], ["basic"], batch=4).plot()
    assert len(whole.axes) == 4
    with pytest.raises(Exception, match="draws one model"):
        tp.compare(["mlp", "lenet5"], ["basic"], batch=4).plot(ax=ax)
    plt.close("all")


def test_identical_planner_curves_share_one_line():
    import pandas as pd

    from trainplan.experiments.plot_compare import same_curves

    rows = pd.DataFrame({"planner": ["a"] * 3 + ["b"] * 3 + ["c"] * 3,
                         "in_use_bytes": [1, 2, 3, 1, 2, 3, 1, 2, 4]})
    assert [(p, list(y)) for p, y in same_curves(rows)] == [(["a", "b"], [1, 2, 3]),
                                                          (["c"], [1, 2, 4])]


def test_a_trace_of_a_simulation_and_a_measurement(lenet, tmp_path):
    g, plan, tl = lenet
    m = tp.measure(g, plan, iterations=1)
    assert "\n" not in repr(m) and len(repr(m)) < 300
    doc = tp.trace(tl, str(tmp_path / "t.json"), measured=m)
    assert json.loads((tmp_path / "t.json").read_text()) == doc
    assert {e["pid"] for e in doc["traceEvents"]} == {1, 2}
    fig, ax = plt.subplots()
    assert tp.plot_measured(tp.simulate(g, plan, "smartwatch"), m, ax=ax) is fig
    plt.close("all")


def test_the_api_tour_runs(tmp_path):
    result = subprocess.run([sys.executable, TOUR, str(tmp_path)], capture_output=True,
                            text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path)) == ["lenet5_buffers.csv", "lenet5_plan.h",
                                            "lenet5_trace.json", "tour.png"]
    assert "TrainingPlan(lenet5" in result.stdout and "swap belady" in result.stdout
