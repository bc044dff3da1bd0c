"""Option values and output paths checked once, after parsing and before any work: counts
that must be positive, rates that must be finite, seeds numpy and OR-Tools accept, and paths
that can be written (so an hour of training or a long simulation is not lost at the last step).

Rules are keyed by the option's destination, so every command that has an option gets the same
check; the value as parsed by argparse (int, float, str) is what is checked.

>>> import argparse
>>> check_args(argparse.Namespace(iterations=3, learning_rate=0.1))
>>> check_args(argparse.Namespace(iterations=-5))
Traceback (most recent call last):
...
trainplan.experiments.validate_args.InvalidOption: --iterations -5: must be 1 or more
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from trainplan.planner.errors import TrainplanError
from trainplan.planner.fileio import (
    FIGURE_SUFFIXES,
    check_directory,
    check_output_directory,
    check_writable,
)
from trainplan.planner.resources import MAX_BYTES


class InvalidOption(TrainplanError):
    """An option value outside what it can mean; the message names the option."""


def _at_least(low: int, high: int | None = None) -> Callable[[str, object], None]:
    def check(option: str, value) -> None:
        if value < low:
            raise InvalidOption(f"{option} {value}: must be {low} or more")
        if high is not None and value > high:
            raise InvalidOption(f"{option} {value}: must be at most {high:,}")
    return check


def _positive_finite(option: str, value) -> None:
    if not math.isfinite(value) or value <= 0:
        raise InvalidOption(f"{option} {value}: give a positive, finite number")


RULES: dict[str, Callable[[str, object], None]] = {
    "iterations": _at_least(1),
    "epochs": _at_least(1),
    "samples": _at_least(1),
    "batch": _at_least(1),
    "measure_iterations": _at_least(1),
    "blas_threads": _at_least(0),
    "storage": _at_least(1, 2**40),
    "capacity": _at_least(0, MAX_BYTES - 1),
    "seed": _at_least(0, 2**31 - 1),
    "learning_rate": _positive_finite,
    "time_limit": _positive_finite,
}


def check_args(args: argparse.Namespace) -> None:
    """Raise InvalidOption or UnwritableFile for the first option that cannot work."""
    for dest, rule in RULES.items():
        value = getattr(args, dest, None)
        if value is not None and not isinstance(value, bool):
            rule(f"--{dest.replace('_', '-')}", value)
    check_paths(args)


def check_paths(args: argparse.Namespace) -> None:
    """Output files whose directory exists and is writable (figures create theirs, as
    documented), directories that exist, and a checkpoint to resume from that exists."""
    out = getattr(args, "out", None)
    if isinstance(out, str) and getattr(args, "out_is_directory", False):
        check_output_directory(out, "--out directory")
    for dest in ("out", "plot", "buffers", "c_header", "trace"):
        path = getattr(args, dest, None)
        if dest == "out" and getattr(args, "out_is_directory", False):
            continue
        if isinstance(path, str):
            figure = path.lower().endswith(FIGURE_SUFFIXES)
            check_writable(path, "figure" if figure else f"--{dest.replace('_', '-')} file",
                           create_directory=figure)
    export = getattr(args, "export", None)
    if export:
        check_writable(export[-1], "--export file")
    checkpoint = getattr(args, "checkpoint", None)
    if checkpoint:
        check_writable(checkpoint, "checkpoint")
    for dest in ("dir", "swap_dir"):
        directory = getattr(args, dest, None)
        if isinstance(directory, str):
            check_directory(directory, f"--{dest.replace('_', '-')}")
