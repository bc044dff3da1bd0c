"""The measured timeline (trainplan.runtime.measure), the runtime calibration fit and the overlay.

Fast: tiny graphs, a few iterations. The fit is checked on synthetic timings made by the
simulator's own formula from known efficiencies, which it must recover.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.simulator.conftest import make_device
from trainplan.experiments.cli import main
from trainplan.experiments.plot_measured import lined_up, plot_overlay
from trainplan.planner.build import build_training_graph
from trainplan.planner.order import execution_order
from trainplan.planner.plan_training import plan_training
from trainplan.planner.zoo import get_model
from trainplan.runtime.measure import EVENT_COLUMNS, bytes_per_iteration, measure
from trainplan.runtime.session import SessionOptions
from trainplan.simulator.calibrate_runtime import fit_runtime, op_times, predicted_seconds, with_fit
from trainplan.simulator.device import (
    DeviceProfile,
    load_device,
    profile_document,
    profile_from_dict,
)
from trainplan.simulator.engine import Step, step_seconds
from trainplan.simulator.simulate import simulate

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def lenet4():
    return build_training_graph(get_model("lenet5", batch=4))


def _budget(graph) -> int:
    """Halfway between the smallest feasible swap budget and the lower bound."""
    bounds = plan_training(graph).bounds
    return (bounds.min_budget_bytes + bounds.lower_bound_bytes) // 2


def test_the_measured_timeline_has_the_simulator_columns_and_sums_to_the_wall(lenet4):
    m = measure(lenet4, plan_training(lenet4), warmup=1, iterations=5)
    ev, s = m.events, m.summary
    runtime_only = {"cpu_s", "threads", "rss_bytes"}
    assert list(ev.columns) == EVENT_COLUMNS and set(EVENT_COLUMNS) - runtime_only <= set(
        simulate(lenet4, m.plan, "raspberry-pi-4").events.columns)
    assert (ev["cpu_s"] >= 0).all() and ev["cpu_s"].sum() > 0
    eo = execution_order(lenet4, "nntrainer")
    assert len(ev) == 5 * len(set(eo.op_eo.values())) and s.iterations == 5
    for it, rows in ev.groupby("iteration"):
        took = (rows["end_s"] - rows["start_s"] + rows["stall_s"]).sum()
        wall = s.iteration_seconds[it]
        assert took == pytest.approx(wall, rel=1e-9)  # the rows tile the iteration
        ready = (rows["start_s"] - rows["stall_s"]).to_numpy()
        assert np.allclose(ready[1:], rows["end_s"].to_numpy()[:-1])
    assert (ev["rss_bytes"] > 0).all() and s.peak_rss_bytes >= s.arena_bytes > 0
    assert s.seconds_per_iteration == np.median(s.iteration_seconds)
    assert 0 < s.uninterrupted_seconds and s.stall_seconds == 0 == ev["bytes_read"].sum()


def test_a_swapped_run_measures_its_bytes_and_stalls(lenet4, tmp_path):
    plan = plan_training(lenet4, budget=_budget(lenet4))
    m = measure(lenet4, plan, SessionOptions(swap_dir=str(tmp_path)), warmup=1, iterations=2)
    per_it = m.events.groupby("iteration")[["bytes_read", "bytes_written", "stall_s"]].sum()
    assert (per_it["bytes_read"] > 0).all() and (per_it["bytes_written"] >= 0).all()
    assert (m.events["stall_s"] >= 0).all()
    # the summary counts each transfer in the iteration that issued it, however late it ends
    issued = bytes_per_iteration(m.transfers, 2)
    assert m.summary.bytes_read == int(issued["bytes_read"].median())
    assert per_it["bytes_read"].sum() <= issued["bytes_read"].sum()


def test_the_warm_up_and_iteration_counts_are_checked(lenet4):
    with pytest.raises(ValueError, match="iterations"):
        measure(lenet4, plan_training(lenet4), iterations=0)


def _synthetic_ops(device: DeviceProfile, n: int, seed: int) -> pd.DataFrame:
    """Ops of every class, some on the memory roof, timed by the simulator's formula."""
    rng = np.random.default_rng(seed)
    classes = rng.choice(["gemm", "conv", "elementwise", "optimizer"], n)
    flops = np.exp(rng.uniform(np.log(1e3), np.log(1e7), n))
    nbytes = flops * np.exp(rng.uniform(np.log(0.01), np.log(4.0), n))
    rows = np.where(np.isin(classes, ["conv", "elementwise"]) & (rng.random(n) < 0.5),
                    (flops / rng.uniform(20, 200, n)).astype(int), 0)
    ops = pd.DataFrame({"op_class": classes, "flops": flops, "bytes_touched": nbytes.astype(int),
                        "gather_rows": rows})
    noise = 1 + 0.002 * rng.standard_normal(n)
    return ops.assign(seconds=predicted_seconds(ops, device) * noise)


