"""Fit a host profile's op-class efficiencies, row and per-op overheads to measured op times.

`trainplan calibrate` measures the hardware (GEMM, copies, storage); the numpy runtime reaches
only a fraction of that GEMM rate, a different fraction per op class, pays a start-up per row of
its strided window copies (im2col, col2im, pooling taps: short rows on small feature maps) and
a fixed Python dispatch cost per op. This module fits those to op times the runtime measured on
calibration models (``trainplan.runtime.measure`` gives them; experiments/ runs it, since the simulator
does not import the runtime). The model is the simulator's own:
``seconds = max(flops · a[class], bytes / memory bandwidth) + rows · row + overhead`` with
``a[class] = 1 / (GEMM FLOP/s × efficiency[class])``. An efficiency is what its name says:
the fraction of the profile's GEMM throughput — a measured peak (`calibrate` times the best of
repeated 1024³ products; ``trainplan calibrate --runtime`` on the BLAS threads the runtime was
measured with) — that the class reaches, so the fit keeps it within (0, 1]: it solves for
``a[class] − 1 / peak >= 0``. Which ops sit on the memory roof depends
on ``a``, so the fit alternates: with the roof sides fixed the model is linear in ``a``, the
row cost and the overhead, solved by non-negative least squares; then every op's side is
re-decided. Residuals are divided by their model's measured iteration time, so every
calibration model weighs the same whatever its size.

>>> from trainplan.simulator.device import load_device
>>> pi = load_device("raspberry-pi-4")
>>> ops = pd.DataFrame({"op_class": ["gemm", "gemm", "conv", "conv", "elementwise"],
...                     "flops": [8e9, 8e8, 4.8e9, 4.8e9, 2e6], "bytes_touched": [0] * 5,
...                     "gather_rows": [0, 0, 0, 1e6, 0],  # 1 ms overhead each, 10 ns a row
...                     "seconds": [1.001, 0.101, 2.001, 2.011, 0.003]})
>>> fit = fit_runtime([ops], pi)
>>> {c: round(v, 3) for c, v in fit.efficiency.items()}, round(fit.op_overhead_s * 1e3, 3)
({'gemm': 1.0, 'conv': 0.3, 'elementwise': 0.125, 'optimizer': 0.25}, 1.0)
>>> round(fit.gather_row_s * 1e9, 3)
10.0
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import networkx as nx
import numpy as np
import pandas as pd

from trainplan.planner.order import execution_order
from trainplan.simulator.device import (
    OP_CLASSES,
    DeviceProfile,
    profile_document,
    profile_from_dict,
    roofline_seconds,
)
from trainplan.simulator.simulate import graph_steps
from trainplan.simulator.units import quantity

# The flops a class needs in the data, as a fraction of all, before its efficiency is fitted.
MIN_SHARE = 1e-4


@dataclass(frozen=True)
class RuntimeFit:
    """Fitted efficiencies (all classes; unfitted ones keep the base profile's), the per-op
    overhead and the cost of a strided window row in seconds, which classes the data
    determined, and how well the fit predicts each calibration model's total
    (``model_errors``: predicted / measured − 1)."""

    efficiency: dict[str, float]
    op_overhead_s: float
    gather_row_s: float
    fitted: tuple[str, ...]
    rounds: int
    model_errors: tuple[float, ...]

    def to_dict(self) -> dict:
        return asdict(self)


def op_times(graph: nx.DiGraph, measured: pd.DataFrame, order: str = "nntrainer", *,
             clock: str = "wall") -> pd.DataFrame:
    """Per op of ``graph``: class, flops, bytes touched, strided window rows and the median
    measured seconds over
    the recorded iterations, stall excluded: wall time (``end_s - start_s``) or, with
    ``clock="cpu"``, the ``cpu_s`` column. ``measured`` has one op per row (as the nntrainer
    order gives) and the columns ``op`` and those."""
    if clock not in ("wall", "cpu"):
        raise ValueError(f"clock is 'wall' or 'cpu', not {clock!r}")
    steps = graph_steps(graph, execution_order(graph, order))
    table = pd.DataFrame({"op": [s.name for s in steps], "eo": [s.eo for s in steps],
                          "op_class": [s.op_class for s in steps],
                          "flops": [s.flops for s in steps],
                          "bytes_touched": [s.bytes_touched for s in steps],
                          "gather_rows": [s.gather_rows for s in steps]})
    took = measured["cpu_s"] if clock == "cpu" else measured["end_s"] - measured["start_s"]
    secs = took.groupby(measured["op"]).median()
    missing = set(table["op"]) - set(secs.index)
    if missing:
        raise ValueError(f"no measured time for {len(missing)} op(s), e.g. {min(missing)!r}"
                         " (several ops in one EO? measure in the nntrainer order)")
    return table.assign(seconds=table["op"].map(secs).to_numpy(float))


def _nnls(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Non-negative least squares for a handful of unknowns: the best of every support."""
    best, best_x = np.inf, np.zeros(a.shape[1])
    for k in range(a.shape[1], 0, -1):
        for support in itertools.combinations(range(a.shape[1]), k):
            x_s = np.linalg.lstsq(a[:, support], b, rcond=None)[0]
            if (x_s < 0).any():
                continue
            x = np.zeros(a.shape[1])
            x[list(support)] = x_s
            r = float(np.sum((a @ x - b) ** 2))
            if r < best:
                best, best_x = r, x
    return best_x


def _design(ops: pd.DataFrame, classes: Sequence[str], on_roof: np.ndarray, bandwidth: float,
            overhead: bool, peak: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the linear model with the roof sides fixed: [flops by class, rows, 1] -> seconds
    less every op's time at the peak (the unknowns per class are seconds per flop beyond the
    peak's, so efficiencies stay <= 1); ops on the memory roof keep rows and overhead, their
    roof time leaves the target."""
    cols = [np.where((ops["op_class"] == c).to_numpy() & ~on_roof, ops["flops"], 0.0)
            for c in classes]
    at_peak = np.sum(cols, axis=0) / peak if cols else 0.0
    cols.append(ops["gather_rows"].to_numpy(float))
    if overhead:
        cols.append(np.ones(len(ops)))
    roof = np.where(on_roof, ops["bytes_touched"].to_numpy(float) / bandwidth, 0.0)
    return np.column_stack(cols), ops["seconds"].to_numpy(float) - roof - at_peak


def _rates(x: np.ndarray, classes: Sequence[str], peak: float) -> dict[str, float]:
    """Seconds per flop of each class: the peak's plus the fitted excess."""
    return {c: float(x[i]) + 1.0 / peak for i, c in enumerate(classes)}


def _solve(ops: pd.DataFrame, classes: Sequence[str], on_roof: np.ndarray, weight: np.ndarray,
           base: DeviceProfile, overhead: bool) -> tuple[dict[str, float], float, float, float]:
    """Seconds per flop by class, per row, overhead and weighted squared error, roof sides
    fixed."""
    bw = base.memory_bandwidth
    a, b = _design(ops, classes, on_roof, bw, overhead, base.gemm_flops)
    x = _nnls(a * weight[:, None], b * weight)
    rate = _rates(x, classes, base.gemm_flops)
    row = float(x[len(classes)])
    over = float(x[-1]) if overhead else 0.0
    per_op = ops["op_class"].map(lambda c: rate.get(c, 0.0)).to_numpy(float)
    pred = roofline_seconds(ops["flops"].to_numpy(float), ops["bytes_touched"].to_numpy(float),
                            ops["gather_rows"].to_numpy(float), per_op, bw, row, over)
    err = float(np.sum(((pred - ops["seconds"].to_numpy(float)) * weight) ** 2))
    return rate, row, over, err


def fit_runtime(samples: Sequence[pd.DataFrame], base: DeviceProfile, *, overhead: bool = True,
                max_rounds: int = 20) -> RuntimeFit:
    """Fit efficiencies (fractions of ``base``'s GEMM rate, within (0, 1], on its memory
    bandwidth), the cost of a strided window row and a per-op overhead to ``samples``: one
    ``op_times`` table per calibration model (without a ``gather_rows`` column, no op has
    any)."""
    ops = pd.concat(samples, keys=range(len(samples)), names=["sample"]).reset_index(0)
    if "gather_rows" not in ops:
        ops = ops.assign(gather_rows=0)
    totals = ops.groupby("sample")["seconds"].transform("sum").to_numpy(float)
    weight = 1.0 / np.maximum(totals, 1e-12)
    share = ops.groupby("op_class")["flops"].sum() / max(ops["flops"].sum(), 1.0)
    classes = [c for c in OP_CLASSES if share.get(c, 0.0) > MIN_SHARE]
    flops, nbytes = ops["flops"].to_numpy(float), ops["bytes_touched"].to_numpy(float)
    # alternate: solve with the roof sides fixed, re-decide them; keep the best round
    on_roof, best, rounds = np.zeros(len(ops), dtype=bool), None, 0
    for rounds in range(1, max_rounds + 1):
        rate, row, over, err = _solve(ops, classes, on_roof, weight, base, overhead)
        if best is None or err < best[-1]:
            best = (rate, row, over, err)
        per_op = ops["op_class"].map(lambda c, r=rate: r.get(c, 0.0)).to_numpy(float)
        now = nbytes / base.memory_bandwidth > flops * per_op
        if (now == on_roof).all():
            break
        on_roof = now
    rate, row, over, _ = best
    eff = dict(base.efficiency)
    eff.update({c: min(1.0, 1.0 / (base.gemm_flops * r)) for c, r in rate.items()})
    fit = RuntimeFit(eff, over, row, tuple(c for c in OP_CLASSES if c in rate), rounds, ())
    return RuntimeFit(**{**fit.to_dict(), "model_errors": tuple(model_errors(samples, base, fit))})


def predicted_seconds(ops: pd.DataFrame, device: DeviceProfile) -> np.ndarray:
    """Each op's seconds on ``device`` (the simulator's formula)."""
    rows = ops["gather_rows"].to_numpy(float) if "gather_rows" in ops else 0.0
    return roofline_seconds(ops["flops"].to_numpy(float), ops["bytes_touched"].to_numpy(float),
                            rows, ops["op_class"].map(device.seconds_per_flop).to_numpy(float),
                            device.memory_bandwidth, device.gather_row_s, device.op_overhead_s)


def model_errors(samples: Sequence[pd.DataFrame], base: DeviceProfile,
                 fit: RuntimeFit) -> list[float]:
    """Predicted / measured − 1 of each sample's total seconds under ``fit``."""
    device = with_fit(base, fit)
    return [float(predicted_seconds(s, device).sum() / s["seconds"].sum() - 1) for s in samples]


def with_fit(base: DeviceProfile, fit: RuntimeFit, *, name: str | None = None,
             source: str = "") -> DeviceProfile:
    """``base`` with the fitted efficiencies and overhead, its document saying where they
    came from."""
    doc = dict(base.document) if base.document else profile_document(base)
    compute = dict(doc["compute"])
    compute["efficiency"] = {c: float(f"{v:.6g}") for c, v in fit.efficiency.items()}
    compute["op_overhead"] = quantity(fit.op_overhead_s * 1e6, "us", source or None)
    compute["gather_row"] = quantity(fit.gather_row_s * 1e9, "ns", source or None)
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    compute["efficiency_source"] = (
        f"fitted to the numpy runtime's measured op times ({source or 'runtime'}, {when}): "
        f"classes {', '.join(fit.fitted) or 'none'}; the others kept from the base profile")
    notes = doc.get("notes", [])
    notes = [n for n in ([notes] if isinstance(notes, str) else notes)
             if not any(n.startswith(f"compute.efficiency.{c} ") for c in fit.fitted)]
    notes.append(f"compute.efficiency ({', '.join(fit.fitted)}), compute.gather_row and "
                 "compute.op_overhead fitted "
                 "to the numpy runtime's op times by `trainplan calibrate --runtime`; "
                 "memory_bandwidth is the hardware's copy bandwidth")
    doc = {**doc, "compute": compute, "name": name or doc["name"], "notes": notes}
    return profile_from_dict(doc, f"{doc['name']} (runtime-calibrated)")

