"""Sweep grids: a TOML file naming lists of values per axis, expanded into tasks.

The cross product of a table's lists is its task list; a file with several ``[[grid]]`` tables
runs the union of their products (a task named twice runs once). Every value is checked here,
at the door, so that a task can fail only for what planning, simulating or training finds.
Axes that are keywords of ``plan_training`` are one row each in ``AXES`` (``keyword=...``); they
are passed through only when this trainplan's ``plan_training`` takes that keyword.

>>> tasks = expand_grid({"model": ["mlp"], "batch": [4, 8], "budget_fraction": ["none", 0.9]})
>>> [(t.axes["batch"], t.axes["budget_fraction"]) for t in tasks]
[(4, None), (4, 0.9), (8, None), (8, 0.9)]
>>> len({t.key for t in tasks})
4
>>> expand_grid({"model": ["mlp"], "swap": ["belady"]})
Traceback (most recent call last):
...
trainplan.experiments.sweep_grid.InvalidGrid: grid: swap 'belady' needs a budget: add budget_fraction or budget to this table, or put the swapped tasks in a [[grid]] table of their own
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import json
import math
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from trainplan import __version__
from trainplan.experiments.graph_options import parse_bytes
from trainplan.planner.errors import TrainplanError, UnknownName
from trainplan.planner.order import ORDERS
from trainplan.planner.plan_training import offsets_names, plan_training
from trainplan.planner.spec import ModelSpec
from trainplan.planner.swap import SWAP_PLANNERS
from trainplan.planner.zoo import get_model
from trainplan.simulator.device import DeviceProfile, load_device

REQUIRED = object()  # an axis every grid table must give
NONE_WORDS = ("none", "default")  # TOML has no null: these words leave an axis at its default


class InvalidGrid(TrainplanError):
    """A grid file that cannot be read or names a missing key, an unknown name or a value of
    the wrong type; the message names the file, the table and the key."""


# --- value checks: each returns the canonical value or raises TypeError or ValueError saying
# what is wanted


def _text(value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("a non-empty string")
    return value.strip()


def _int(value, low: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("a whole number" + (f" of at least {low}" if low is not None else ""))
    if low is not None and value < low:
        raise ValueError(f"a whole number of at least {low}")
    return value


def _positive_int(value) -> int:
    return _int(value, 1)


def _non_negative_int(value) -> int:
    return _int(value, 0)


def _positive_float(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError("a positive, finite number")
    return float(value)


def _bool(value) -> bool:
    if not isinstance(value, bool):
        raise TypeError("true or false")
    return value


def _bytes(value) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise TypeError("a byte count: a whole number or a string such as \"64MiB\"")
    try:
        return parse_bytes(value)
    except TrainplanError as exc:
        raise ValueError(str(exc)) from None


def _power_of_two(value) -> int:
    value = _positive_int(value)
    if value & (value - 1):
        raise ValueError("a power of two (64 for the runtime)")
    return value


def _text_or_int(value) -> str | int:
    return _non_negative_int(value) if isinstance(value, int) else _text(value)


def _choice(names: Callable[[], list[str]]) -> Callable:
    def check(value) -> str:
        valid = list(names())
        if value not in valid:
            raise ValueError("one of " + ", ".join(valid))
        return value
    return check


@dataclass(frozen=True)
class Axis:
    """One grid key: how a value is checked, its default, the ``plan_training`` keyword it
    is passed as (None: the task uses it itself), and whether its names are checked by asking
    plan_training (``probe``: a registry that lives beyond this module)."""

    name: str
    check: Callable
    default: object = None
    keyword: str | None = None
    probe: bool = False
    column: Callable | None = None  # how a row stores a value of mixed types (one type)


#: Every grid key, in the order rows show them. An axis that is a keyword of plan_training is
#: one row with ``keyword=``; it reaches plan_training only when plan_training takes it.
AXES: tuple[Axis, ...] = (
    Axis("model", _text, REQUIRED),
    Axis("batch", _positive_int),
    Axis("optimizer", _choice(lambda: ["sgd", "momentum", "adam"])),
    Axis("freeze_until", _text),
    Axis("inplace", _bool, True),
    Axis("compat", _bool, False),
    Axis("order", _choice(lambda: list(ORDERS)), "nntrainer", keyword="order"),
    Axis("offsets", _choice(offsets_names), keyword="offsets"),
    Axis("swap", _choice(lambda: list(SWAP_PLANNERS)), keyword="swap"),
    Axis("lookahead", _non_negative_int, 1, keyword="lookahead"),
    Axis("remat", _text, keyword="remat", probe=True),
    Axis("split", _text_or_int, keyword="split", probe=True, column=str),
    Axis("alignment", _power_of_two, keyword="alignment"),
    Axis("budget_fraction", _positive_float),
    Axis("budget", _bytes),
    Axis("device", _text, "raspberry-pi-4"),
    Axis("iterations", _non_negative_int, 0),
    Axis("dataset", _choice(lambda: ["synthetic", "digits"]), "synthetic"),
    Axis("reference", _bool, False),
    Axis("learning_rate", _positive_float),
    Axis("seed", _int, 0, keyword="seed"),
    Axis("time_limit", _positive_float, 10.0, keyword="time_limit"),
)
AXIS = {a.name: a for a in AXES}


@cache
def plan_keywords() -> frozenset[str]:
    """The keywords this trainplan's plan_training takes."""
    return frozenset(inspect.signature(plan_training).parameters)


