"""Offset planners side by side: one TrainingPlan per (model, planner), one row each.

``compare_plans`` plans every graph with every planner (a bar on stderr while it runs, moving
even while a solver searches); ``compare_frame`` keeps the columns that tell planners apart.
`trainplan compare` and ``trainplan.compare`` both use them.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence

import networkx as nx
import pandas as pd
from tqdm import tqdm

from trainplan.experiments.progress import ticking
from trainplan.planner.plan_training import plan_training
from trainplan.planner.training_plan import TrainingPlan

# what tells offset planners apart, in the order ``compare`` prints it (docs/glossary.md)
COMPARE_COLUMNS = ("model", "planner", "arena_bytes", "lower_bound_bytes", "ratio", "status",
                   "optimal", "best_bound_bytes", "gap", "solve_seconds", "weight_pool_bytes",
                   "tensor_pool_bytes", "valid")


def compare_plans(graphs: Mapping[str, nx.DiGraph], planners: Sequence[str], *,
                  order: str = "nntrainer", time_limit: float | None = None, seed: int = 0,
                  progress: bool = True) -> list[tuple[nx.DiGraph, TrainingPlan]]:
    """Every graph (by model name) planned by every offset planner, in that order."""
    pairs = [(m, p) for m in graphs for p in planners]
    out = []
    with tqdm(total=len(pairs), desc="planning", file=sys.stderr, leave=False,
              disable=None if progress else True) as bar, ticking(bar):
        for model, planner in pairs:
            bar.set_postfix_str(f"{model}: {planner}", refresh=False)
            out.append((graphs[model], plan_training(graphs[model], order=order,
                                                     offsets=planner, time_limit=time_limit,
                                                     seed=seed)))
            bar.update(1)
    return out


def compare_frame(pairs: Sequence[tuple[nx.DiGraph, TrainingPlan]]) -> pd.DataFrame:
    """One row per plan: the plan record's COMPARE_COLUMNS."""
    rows = []
    for _, plan in pairs:
        record = plan.record()
        rows.append({k: record[k] for k in COMPARE_COLUMNS})
    return pd.DataFrame(rows, columns=list(COMPARE_COLUMNS))