def test_the_fit_recovers_known_efficiencies_row_cost_and_overhead():
    truth = DeviceProfile(**{**make_device().__dict__, "op_overhead_s": 30e-6,
                             "gather_row_s": 12e-9,
                             "efficiency": {"gemm": 0.8, "conv": 0.4, "elementwise": 0.05,
                                            "optimizer": 0.1}})
    samples = [_synthetic_ops(truth, 120, seed) for seed in range(3)]
    fit = fit_runtime(samples, make_device())  # starts from other efficiencies, no overhead
    assert fit.fitted == ("gemm", "conv", "elementwise", "optimizer")
    for c, v in truth.efficiency.items():
        assert fit.efficiency[c] == pytest.approx(v, rel=0.03), c
    assert fit.op_overhead_s == pytest.approx(30e-6, rel=0.1)
    assert fit.gather_row_s == pytest.approx(12e-9, rel=0.1)
    assert max(abs(e) for e in fit.model_errors) < 0.01


def test_a_fitted_profile_round_trips_and_the_simulator_adds_the_overhead():
    fit = fit_runtime([_synthetic_ops(make_device(), 60, 0)], make_device())
    fitted = with_fit(load_device("raspberry-pi-4"), fit, name="pi-runtime", source="test")
    again = profile_from_dict(json.loads(fitted.to_json()))
    assert again.op_overhead_s == pytest.approx(fit.op_overhead_s, rel=1e-5)
    assert again.gather_row_s == pytest.approx(fit.gather_row_s, rel=1e-5, abs=1e-15)
    assert again.document["compute"]["op_overhead"]["unit"] == "us"
    assert again.document["compute"]["gather_row"]["unit"] == "ns"
    one = Step(0, op_class="gemm", flops=1e9, gather_rows=1000)
    costly = DeviceProfile(**{**again.__dict__, "gather_row_s": 5e-9})
    bare = DeviceProfile(**{**again.__dict__, "op_overhead_s": 0.0, "gather_row_s": 0.0})
    assert step_seconds([one], costly)[0] == pytest.approx(
        step_seconds([one], bare)[0] + again.op_overhead_s + 1000 * 5e-9)
    shipped = load_device("raspberry-pi-4")
    assert shipped.op_overhead_s == 0.0 == shipped.gather_row_s
    assert not {"op_overhead", "gather_row"} & set(profile_document(shipped)["compute"])


def test_op_times_lines_up_measured_rows_with_the_graph(mlp3_graph):
    m = measure(mlp3_graph, plan_training(mlp3_graph), warmup=0, iterations=2)
    table = op_times(mlp3_graph, m.events)
    assert len(table) == len(m.events) // 2 and (table["seconds"] > 0).all()
    cpu = op_times(mlp3_graph, m.events, clock="cpu")
    assert (cpu["op"] == table["op"]).all() and (cpu["seconds"] >= 0).all()
    with pytest.raises(ValueError, match="no measured time"):
        op_times(mlp3_graph, m.events[m.events["op"] != m.events["op"].iloc[0]])


def test_the_overlay_figure(lenet4, tmp_path):
    m = measure(lenet4, plan_training(lenet4), warmup=1, iterations=2)
    tl = simulate(lenet4, m.plan, "raspberry-pi-4")
    out = tmp_path / "overlay.png"
    fig = plot_overlay(tl, m.events, str(out), measured_seconds=m.summary.seconds_per_iteration)
    assert len(fig.axes) == 3
    rows = lined_up(tl, m.events)
    assert out.read_bytes().startswith(PNG) and [p.name for p in tmp_path.iterdir()] == [
        out.name]
    assert rows["predicted_s"].sum() == pytest.approx(tl.summary.iteration_seconds)


def test_timeline_measured_and_calibrate_runtime_commands(capsys, tmp_path):
    profile = tmp_path / "host.json"
    assert main(["calibrate", "--runtime", "--base", "raspberry-pi-4", "--models", "mlp",
                 "--batch", "4", "--measure-iterations", "2", "--out", str(profile),
                 "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["out"] == str(profile) and "mlp" in rec["calibration"]
    # efficiencies are fractions of the GEMM peak probed on the runtime's one BLAS thread
    fitted = load_device(str(profile))
    assert all(0 < v <= 1 for v in fitted.efficiency.values()), fitted.efficiency
    assert "1 BLAS thread" in fitted.document["compute"]["gemm_throughput"]["source"]
    fig = tmp_path / "m.png"
    assert main(["timeline", "--measured", "--model", "mlp", "--batch", "4", "--device",
                 str(profile), "--measure-iterations", "2", "--out", str(fig), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["predicted_s"] > 0 and out["measured_s"] > 0 and "error_pct" in out
    assert fig.read_bytes().startswith(PNG)
    assert main(["calibrate", "--runtime", "--base", "raspberry-pi-4", "--models", "lenet5"]) == 2
    assert "held out" in capsys.readouterr().err


def test_the_calibration_doctest():
    import doctest

    import trainplan.simulator.calibrate_runtime as module

    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
