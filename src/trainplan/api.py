"""The notebook API: ``import trainplan as tp``, then a handful of functions from a model to
its plan, a simulation, a comparison of planners and a training run, each returning a record
or a DataFrame with a short repr (docs/api.md).

Every function imports what it needs when called, so ``import trainplan`` stays light; the
words follow docs/glossary.md.

>>> import trainplan as tp
>>> g = tp.graph("mlp", batch=4)
>>> p = tp.plan(g, budget="3.3MB")
>>> p.swapped, p.arena_bytes <= 3.3e6
(True, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import networkx as nx
    import pandas as pd

    from trainplan.planner.training_plan import TrainingPlan
    from trainplan.runtime.measure import Measurement
    from trainplan.runtime.train import TrainReport
    from trainplan.simulator.timeline import Timeline


def models() -> pd.DataFrame:
    """The zoo: one row per model (name, description, input shape, classes)."""
    import pandas as pd

    from trainplan.experiments.cmd_graph import run_models
    return pd.DataFrame(run_models(None))


def devices() -> pd.DataFrame:
    """The device profiles, one row each, in the units people read."""
    import pandas as pd

    from trainplan.simulator.device import device_table
    return pd.DataFrame(device_table())


def planners() -> pd.DataFrame:
    """The offset and swap planners: kind, name, whether it searches, what it does."""
    from trainplan.experiments.cmd_plan import planners_frame
    return planners_frame()


def graph(model: str, *, batch: int | None = None, input_shape: Sequence[int] | None = None,
          classes: int | None = None, optimizer: str | None = None,
          freeze_until: str | None = None, inplace: bool = True,
          compat: bool = False) -> nx.DiGraph:
    """The training graph of ``model`` (a zoo name, an NNTrainer .ini file or a shipped
    example such as ``"mnist.ini"``), as `trainplan graph` builds it."""
    from trainplan.planner.build import build_training_graph
    from trainplan.planner.zoo import get_model

    spec = get_model(model, batch=batch, classes=classes,
                     input_shape=tuple(input_shape) if input_shape is not None else None)
    return build_training_graph(spec, batch=batch, optimizer=optimizer,
                                freeze_until=freeze_until, inplace=inplace, compat=compat)


def _bytes(value: int | str | None) -> int | None:
    if value is None or isinstance(value, int):
        return value
    from trainplan.experiments.graph_options import parse_bytes
    return parse_bytes(str(value))


def plan(graph: nx.DiGraph, *, budget: int | str | None = None, swap: str | None = None,
         planner: str | None = None, order: str = "nntrainer", lookahead: int = 1,
         alignment: int | None = None, device: str | None = None,
         time_limit: float | None = None, seed: int = 0) -> TrainingPlan:
    """A TrainingPlan (``plan_training``): offsets by ``planner``, and under ``budget`` (bytes,
    or a size such as ``"64MiB"``) a swap schedule by ``swap``; ``device`` (a profile name)
    guides the ``optimal`` swap planner with its storage and compute."""
    from trainplan.planner.plan_training import plan_training

    costs = None
    if device is not None:
        from trainplan.experiments.device_costs import device_costs
        costs = device_costs(device)
    return plan_training(graph, order=order, offsets=planner, budget=_bytes(budget), swap=swap,
                         lookahead=lookahead, alignment=alignment, costs=costs,
                         time_limit=time_limit, seed=seed)


def simulate(graph: nx.DiGraph, plan: TrainingPlan, device: str = "raspberry-pi-4", *,
             iterations: int = 1, by: str = "role") -> Timeline:
    """The simulated Timeline of ``plan`` on ``device`` (a profile name or a .json file):
    ``.summary``, and the ``.events``, ``.transfers`` and ``.by_eo`` DataFrames."""
    from trainplan.simulator.simulate import simulate as run
    return run(graph, plan, device, iterations=iterations, by=by)


@dataclass(frozen=True)
class Comparison:
    """Offset planners side by side: ``table`` (one row per model and planner), ``curves``
    (bytes in use per EO, what ``plot`` draws) and the ``plans`` themselves."""

    table: pd.DataFrame
    curves: pd.DataFrame
    plans: list = field(repr=False)

    def plot(self, path: str | None = None, *, ax=None):
        """The comparison figure (``ax``: one or two Axes for a one-model comparison)."""
        from trainplan.experiments.plot_compare import plot_compare
        return plot_compare(self.curves, path, ax=ax)

    def __repr__(self) -> str:
        t = self.table
        return (f"Comparison({t['model'].nunique()} models x {t['planner'].nunique()} planners; "
                f"best ratio {t['ratio'].min():.4f}; .table, .curves, .plot())")

    def _repr_html_(self) -> str:
        return self.table._repr_html_()


def compare(models: str | Sequence[str] = ("lenet5",), planners: str | Sequence[str] = "all",
            *, order: str = "nntrainer", time_limit: float | None = None, seed: int = 0,
            progress: bool = False, **graph_options) -> Comparison:
    """Every model (names as in ``graph``) planned by every offset planner (``"all"`` or
    names), as `trainplan compare`; ``graph_options`` go to ``graph`` for every model."""
    from trainplan.experiments.compare import compare_frame, compare_plans
    from trainplan.experiments.graph_options import planner_list
    from trainplan.experiments.plot_compare import planner_curves

    names = [models] if isinstance(models, str) else list(models)
    chosen = planner_list(planners if isinstance(planners, str) else ",".join(planners))
    pairs = compare_plans({m: graph(m, **graph_options) for m in names}, chosen, order=order,
                          time_limit=time_limit, seed=seed, progress=progress)
    return Comparison(compare_frame(pairs), planner_curves(pairs), pairs)


def train(graph: nx.DiGraph, plan: TrainingPlan | None = None, *, dataset: str = "synthetic",
          epochs: int | None = None, iterations: int | None = None,
          samples: int | None = None, learning_rate: float | None = None, seed: int = 0,
          swap_dir: str | None = None, progress: bool = False) -> TrainReport:
    """Train with the numpy runtime inside ``plan``'s arena (None: the unplanned reference) on
    ``dataset`` (``digits`` or ``synthetic``); the TrainReport has per-epoch ``epochs``,
    accuracies, times, RSS and ``weights_sha256``."""
    from trainplan.experiments.training import run_training
    return run_training(graph, plan, dataset=dataset, epochs=epochs, iterations=iterations,
                        samples=samples, learning_rate=learning_rate, seed=seed,
                        swap_dir=swap_dir,
                        order=plan.order.name if plan is not None else "nntrainer",
                        progress=progress)


def measure(graph: nx.DiGraph, plan: TrainingPlan, *, iterations: int = 3, warmup: int = 1,
            blas_threads: int | None = 1) -> Measurement:
    """The runtime timed EO by EO on synthetic data: ``.events`` (the simulator's columns)
    and ``.summary`` (medians over the recorded iterations)."""
    from trainplan.runtime.measure import measure as run
    return run(graph, plan, warmup=warmup, iterations=iterations, threads=blas_threads)


def trace(timeline: Timeline | None = None, path: str | None = None, *,
          measured: Measurement | None = None) -> dict:
    """A Chrome trace-event document (open it in ui.perfetto.dev) of a simulated
    ``timeline`` and/or a ``measured`` run (with the plan it ran); written to ``path`` when
    given."""
    from trainplan.experiments.trace import (
        measured_events,
        timeline_events,
        trace_document,
        write_trace,
    )

    if timeline is None and measured is None:
        raise ValueError("trace: give a timeline, a measurement, or both")
    events = timeline_events(timeline) if timeline is not None else []
    if measured is not None:
        events += measured_events(measured.events, measured.plan)
    doc = trace_document(events)
    if path is not None:
        write_trace(doc, path)
    return doc


def buffers(plan: TrainingPlan) -> pd.DataFrame:
    """One row per resident piece: buffer, piece, role, pool, bytes, start, end, offset."""
    from trainplan.experiments.exports import buffers_frame
    return buffers_frame(plan)


def c_header(plan: TrainingPlan, path: str | None = None) -> str:
    """The arena size and every piece's offset as a C header; written to ``path`` if given."""
    from trainplan.experiments.exports import c_header as text
    from trainplan.experiments.exports import write_c_header

    if path is not None:
        write_c_header(plan, path)
    return text(plan)


def plot_timeline(timeline: Timeline, path: str | None = None, *, x: str = "time", ax=None):
    """Resident memory over time (or EO) and the streams; returns the Figure."""
    from trainplan.experiments.plots import plot_timeline as draw
    return draw(timeline, path, x=x, ax=ax)


def plot_measured(timeline: Timeline, measured: Measurement, path: str | None = None, *,
                  ax=None):
    """Predicted against measured time per EO; returns the Figure."""
    from trainplan.experiments.plot_measured import plot_overlay
    return plot_overlay(timeline, measured.events, path,
                        measured_seconds=measured.summary.seconds_per_iteration, ax=ax)


__all__ = ["Comparison", "buffers", "c_header", "compare", "devices", "graph", "measure",
           "models", "plan", "planners", "plot_measured", "plot_timeline", "simulate", "trace",
           "train"]
