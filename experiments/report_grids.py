"""The grids `trainplan report` sweeps: what the paper's claims need, in two phases.

Phase one: the offset planners without a budget, the swap planners over budgets (fractions of
the lower bound), the unswapped plan on every device, and personalisation (a frozen backbone,
the head fine-tuned on the digits on the watch). Phase two is read off phase one's rows: each
model's smallest budget that fits, on every device, and trained against the unplanned run.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from trainplan.experiments.sweep_store import query_frame

BASE_DEVICE = "raspberry-pi-4"
WATCH = "smartwatch"


@dataclass(frozen=True)
class ReportSize:
    """How much of the paper a report covers."""

    models: tuple[str, ...]  # NNTrainer's example INI files first, then zoo models
    searched: tuple[str, ...]  # small enough for the searching planners (exact, cpsat, optimal)
    batch: int
    fractions: tuple[float, ...]  # budgets, as fractions of the lower bound
    devices: tuple[str, ...]
    trained: tuple[str, ...]  # trained against the unplanned run (the same bits)
    train_iterations: int
    personal: tuple[str, str]  # (model, the last frozen layer)
    personal_iterations: int
    personal_fractions: tuple[float, ...]
    time_limit: float  # CP-SAT's deterministic seconds per search


_GREEDY = ["basic", "nntrainer_v1", "nntrainer_v2", "nntrainer_v3", "greedy_size",
           "greedy_breadth", "best_fit"]
_DEVICES = ("smartwatch", "raspberry-pi-4", "emmc51-tv-board", "jetson-tx2", "phone-ufs31",
            "phone-ufs40")

SIZES = {
    "full": ReportSize(
        models=("mnist.ini", "lenet5.ini", "resnet_small.ini", "mlp", "lenet5",
                "resnet18_cifar", "vgg16_cifar", "mobilenetv2_cifar"),
        searched=("mnist.ini", "lenet5.ini", "mlp"), batch=32,
        fractions=(1.0, 0.9, 0.8, 0.7, 0.65, 0.6, 0.5, 0.4, 0.35, 0.3, 0.25, 0.2, 0.17, 0.15,
                   0.13, 0.11, 0.1, 0.09, 0.08),
        devices=_DEVICES, trained=("mnist.ini", "lenet5.ini", "mlp", "resnet_small.ini"),
        train_iterations=2, personal=("lenet5.ini", "pool2"), personal_iterations=44,
        personal_fractions=(0.9, 0.8), time_limit=0.5),
    "small": ReportSize(
        models=("mnist.ini", "lenet5.ini"), searched=("mnist.ini",), batch=4,
        fractions=(1.0, 0.9, 0.8, 0.7), devices=(WATCH, BASE_DEVICE), trained=("mnist.ini",),
        train_iterations=2, personal=("lenet5.ini", "pool2"), personal_iterations=4,
        personal_fractions=(0.9,), time_limit=0.05),
}


def first_grid(size: ReportSize) -> list[dict]:
    """Phase one's ``[[grid]]`` tables."""
    common = {"batch": [size.batch], "device": [BASE_DEVICE]}
    model, frozen = size.personal
    return [
        {"model": list(size.models), "offsets": _GREEDY, **common},
        {"model": list(size.searched), "offsets": ["cpsat", "exact"],
         "time_limit": size.time_limit, **common},
        {"model": list(size.models), "budget_fraction": list(size.fractions),
         "swap": ["lookahead", "belady"], **common},
        {"model": list(size.searched), "budget_fraction": list(size.fractions),
         "swap": ["optimal"], "time_limit": size.time_limit, **common},
        {"model": list(size.models), "offsets": ["nntrainer_v1"], "batch": [size.batch],
         "device": list(size.devices)},
        {"model": [model], "batch": [size.batch], "freeze_until": ["none", frozen],
         "dataset": "digits", "device": [WATCH], "iterations": size.personal_iterations,
         "reference": True, "budget_fraction": [None, *size.personal_fractions],
         "swap": ["none"]},
    ]


SMALLEST = """
SELECT model, swap, min(budget_fraction) AS budget_fraction
FROM results
WHERE error IS NULL AND budget_fraction IS NOT NULL AND iterations = 0
  AND freeze_until IS NULL AND device = '{device}' AND batch = {batch}
GROUP BY model, swap ORDER BY model, swap
"""


def smallest_budgets(rows: pd.DataFrame, size: ReportSize) -> pd.DataFrame:
    """Per model and swap planner, the smallest budget fraction whose plan fits."""
    return query_frame(rows, SMALLEST.format(device=BASE_DEVICE, batch=size.batch))


def second_grid(rows: pd.DataFrame, size: ReportSize) -> list[dict]:
    """Phase two's tables, from phase one's rows: each model at its smallest budget (belady)
    on every device, and the trained models at their smallest budgets against the unplanned
    run."""
    least = smallest_budgets(rows, size)
    tables = []
    for r in least[least["swap"] == "belady"].itertuples():
        tables.append({"model": [r.model], "batch": [size.batch],
                       "budget_fraction": [float(r.budget_fraction)], "swap": ["belady"],
                       "device": list(size.devices)})
    for r in least[least["model"].isin(size.trained)
                   & least["swap"].isin(["belady", "lookahead"])].itertuples():
        tables.append({"model": [r.model], "batch": [size.batch],
                       "budget_fraction": [float(r.budget_fraction)], "swap": [r.swap],
                       "device": [BASE_DEVICE], "iterations": size.train_iterations,
                       "reference": True})
    return tables
