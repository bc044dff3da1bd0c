"""One sweep task, a pure function of its Task: plan, validate, simulate, optionally train; one
flat row back, whatever happens (a failure is a row with its error, never an exception).

Solver work is deterministic — a fixed seed, one search worker, time limits in CP-SAT's
deterministic seconds where a planner offers them — and BLAS runs on one thread, so a row does
not depend on the load or on which worker ran it. Only the columns in ``VOLATILE`` (seconds
taken, memory measured) differ between runs.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict

import networkx as nx
from threadpoolctl import threadpool_limits

from trainplan import __version__
from trainplan.experiments.sweep_grid import Task, plan_keywords
from trainplan.planner.errors import TrainplanError
from trainplan.planner.training_plan import TrainingPlan

#: Columns measured rather than computed: they change from run to run.
VOLATILE = ("seconds", "solve_seconds", "train_iteration_seconds", "train_total_seconds",
            "train_total_stall_seconds", "train_peak_rss_bytes", "train_baseline_rss_bytes",
            "train_peak_rss_above_baseline_bytes", "train_thread_policy")
#: The columns that say which task a row is, before its axes.
IDENTITY = ("task_hash", "trainplan_version", "device_sha256", "model_sha256")
# plan.record() keys that the axes already hold, and those renamed beside the axes they echo
_RECORD_DROP = ("model", "batch", "order")
_RECORD_RENAME = {"planner": "offsets_used", "swap": "swap_used"}
_SUMMARY_DROP = ("model", "planner", "device", "order", "batch")
_GRAPHS: OrderedDict = OrderedDict()  # a worker's last built graphs: tasks often share one
_GRAPHS_KEPT = 8


def run_task(task: Task) -> dict:
    """The task's row: identity, axes, the plan's record, the simulated summary (``sim_``),
    the runtime's figures (``train_``, with ``iterations``), ``error`` when it failed, and the
    ``seconds`` it took."""
    began = time.perf_counter()
    row = {"task_hash": task.key, "trainplan_version": __version__,
           "device_sha256": task.device_sha256, "model_sha256": task.model_sha256,
           **task.columns()}
    try:
        with threadpool_limits(1):
            _execute(task, row)
        row["error"] = row["error_type"] = row["needed_bytes"] = None
    except Exception as exc:  # noqa: BLE001 -- any failure is this task's row, not the sweep's
        row.update(error=str(exc) or repr(exc), error_type=type(exc).__name__,
                   needed_bytes=getattr(exc, "needed_bytes", None))
    row["seconds"] = round(time.perf_counter() - began, 6)
    return row


def _execute(task: Task, row: dict) -> None:
    """Fill ``row`` stage by stage, so that a failure keeps what the stages before it found."""
    from trainplan.experiments.device_costs import device_costs
    from trainplan.planner.plan_training import plan_training
    from trainplan.planner.verify import verify_plan
    from trainplan.simulator.simulate import simulate

    a = task.axes
    graph = task_graph(task)
    budget = a["budget"]
    if a["budget_fraction"] is not None:
        budget = max(1, int(a["budget_fraction"] * lower_bound_bytes(graph, a["order"])))
    search = {"workers": 1}
    if "deterministic" in plan_keywords():
        search["deterministic"] = True
    # only the optimal swap planner reads a device's costs; the others plan alike anywhere
    costs = device_costs(task.device) if budget is not None and a["swap"] == "optimal" else None
    plan = plan_training(graph, budget=budget, costs=costs, **search, **task.plan_options())
    errors = verify_plan(graph, plan)
    row.update(plan_columns(plan))
    row.update(verified=not errors, verify_errors=json.dumps(errors[:5]) if errors else None)
    if errors:
        raise TrainplanError("the plan failed validation: " + "; ".join(errors[:3]))
    summary = simulate(graph, plan, task.device).summary.to_dict()
    row.update({f"sim_{k}": _flat(v) for k, v in summary.items() if k not in _SUMMARY_DROP})
    if a["iterations"]:
        row.update(_train(task, graph, plan))


def plan_columns(plan: TrainingPlan) -> dict:
    """The plan's record as row columns (lists as JSON text; names the axes use renamed)."""
    record = plan.record()
    return {_RECORD_RENAME.get(k, k): _flat(v) for k, v in record.items()
            if k not in _RECORD_DROP}


def _flat(value):
    """A value Parquet stores in one typed column: lists and dicts as JSON text."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, sort_keys=True) if value else None
    return value


def task_graph(task: Task) -> nx.DiGraph:
    """The task's training graph, built once per worker for all the tasks that share it."""
    from trainplan.planner.build import build_training_graph

    key = task.graph_key
    if key in _GRAPHS:
        _GRAPHS.move_to_end(key)
        return _GRAPHS[key]
    a = task.axes
    graph = build_training_graph(task.spec, batch=a["batch"], optimizer=a["optimizer"],
                                 freeze_until=a["freeze_until"], inplace=a["inplace"],
                                 compat=a["compat"])
    _GRAPHS[key] = graph
    while len(_GRAPHS) > _GRAPHS_KEPT:
        _GRAPHS.popitem(last=False)
    return graph


def lower_bound_bytes(graph: nx.DiGraph, order: str) -> int:
    """The most bytes live at once under ``order``: what ``budget_fraction`` is a fraction of."""
    from trainplan.planner.order import execution_order, lifespans, lower_bound

    eo = execution_order(graph, order)
    return lower_bound(lifespans(graph, eo), eo.n_eo)


def _train(task: Task, graph: nx.DiGraph, plan: TrainingPlan) -> dict:
    """``iterations`` of planned training (and, with ``reference``, the unplanned run on the
    same data): the runtime's figures and whether both end on the same weights."""
    from trainplan.runtime.data import digits, synthetic
    from trainplan.runtime.session import Session, SessionOptions
    from trainplan.runtime.train import train

    a = task.axes
    batch = graph.graph["batch"]
    if a["dataset"] == "digits":
        data, test = digits(graph, seed=a["seed"])
    else:
        data, test = synthetic(graph, 8 * batch, seed=a["seed"]), None
    lr = a["learning_rate"] or (1e-3 if graph.graph["optimizer"] == "adam" else 1e-2)
    # tasks run side by side in the sweep's workers: a lane worker per task would compete
    options = SessionOptions(seed=a["seed"], learning_rate=lr, lane_worker=False)

    def run(session: Session):
        with session:
            return train(session, data, batch=batch, iterations=a["iterations"], test=test,
                         seed=a["seed"], progress=False)

    report = run(Session(graph, plan, options)).record()
    row = {f"train_{k}": v for k, v in report.items()}
    if a["reference"]:
        ref = run(Session.reference(graph, options, order=plan.order)).record()
        row["reference_weights_sha256"] = ref["weights_sha256"]
        row["reference_final_loss"] = ref["final_loss"]
        row["same_bits"] = ref["weights_sha256"] == report["weights_sha256"]
    return row
