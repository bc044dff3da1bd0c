"""Printing results: a dict or a DataFrame, as text for people or JSON for programs."""

from __future__ import annotations

import json
import sys

import pandas as pd


def to_jsonable(value):
    """Numpy and pandas scalars -> plain Python, recursively."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


def emit(result, as_json: bool, stream=None) -> None:
    """Print ``result`` (a dict, a list of dicts or a DataFrame)."""
    stream = stream or sys.stdout
    if isinstance(result, pd.DataFrame):
        if as_json:
            print(result.to_json(orient="records", indent=1), file=stream)
        else:
            print(result.to_string(index=False), file=stream)
        return
    if as_json:
        print(json.dumps(to_jsonable(result), indent=1), file=stream)
        return
    if isinstance(result, list):
        print(pd.DataFrame(result).to_string(index=False), file=stream)
        return
    width = max((len(k) for k in result), default=0)
    for key, value in result.items():
        if isinstance(value, dict):
            print(f"{key}:", file=stream)
            for k, v in value.items():
                print(f"  {k:<{width}} {_fmt(v)}", file=stream)
        else:
            print(f"{key:<{width}} {_fmt(value)}", file=stream)


def _fmt(value) -> str:
    if isinstance(value, bool) or value is None:
        return str(value).lower() if value is not None else "null"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_frame(df: pd.DataFrame, fmt: str, stream=None) -> None:
    """A DataFrame as table, csv, markdown or json."""
    stream = stream or sys.stdout
    if fmt == "csv":
        stream.write(df.to_csv(index=False))
    elif fmt == "markdown":
        print(df.to_markdown(index=False), file=stream)
    elif fmt == "json":
        print(df.to_json(orient="records", indent=1), file=stream)
    else:
        print(df.to_string(index=False), file=stream)
