"""A swapped iteration, simulated and measured, lined up EO by EO and transfer by transfer.

The simulator runs a few iterations (swap state — the channel's clock, the copies storage
holds — settles after the first) and its last one is the steady state the runtime's recorded
iterations (after a warm-up) are compared with. Times count from the iteration's start: the
ready time of its first EO, simulated and measured alike. Per EO: compute (the op's own time)
and stall; per transfer, matched by kind, buffer and issuing EO (the k-th such in an
iteration with the k-th): start and end, predicted and measured (the median over the recorded
iterations). Byte counts are per iteration, each transfer in the iteration that issued it.
"""

from __future__ import annotations

import dataclasses

import networkx as nx
import numpy as np
import pandas as pd

from trainplan.planner.split import graph_for
from trainplan.planner.training_plan import TrainingPlan
from trainplan.runtime.measure import bytes_per_iteration
from trainplan.simulator.calibrate_storage import fit_line
from trainplan.simulator.device import DeviceProfile
from trainplan.simulator.simulate import graph_steps, plan_transfers
from trainplan.simulator.timeline import Timeline, simulate_events

KEY = ["kind", "tensor", "issue_eo", "nth"]
# the simulator runs this many iterations; the last is the steady state
SETTLE_ITERATIONS = 3


def steady_iteration(predicted: Timeline) -> int:
    """The simulated iteration compared with the measured ones: the last."""
    return int(predicted.summary.iterations) - 1


def _iteration_starts(events: pd.DataFrame) -> pd.Series:
    """Per iteration, when its first EO became ready (start less stall)."""
    return (events["start_s"] - events["stall_s"]).groupby(events["iteration"]).min()


def simulated_iteration(predicted: Timeline) -> dict:
    """The steady iteration's seconds (its start to the next's), stall and bytes moved."""
    ev, it = predicted.events, steady_iteration(predicted)
    starts = _iteration_starts(ev)
    rows = ev[ev["iteration"] == it]
    end = float(rows["end_s"].max())
    tr = predicted.transfers
    moved = tr[(tr["iteration"] == it) & ~tr["skipped"].astype(bool)]
    return {"seconds": end - float(starts[it]), "stall_s": float(rows["stall_s"].sum()),
            "compute_s": float((rows["end_s"] - rows["start_s"]).sum()),
            "bytes_read": int(moved.loc[moved["kind"] == "read", "nbytes"].sum()),
            "bytes_written": int(moved.loc[moved["kind"] == "write", "nbytes"].sum())}


def eo_lined_up(predicted: Timeline, measured: pd.DataFrame) -> pd.DataFrame:
    """One row per EO with ops: step, layer, predicted and measured compute and stall seconds
    (measured: medians over the recorded iterations) and the predicted and measured ready
    times from the iteration's start."""
    ev = predicted.events
    ev = ev[ev["iteration"] == steady_iteration(predicted)]
    origin = float((ev["start_s"] - ev["stall_s"]).min())
    pred = ev.assign(compute=ev["end_s"] - ev["start_s"],
                     ready=ev["start_s"] - ev["stall_s"] - origin).groupby("eo").agg(
        step=("step", "first"), layer=("layer", "first"), op_class=("op_class", "first"),
        predicted_compute_s=("compute", "sum"), predicted_stall_s=("stall_s", "sum"),
        predicted_ready_s=("ready", "min"))
    starts = _iteration_starts(measured)
    m = measured.assign(compute=measured["end_s"] - measured["start_s"],
                        ready=measured["start_s"] - measured["stall_s"]
                        - measured["iteration"].map(starts))
    per = m.groupby(["iteration", "eo"]).agg(compute=("compute", "sum"),
                                             stall=("stall_s", "sum"), ready=("ready", "min"))
    med = per.groupby("eo").median().rename(columns={
        "compute": "measured_compute_s", "stall": "measured_stall_s",
        "ready": "measured_ready_s"})
    return pred.join(med, how="outer").reset_index()


def _numbered(frame: pd.DataFrame) -> pd.DataFrame:
    """``nth``: the count of earlier transfers of the same kind, buffer and issuing EO."""
    return frame.assign(nth=frame.groupby(["iteration", "kind", "tensor", "issue_eo"])
                        .cumcount())


