"""One training run as `trainplan train` and ``trainplan.train`` make it: the data, the
learning rate's default, the session (planned, or the unplanned reference), the RSS before the
arena, and the loop (runtime/train.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import networkx as nx

from trainplan.planner.training_plan import TrainingPlan

if TYPE_CHECKING:  # the runtime loads only when a run starts
    from trainplan.runtime.train import TrainReport

DATASETS = ("digits", "synthetic")


def default_learning_rate(graph: nx.DiGraph) -> float:
    """1e-3 for adam, 1e-2 for the others."""
    return 1e-3 if graph.graph["optimizer"] == "adam" else 1e-2


def run_training(graph: nx.DiGraph, plan: TrainingPlan | None, *, dataset: str = "synthetic",
                 epochs: int | None = None, iterations: int | None = None,
                 samples: int | None = None, learning_rate: float | None = None, seed: int = 0,
                 swap_dir: str | None = None, swap_through: bool = False,
                 checkpoint: str | None = None, resume: bool = False, order: str = "nntrainer",
                 threads: int | None = None, lane_worker: bool = True,
                 progress: bool = True) -> TrainReport:
    """Train ``graph`` under ``plan`` (None: the unplanned reference in ``order``) on
    ``dataset`` (digits with a test split, or ``samples`` synthetic ones, default 8 batches)
    for ``epochs`` (default 1) or exactly ``iterations``."""
    from trainplan.runtime.data import digits, synthetic
    from trainplan.runtime.layout import release_free_heap
    from trainplan.runtime.session import Session, SessionOptions
    from trainplan.runtime.train import reset_peak_rss, rss_bytes, train

    batch = graph.graph["batch"]
    if dataset == "digits":
        data, test = digits(graph, seed=seed)
    else:
        data, test = synthetic(graph, samples or 8 * batch, seed=seed), None
    if epochs is None and iterations is None:
        epochs = 1
    options = SessionOptions(seed=seed, learning_rate=learning_rate
                             or default_learning_rate(graph), swap_dir=swap_dir,
                             swap_through=swap_through, threads=threads,
                             lane_worker=lane_worker)
    # before the session allocates the arena; the peak counts from here (where the OS lets us),
    # without the freed heap the session's set-up hands back (runtime/layout.py)
    release_free_heap()
    baseline = rss_bytes() if reset_peak_rss() else None
    session = Session(graph, plan, options) if plan is not None else Session.reference(
        graph, options, order=order)
    with session:
        return train(session, data, batch=batch, epochs=epochs, iterations=iterations,
                     test=test, seed=seed, checkpoint=checkpoint, resume=resume,
                     progress=progress, baseline_rss_bytes=baseline)


def train_record(graph: nx.DiGraph, plan: TrainingPlan | None, report: TrainReport) -> dict:
    """What `trainplan train` prints: the plan's names and figures, then the measurements."""
    figures = plan.record() if plan is not None else {}
    measured = report.record()
    return {"model": graph.graph["model"],
            "planner": figures.get("planner", "reference"), "swap": figures.get("swap"),
            "budget_bytes": figures.get("budget_bytes"),
            "arena_bytes": measured.pop("arena_bytes"),
            **{k: figures.get(k) for k in ("peak_resident_bytes", "peak_live_bytes")},
            **measured}
