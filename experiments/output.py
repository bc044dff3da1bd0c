"""Printing results: a dict or a DataFrame, as text for people or JSON for programs."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass

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


def emit_stdout(result, as_json: bool) -> int:
    """``emit`` to stdout, ending quietly when the reader has gone (``trainplan models | head
    -2``): the rest of the output goes to /dev/null and the exit code is 1, as for any
    program whose output was cut short (Python's documented recipe for SIGPIPE)."""
    try:
        emit(result, as_json)
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the flush at exit does not fail again
        return 1
    return 0


@dataclass(frozen=True)
class Formatted:
    """A DataFrame to print in a given format (table, csv, markdown or json)."""

    frame: pd.DataFrame
    fmt: str


def emit(result, as_json: bool, stream=None) -> None:
    """Print ``result`` (a dict, a list of dicts, a DataFrame or a Formatted frame)."""
    stream = stream or sys.stdout
    if isinstance(result, Formatted):
        write_frame(result.frame, "json" if as_json else result.fmt, stream)
        return
    if isinstance(result, pd.DataFrame):
        if as_json:
            print(result.to_json(orient="records", indent=1), file=stream)
        else:
            print(table_text(result), file=stream)
        return
    if as_json:
        print(json.dumps(to_jsonable(result), indent=1), file=stream)
        return
    if isinstance(result, list):
        print(table_text(pd.DataFrame(result)), file=stream)
        return
    width = max((len(k) for k in result), default=0)
    for key, value in result.items():
        if isinstance(value, dict):
            print(f"{key}:", file=stream)
            for k, v in value.items():
                print(f"  {k:<{width}} {_fmt(v)}", file=stream)
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, dict)
                                                                 for v in value):
            print(f"{key}:", file=stream)  # records: a table, one line each
            table = pd.DataFrame(value).to_string(index=False, na_rep="null")
            print("\n".join("  " + line for line in table.splitlines()), file=stream)
        elif isinstance(value, (list, tuple)) and value:
            print(f"{key}:", file=stream)
            for v in value:
                print(f"  - {_fmt(v)}", file=stream)
        else:
            print(f"{key:<{width}} {_fmt(value)}", file=stream)


def table_text(df: pd.DataFrame) -> str:
    """A DataFrame as a text table: numbers right-aligned as pandas prints them, text
    left-aligned."""
    if df.empty or not len(df.columns):
        return df.to_string(index=False)
    columns = []
    for col in df.columns:
        lines = df[[col]].to_string(index=False).splitlines()
        if all(isinstance(v, str) for v in df[col].tolist()):
            width = max(len(line.strip()) for line in lines)
            lines = [line.strip().ljust(width) for line in lines]
        columns.append(lines)
    return "\n".join("  ".join(parts).rstrip() for parts in zip(*columns, strict=True))


def _fmt(value) -> str:
    if isinstance(value, (list, tuple)) and not value:
        return "none"
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
        print(table_text(df), file=stream)


def save_frame(frame: pd.DataFrame, path: str) -> None:
    """Write a DataFrame atomically as CSV, Markdown or JSON, by the file's suffix."""
    from trainplan.planner.fileio import atomic_write_text

    if path.endswith(".md"):
        text = frame.to_markdown(index=False) + "\n"
    elif path.endswith(".json"):
        text = frame.to_json(orient="records", indent=1) + "\n"
    else:
        text = frame.to_csv(index=False)
    atomic_write_text(path, text)