def transfers_lined_up(predicted: Timeline, measured_events: pd.DataFrame,
                       measured_transfers: pd.DataFrame) -> pd.DataFrame:
    """One row per transfer of an iteration: kind, buffer, issuing EO, bytes (predicted and
    measured), and start and end from the iteration's start, predicted and measured (median
    over the recorded iterations). A transfer one side lacks has NaN on the other."""
    it = steady_iteration(predicted)
    tr = predicted.transfers
    tr = tr[(tr["iteration"] == it) & ~tr["skipped"].astype(bool)]
    ev = predicted.events
    origin = float(_iteration_starts(ev)[it])
    pred = _numbered(tr.assign(issue_eo=tr["issue_eo"].astype(int)))
    pred = pred.assign(predicted_start_s=pred["start_s"] - origin,
                       predicted_end_s=pred["end_s"] - origin,
                       predicted_bytes=pred["nbytes"])[
        [*KEY, "predicted_bytes", "predicted_start_s", "predicted_end_s"]]
    columns = [*KEY, "measured_bytes", "measured_start_s", "measured_end_s", "iterations"]
    if not len(measured_transfers):
        return pred.assign(**{c: np.nan for c in columns[len(KEY):]}).sort_values(
            ["predicted_start_s"]).reset_index(drop=True)
    starts = _iteration_starts(measured_events)
    mt = _numbered(measured_transfers)
    base = mt["iteration"].map(starts)
    mt = mt.assign(start=mt["start_s"] - base, end=mt["end_s"] - base)
    meas = mt.groupby(KEY).agg(measured_bytes=("nbytes", "median"),
                               measured_start_s=("start", "median"),
                               measured_end_s=("end", "median"),
                               iterations=("iteration", "nunique")).reset_index()
    out = pred.merge(meas, on=KEY, how="outer")
    return out.sort_values(["predicted_start_s", "measured_start_s"]).reset_index(drop=True)


def bytes_lined_up(predicted: Timeline, measured_transfers: pd.DataFrame,
                   iterations: int) -> pd.DataFrame:
    """Per recorded iteration, bytes read and written measured, beside the simulated steady
    iteration's; ``equal`` says whether both counts match exactly."""
    sim = simulated_iteration(predicted)
    out = bytes_per_iteration(measured_transfers, iterations).reset_index()
    out["predicted_bytes_read"] = sim["bytes_read"]
    out["predicted_bytes_written"] = sim["bytes_written"]
    out["equal"] = ((out["bytes_read"] == out["predicted_bytes_read"])
                    & (out["bytes_written"] == out["predicted_bytes_written"]))
    return out


def storage_model_alone(graph: nx.DiGraph, plan: TrainingPlan, device: DeviceProfile,
                        measured: pd.DataFrame) -> dict:
    """The storage model judged alone: the plan simulated with every op taking its measured
    median time (``measured``: a run's events, one op per EO as the nntrainer order has them),
    so what the computing cost on a shared machine leaves out; the transfers' toll on the
    computing is then in those times already, so the device charges none. Returns
    ``simulated_iteration``'s figures."""
    graph = graph_for(graph, plan)
    took = (measured["end_s"] - measured["start_s"]).groupby(measured["op"]).median()
    steps = graph_steps(graph, plan.order, plan.member_buffer(), plan.recomputes)
    device = dataclasses.replace(device, transfer_cpu_latency_s=0.0, transfer_cpu_bandwidth=0.0)
    tl = simulate_events(steps, plan_transfers(plan), device, iterations=SETTLE_ITERATIONS,
                         n_eo=plan.n_eo, op_seconds=took.to_dict())
    return simulated_iteration(tl)


def storage_seen(transfers: pd.DataFrame) -> dict:
    """The storage a run's own transfers saw: ``latency + bytes / bandwidth`` per kind fitted
    to the mean time of each size (a spike holds the channel as long as it lasts) (``measure_swap_storage``'s keys), to tell the storage
    model's error from the storage's drift between its timing and the run."""
    took = transfers.assign(seconds=transfers["end_s"] - transfers["start_s"])
    out = {}
    for kind in ("read", "write"):
        per_size = took[took["kind"] == kind].groupby("nbytes")["seconds"].mean()
        if len(per_size):
            latency, bandwidth = fit_line(per_size.index.to_numpy(float), per_size.to_numpy())
            out[f"{kind}_latency"], out[f"{kind}_bandwidth"] = latency, bandwidth
    return out