@dataclass(frozen=True, eq=False)
class Task:
    """One point of a grid: every axis with its value (defaults filled in), the model spec and
    device profile loaded where the grid was read (a worker needs no files), and ``key``, the
    hash of the axes, the trainplan version, the device profile's content and the model file's
    content (a row's identity: a rerun skips keys already done)."""

    key: str
    axes: dict
    spec: ModelSpec
    device: DeviceProfile
    device_sha256: str
    model_sha256: str | None

    @property
    def graph_key(self) -> tuple:
        """What the training graph depends on (tasks sharing it share a built graph)."""
        a = self.axes
        return (a["model"], self.model_sha256, a["batch"], a["optimizer"], a["freeze_until"],
                a["inplace"], a["compat"])

    def columns(self) -> dict:
        """The axes as a row holds them: every value of a column of one type."""
        return {a.name: (a.column(v) if a.column and v is not None else v)
                for a in AXES for v in (self.axes[a.name],)}

    def plan_options(self) -> dict:
        """The keyword arguments of plan_training this task sets (budget aside)."""
        return {a.keyword: self.axes[a.name] for a in AXES
                if a.keyword is not None and self.axes[a.name] is not None}


# --- reading


def load_grid(path: str) -> list[Task]:
    """The tasks of a grid file, checked; InvalidGrid names what is wrong and where."""
    try:
        with open(path, "rb") as fh:
            document = tomllib.load(fh)
    except FileNotFoundError:
        raise InvalidGrid(f"grid file {path!r} does not exist") from None
    except IsADirectoryError:
        raise InvalidGrid(f"{path!r} is a directory, not a grid file (query a sweep directory "
                          "with --query)") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidGrid(f"{path}: not a TOML file ({exc})") from None
    return expand_grid(document, origin=path)


def grid_tables(document: dict, origin: str = "grid") -> list[tuple[str, dict]]:
    """The file's tables, each with the name errors use: ``[[grid]]`` tables, or the file."""
    if "grid" not in document:
        return [(origin, document)]
    extra = sorted(set(document) - {"grid"})
    if extra:
        raise InvalidGrid(f"{origin}: keys {', '.join(extra)} stand beside [[grid]] tables; "
                          "put them inside a table")
    tables = document["grid"]
    tables = [tables] if isinstance(tables, dict) else tables
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict)
                                                             for t in tables):
        raise InvalidGrid(f"{origin}: 'grid' must be one or more [[grid]] tables")
    return [(f"{origin} [[grid]] #{i + 1}", t) for i, t in enumerate(tables)]


def expand_grid(document: dict, origin: str = "grid") -> list[Task]:
    """Every table's cross product, checked, without repeats, in the file's order."""
    tasks: dict[str, Task] = {}
    loader = _Loader()
    for where, table in grid_tables(document, origin):
        for point in _points(table, where):
            task = loader.task(point, where)
            tasks.setdefault(task.key, task)
    if not tasks:
        raise InvalidGrid(f"{origin}: the grid has no tasks")
    return list(tasks.values())


def _points(table: dict, where: str) -> list[dict]:
    """The table's cross product; each value checked and made canonical."""
    unknown = sorted(set(table) - set(AXIS))
    if unknown:
        raise InvalidGrid(f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: "
                          + ", ".join(AXIS))
    missing = [a.name for a in AXES if a.default is REQUIRED and a.name not in table]
    if missing:
        raise InvalidGrid(f"{where}: missing key(s) {', '.join(missing)} (e.g. model = "
                          "[\"lenet5\"])")
    values = []
    for axis in AXES:
        given = table.get(axis.name, [None if axis.default is REQUIRED else axis.default])
        given = given if isinstance(given, list) else [given]
        if not given:
            raise InvalidGrid(f"{where}: {axis.name} is an empty list; give at least one value")
        values.append([_checked(axis, v, where) for v in given])
    return [dict(zip(AXIS, combo, strict=True)) for combo in itertools.product(*values)]


def _checked(axis: Axis, value, where: str):
    if value is None or (isinstance(value, str) and value.strip().lower() in NONE_WORDS):
        if axis.default is REQUIRED:
            raise InvalidGrid(f"{where}: {axis.name} needs a value")
        return axis.default
    try:
        value = axis.check(value)
    except (TypeError, ValueError) as exc:
        raise InvalidGrid(f"{where}: {axis.name} = {value!r}: expected {exc}") from None
    if axis.keyword is not None and axis.keyword not in plan_keywords():
        raise InvalidGrid(f"{where}: {axis.name} is not a planning option of this trainplan "
                          f"{__version__} (plan_training takes no {axis.keyword!r}); drop it")
    return value


