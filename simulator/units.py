"""Quantities with units, as device profiles write them: ``{"value": 45.5, "unit": "MB/s"}``.

Profiles keep the units their sources used (MB/s for storage, GiB for RAM, µs for latency);
the simulator works in bytes, seconds, FLOP/s and bytes per second. Decimal prefixes are powers
of 1000 and binary ones (KiB, MiB, GiB) powers of 1024, as storage vendors and RAM vendors use them.

>>> parse_quantity({"value": 45.5, "unit": "MB/s"}, "bandwidth", "storage.read_bandwidth")
45500000.0
>>> parse_quantity("1.5 GiB", "bytes", "ram")
1610612736.0
>>> parse_quantity({"value": 3, "unit": "MB/sec"}, "bandwidth", "storage.read_bandwidth")
... # doctest: +ELLIPSIS
Traceback (most recent call last):
...
trainplan.simulator.errors.InvalidProfile: storage.read_bandwidth: unknown unit 'MB/sec'; valid: B/s, ...
"""

from __future__ import annotations

import math

from trainplan.planner.fileio import clip
from trainplan.planner.resources import MAX_BYTES
from trainplan.simulator.errors import InvalidProfile

_SIZES = {"B": 1, "kB": 1e3, "KiB": 2**10, "MB": 1e6, "MiB": 2**20, "GB": 1e9, "GiB": 2**30,
          "TB": 1e12}
UNITS: dict[str, dict[str, float]] = {
    "bytes": dict(_SIZES),
    "bandwidth": {f"{k}/s": v for k, v in _SIZES.items()},
    "flops": {"FLOP/s": 1, "MFLOP/s": 1e6, "GFLOP/s": 1e9, "TFLOP/s": 1e12},
    "time": {"s": 1, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9},
}


def parse_quantity(raw, dimension: str, field: str) -> float:
    """``raw`` ({"value", "unit"} or "value unit") in SI units; errors name ``field``."""
    if isinstance(raw, str):
        parts = raw.split()
        if len(parts) != 2:
            raise InvalidProfile(f"{field}: write a quantity as {{\"value\": ..., \"unit\": ...}} "
                                 f"or \"VALUE UNIT\", got {clip(raw)}", field)
        raw = {"value": parts[0], "unit": parts[1]}
    if not isinstance(raw, dict) or "value" not in raw or "unit" not in raw:
        raise InvalidProfile(f"{field}: needs a value and a unit, e.g. "
                             f"{{\"value\": 1, \"unit\": \"{next(iter(UNITS[dimension]))}\"}}",
                             field)
    table = UNITS[dimension]
    unit = raw["unit"]
    if not isinstance(unit, str) or unit not in table:
        raise InvalidProfile(f"{field}: unknown unit {clip(unit)}; valid: {', '.join(table)}", field)
    try:
        value = float(raw["value"])
    except (TypeError, ValueError):
        raise InvalidProfile(f"{field}: value {clip(raw['value'])} is not a number", field) from None
    if not math.isfinite(value) or value < 0:
        raise InvalidProfile(f"{field}: value must be a finite number >= 0, got {value}", field)
    si = value * table[unit]
    if not math.isfinite(si) or (dimension == "bytes" and si >= MAX_BYTES):
        raise InvalidProfile(f"{field}: {value:g} {unit} is too large", field)
    return si


def quantity(value: float, unit: str, source: str | None = None) -> dict:
    """A quantity for a profile document, ``value`` given in ``unit`` (rounded for people)."""
    out = {"value": round(value, 6) if isinstance(value, float) else value, "unit": unit}
    if source:
        out["source"] = source
    return out


def in_unit(si_value: float, dimension: str, unit: str) -> float:
    """An SI value expressed in ``unit`` (the inverse of parse_quantity)."""
    return si_value / UNITS[dimension][unit]
