"""Swapping, simulated against measured: the line-up machinery, exact bytes per iteration,
the transfer CPU the simulator charges, and fitted efficiencies that stay efficiencies.

Fast: lenet5 at batch 4 swapping through to storage in a temporary directory for a few
iterations. The accuracy claims (seconds within 15%, stalls within 25% or 50 ms) are the
benchmark's: `python -m trainplan.experiments.bench_predict --swap` (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.simulator.conftest import make_device
from trainplan.experiments.cli import main
from trainplan.experiments.measured import compare
from trainplan.experiments.swap_lineup import (
    SETTLE_ITERATIONS,
    bytes_lined_up,
    eo_lined_up,
    simulated_iteration,
    storage_model_alone,
    storage_seen,
    transfers_lined_up,
)
from trainplan.planner.build import build_training_graph
from trainplan.planner.plan_training import plan_training
from trainplan.planner.zoo import get_model
from trainplan.runtime.measure import TRANSFER_COLUMNS, measure
from trainplan.runtime.session import SessionOptions
from trainplan.simulator.calibrate_runtime import fit_runtime, predicted_seconds
from trainplan.simulator.device import DeviceProfile
from trainplan.simulator.engine import Step, Transfer, run_engine
from trainplan.simulator.simulate import simulate

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def swapped(tmp_path_factory):
    """lenet5 at batch 4 under a budget halfway to its lower bound, run through to storage."""
    graph = build_training_graph(get_model("lenet5", batch=4))
    bounds = plan_training(graph).bounds
    plan = plan_training(graph, budget=(bounds.min_budget_bytes + bounds.lower_bound_bytes) // 2,
                         swap="belady")
    options = SessionOptions(swap_dir=str(tmp_path_factory.mktemp("swap")), swap_through=True)
    return graph, plan, measure(graph, plan, options, warmup=1, iterations=3)


def test_bytes_read_and_written_are_exactly_equal_every_iteration(swapped):
    graph, plan, m = swapped
    tl = simulate(graph, plan, make_device(), iterations=SETTLE_ITERATIONS)
    per_it = bytes_lined_up(tl, m.transfers, m.summary.iterations)
    assert len(per_it) == 3 and per_it["equal"].all()
    assert (per_it["bytes_read"] > 0).all() and (per_it["bytes_written"] > 0).all()
    # the plan's own transfers, counted independently of both
    assert per_it["bytes_read"].iloc[0] == sum(p.nbytes for p in plan.prefetches if p.read)
    assert per_it["bytes_written"].iloc[0] == sum(e.nbytes for e in plan.evictions if e.write)
    _, rec = compare(graph, m, make_device())
    assert (rec["bytes_read"], rec["bytes_written"]) == (
        rec["predicted_bytes_read"], rec["predicted_bytes_written"])


def test_every_measured_transfer_has_its_simulated_twin(swapped):
    graph, plan, m = swapped
    tr = m.transfers
    assert list(tr.columns) == TRANSFER_COLUMNS and len(tr)
    assert (tr["ready_s"] <= tr["start_s"]).all() and (tr["start_s"] <= tr["end_s"]).all()
    assert (tr["cpu_s"] >= 0).all()
    tl = simulate(graph, plan, make_device(), iterations=SETTLE_ITERATIONS)
    rows = transfers_lined_up(tl, m.events, tr)
    assert not rows[["predicted_bytes", "measured_bytes"]].isna().any().any()
    assert (rows["predicted_bytes"] == rows["measured_bytes"]).all()
    assert (rows["iterations"] == 3).all()
    # reads are issued before their EO's ops, writes after: each at the EO the plan says
    issued = {("read", p.buffer, p.start_eo) for p in plan.prefetches if p.read}
    issued |= {("write", e.buffer, e.after_eo) for e in plan.evictions if e.write}
    assert set(zip(rows["kind"], rows["tensor"], rows["issue_eo"], strict=True)) == issued


def test_the_line_up_of_a_timeline_with_itself_is_exact(swapped):
    """The simulator's own steady iteration, dressed as a measurement, lines up with zero
    difference: EOs, stalls, transfers and their times."""
    graph, plan, _ = swapped
    tl = simulate(graph, plan, make_device(read_lat=1e-3, write_lat=2e-3),
                  iterations=SETTLE_ITERATIONS)
    last = SETTLE_ITERATIONS - 1
    ev = tl.events[tl.events["iteration"] == last].assign(iteration=0)
    tr = tl.transfers[(tl.transfers["iteration"] == last) & ~tl.transfers["skipped"]]
    measured = pd.DataFrame({"iteration": 0, "tensor": tr["tensor"], "kind": tr["kind"],
                             "nbytes": tr["nbytes"], "issue_eo": tr["issue_eo"].astype(int),
                             "ready_s": tr["ready_s"], "start_s": tr["start_s"],
                             "end_s": tr["end_s"], "cpu_s": 0.0})
    rows = eo_lined_up(tl, ev)
    assert np.allclose(rows["predicted_compute_s"], rows["measured_compute_s"])
    assert np.allclose(rows["predicted_stall_s"], rows["measured_stall_s"])
    assert np.allclose(rows["predicted_ready_s"], rows["measured_ready_s"])
    assert rows["predicted_stall_s"].sum() > 0  # the storage is slow enough to stall
    trows = transfers_lined_up(tl, ev, measured)
    assert np.allclose(trows["predicted_start_s"], trows["measured_start_s"])
    assert np.allclose(trows["predicted_end_s"], trows["measured_end_s"])
    sim = simulated_iteration(tl)
    assert sim["stall_s"] == pytest.approx(rows["predicted_stall_s"].sum())


def test_timeline_measured_swapping_through_draws_the_storage_track(capsys, tmp_path):
    out = tmp_path / "swap.png"
    args = ["timeline", "--measured", "--model", "lenet5", "--batch", "4", "--budget",
            "900KB", "--swap", "belady", "--device", "raspberry-pi-4",
            "--measure-iterations", "2", "--swap-through", "--swap-dir", str(tmp_path),
            "--out", str(out), "--json"]
    assert main(args) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["bytes_read"] == rec["predicted_bytes_read"] > 0
    assert rec["bytes_written"] == rec["predicted_bytes_written"] > 0
    assert out.read_bytes().startswith(PNG)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["swap.png"]  # no swap file left
    assert main(["timeline", "--measured", "--model", "lenet5", "--batch", "4",
                 "--swap-through", "--out", str(out)]) == 2
    assert "plan that swaps" in capsys.readouterr().err


def test_a_transfers_cpu_lengthens_the_step_after_its_issue_stalled_or_not():
    cpu = DeviceProfile(**{**make_device().__dict__, "transfer_cpu_latency_s": 0.01,
                           "transfer_cpu_bandwidth": 1e8})
    steps = [Step(0, flops=1e8), Step(1, flops=1e8), Step(2, flops=1e8, reads=("w",))]
    writes = [Transfer("x", "write", 1_000_000, issue_eo=0)]  # 20 ms on the channel
    plain = run_engine(steps, writes, make_device())
    charged = run_engine(steps, writes, cpu)
    # the write is issued when EO 0 ends; EO 1 then pays its 100 ms + 20 ms of CPU
    assert charged.end[1] - charged.start[1] == pytest.approx(0.1 + 0.02)
    assert plain.end[1] - plain.start[1] == pytest.approx(0.1)
    assert charged.end[2] - charged.start[2] == pytest.approx(0.1)  # paid once
    # a read issued at EO 2, which waits 100 ms for it: the submission and the swap thread's
    # hand-offs are the computing thread's work, so the stall absorbs none of its 110 ms
    reads = [Transfer("w", "read", 10_000_000, issue_eo=2, deadline_eo=2)]
    run = run_engine(steps, reads, cpu)
    assert run.stall[2] == pytest.approx(0.1)
    assert run.end[2] - run.start[2] == pytest.approx(0.1 + 0.11)


def test_the_channel_idles_the_pickup_before_every_transfer():
    slow = DeviceProfile(**{**make_device().__dict__, "transfer_pickup_s": 0.005})
    steps = [Step(0, flops=1e6), Step(1, reads=("a", "b"))]
    reads = [Transfer("a", "read", 1_000_000, issue_eo=0, deadline_eo=1),  # 10 ms each
             Transfer("b", "read", 1_000_000, issue_eo=0, deadline_eo=1)]
    base, run = run_engine(steps, reads, make_device()), run_engine(steps, reads, slow)
    starts = [r["start_s"] for r in run.transfers]
    assert starts == pytest.approx([0.005, 0.005 + 0.01 + 0.005])
    assert run.stall[1] - base.stall[1] == pytest.approx(0.01)  # two pickups on the way


def test_fitted_efficiencies_are_fractions_of_the_measured_peak():
    """Ops timed faster than the profile's GEMM peak (a probe taken while the machine was
    busy) still fit efficiencies within (0, 1]: the excess goes elsewhere, never above 1."""
    fast = DeviceProfile(**{**make_device().__dict__,
                            "efficiency": {"gemm": 1.8, "conv": 2.2, "elementwise": 0.1,
                                           "optimizer": 0.2}, "op_overhead_s": 2e-5})
    rng = np.random.default_rng(0)
    classes = rng.choice(["gemm", "conv", "elementwise", "optimizer"], 200)
    ops = pd.DataFrame({"op_class": classes,
                        "flops": np.exp(rng.uniform(np.log(1e4), np.log(1e8), 200)),
                        "bytes_touched": 0, "gather_rows": 0})
    ops = ops.assign(seconds=predicted_seconds(ops, fast))
    fit = fit_runtime([ops], make_device())
    assert set(fit.fitted) == {"gemm", "conv", "elementwise", "optimizer"}
    assert all(0 < v <= 1 for v in fit.efficiency.values()), fit.efficiency
    assert fit.efficiency["gemm"] == 1.0 == fit.efficiency["conv"]
    assert fit.efficiency["elementwise"] == pytest.approx(0.1, rel=0.05)


def test_measured_op_times_replace_the_profiles_to_judge_the_storage_alone(swapped):
    graph, plan, m = swapped
    steps = [Step(0, flops=1e8, name="a"), Step(1, flops=1e8, name="b")]
    run = run_engine(steps, [], make_device(), op_seconds={"b": 0.5})
    assert list(run.end - run.start) == pytest.approx([0.1, 0.5])
    alone = storage_model_alone(graph, plan, make_device(), m.events)
    took = (m.events["end_s"] - m.events["start_s"]).groupby(m.events["op"]).median()
    assert alone["compute_s"] == pytest.approx(took.sum())  # one op per EO: every op once
    assert (alone["bytes_read"], alone["bytes_written"]) == (
        m.summary.bytes_read, m.summary.bytes_written)


def test_the_storage_a_run_saw_is_fitted_to_its_own_transfers():
    sizes = np.array([1000, 1000, 100_000, 100_000, 1_000_000])
    took = 0.002 + sizes / 1e8
    rows = pd.DataFrame({"kind": ["write"] * 5, "nbytes": sizes, "start_s": 0.0,
                         "end_s": took})
    seen = storage_seen(rows)
    assert seen["write_latency"] == pytest.approx(0.002) and seen["write_bandwidth"] == (
        pytest.approx(1e8))
    assert "read_latency" not in seen  # nothing was read