class _Loader:
    """Models, devices and pass-through values, each loaded or probed once per grid."""

    def __init__(self):
        self.specs: dict[tuple, tuple[ModelSpec, str | None]] = {}
        self.devices: dict[str, tuple[DeviceProfile, str]] = {}
        self.probed: set[tuple[str, object]] = set()

    def task(self, point: dict, where: str) -> Task:
        spec, model_sha = self._spec(point["model"], point["batch"], where)
        point["batch"] = spec.batch if point["batch"] is None else point["batch"]
        point["optimizer"] = point["optimizer"] or spec.optimizer
        layers = [layer.name for layer in spec.layers]
        if point["freeze_until"] is not None and point["freeze_until"] not in layers:
            raise InvalidGrid(f"{where}: freeze_until {point['freeze_until']!r} is not a layer "
                              f"of {point['model']}; its layers: {', '.join(layers)}")
        device, device_sha = self._device(point["device"], where)
        _check_combination(point, where)
        for axis in AXES:
            if axis.probe and point[axis.name] is not None:
                self._probe(axis, point[axis.name], where)
        key = task_key(point, device_sha, model_sha)
        return Task(key, point, spec, device, device_sha, model_sha)

    def _spec(self, model: str, batch: int | None, where: str):
        if (model, batch) not in self.specs:
            try:
                spec = get_model(model, batch=batch)
            except TrainplanError as exc:
                raise InvalidGrid(f"{where}: model {model!r}: {exc}") from None
            self.specs[model, batch] = (spec, _model_file_sha(model))
        return self.specs[model, batch]

    def _device(self, name: str, where: str):
        if name not in self.devices:
            try:
                device = load_device(name)
            except TrainplanError as exc:
                raise InvalidGrid(f"{where}: device {name!r}: {exc}") from None
            text = json.dumps(device.document, sort_keys=True)
            self.devices[name] = (device, hashlib.sha256(text.encode()).hexdigest())
        return self.devices[name]

    def _probe(self, axis: Axis, value, where: str) -> None:
        """A pass-through value with no registry here: plan a tiny graph with it, so that an
        unknown name is refused now rather than in every task."""
        if (axis.name, value) in self.probed:
            return
        self.probed.add((axis.name, value))
        from trainplan.planner.build import build_training_graph

        graph = build_training_graph(get_model("mlp", batch=2))
        try:
            plan_training(graph, **{axis.keyword: value})
        except UnknownName as exc:
            raise InvalidGrid(f"{where}: {axis.name} = {value!r}: {exc}") from None
        except TrainplanError:
            pass  # valid name; the tiny graph may not suit it, a real task will say


def _check_combination(point: dict, where: str) -> None:
    """Values that are fine alone but not together."""
    if point["budget"] is not None and point["budget_fraction"] is not None:
        raise InvalidGrid(f"{where}: give budget or budget_fraction, not both")
    budgeted = point["budget"] is not None or point["budget_fraction"] is not None
    if point["swap"] is not None and not budgeted:
        raise InvalidGrid(f"{where}: swap {point['swap']!r} needs a budget: add "
                          "budget_fraction or budget to this table, or put the swapped tasks "
                          "in a [[grid]] table of their own")
    if point["offsets"] == "best" and not budgeted:
        raise InvalidGrid(f"{where}: offsets 'best' chooses among greedy planners under a "
                          "budget; add budget_fraction or budget, or name a planner")
    if point["lookahead"] != 1 and point["swap"] != "lookahead":
        raise InvalidGrid(f"{where}: lookahead goes with swap 'lookahead'")
    if point["reference"] and not point["iterations"]:
        raise InvalidGrid(f"{where}: reference compares trained weights; give iterations >= 1")


def _model_file_sha(model: str) -> str | None:
    """The content hash of a model file (INI, ONNX, PyTorch source), None for a zoo model (its
    code is the version's)."""
    from trainplan.planner.importers import model_source
    path = model_source(model)
    if path is None:
        return None
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def task_key(axes: dict, device_sha256: str, model_sha256: str | None) -> str:
    """A task's identity: its axes (those left at None omitted, so a new axis leaves old keys
    alone), the trainplan version, the device profile and the model file, hashed."""
    identity = {"axes": {k: v for k, v in axes.items() if v is not None},
                "trainplan": __version__, "device": device_sha256, "model": model_sha256}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def grid_toml(tables: list[dict]) -> str:
    """Grid tables as a TOML file ``load_grid`` reads back: one ``[[grid]]`` per table, values
    strings, numbers, booleans or lists of them (None written as "none").

    >>> print(grid_toml([{"model": ["mlp"], "budget_fraction": [None, 0.5], "reference": True}]))
    [[grid]]
    model = ["mlp"]
    budget_fraction = ["none", 0.5]
    reference = true
    <BLANKLINE>
    """
    def value(v) -> str:
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps("none" if v is None else v)
    return "\n".join("[[grid]]\n" + "".join(f"{k} = {value(v)}\n" for k, v in t.items())
                     for t in tables)

