"""A saved plan's document checked field by field against the dataclasses it becomes: every
field present (or defaulted), of the type its annotation names (an int is not a bool, a string
or a list), lists where tuples are, before anything reads a number from it. A plan file someone
edited by hand is refused naming the field, instead of failing deep inside the validator.

>>> from trainplan.planner.training_plan import Piece
>>> typed(Piece, {"start": 0, "end": 2, "offset": 64}, "piece")
Piece(start=0, end=2, offset=64)
>>> typed(Piece, {"start": 0, "end": "2", "offset": 64}, "piece")
Traceback (most recent call last):
...
trainplan.planner.plan_schema.MalformedField: piece.end: expected int, got '2'
"""

from __future__ import annotations

import dataclasses
import types
import typing
from functools import cache

from trainplan.planner.fileio import clip
from trainplan.planner.resources import MAX_BYTES, magnitude


class MalformedField(ValueError):
    """A field missing, of the wrong type or out of range; the message names it."""


def typed(cls, data, where: str):
    """``data`` (a JSON value) as an instance of dataclass ``cls``; MalformedField names the
    first field that is missing, of the wrong type or out of range."""
    return _value(cls, data, where)


@cache
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _value(kind, data, where: str):
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if dataclasses.is_dataclass(kind):
        return _dataclass(kind, data, where)
    if origin in (typing.Union, types.UnionType):
        if data is None and type(None) in args:
            return None
        return _value(next(a for a in args if a is not type(None)), data, where)
    if origin is tuple:
        items = _expect(list, data, where, "a list")
        if len(args) == 2 and args[1] is Ellipsis:  # tuple[X, ...]
            return tuple(_value(args[0], x, f"{where}[{i}]") for i, x in enumerate(items))
        if len(items) != len(args):  # tuple[A, B, C]
            raise MalformedField(f"{where}: expected {len(args)} items, got {len(items)}")
        return tuple(_value(a, x, f"{where}[{i}]") for i, (a, x) in
                     enumerate(zip(args, items, strict=True)))
    if origin is dict or kind is dict:
        items = _expect(dict, data, where, "an object")
        if not args:
            return items
        return {_value(args[0], k, f"{where} key"): _value(args[1], v, f"{where}.{k}")
                for k, v in items.items()}
    if kind is float:
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            raise MalformedField(f"{where}: expected a number, got {clip(data)}")
        return float(data)
    if kind in (int, str, bool):
        if type(data) is not kind:
            raise MalformedField(f"{where}: expected {kind.__name__}, got {clip(data)}")
        if kind is int and abs(data) >= MAX_BYTES:
            raise MalformedField(f"{where}: {magnitude(data)} is out of range (a plan's numbers "
                             "are below 2^62)")
        return data
    raise TypeError(f"{where}: no rule for {kind!r}")  # a field type this module lacks


def _expect(kind, data, where: str, what: str):
    if not isinstance(data, kind):
        raise MalformedField(f"{where}: expected {what}, got {clip(data)}")
    return data


def _dataclass(cls, data, where: str):
    items = _expect(dict, data, where, "an object")
    hints, values = _hints(cls), {}
    for f in dataclasses.fields(cls):
        if f.name in items:
            values[f.name] = _value(hints[f.name], items[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise MalformedField(f"{where}: missing field {f.name!r}")
    return cls(**values)
