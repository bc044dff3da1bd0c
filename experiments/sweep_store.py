"""A sweep's results on disk: Parquet files under the sweep directory, one row per task.

Rows are written as they finish, a small file per batch (``parts/part-*.parquet``, each
written atomically), and compacted into ``results.parquet`` when a sweep ends. Readers take the
union of both, each task once (by ``task_hash``), so a sweep stopped at any moment leaves a
readable directory, and a rerun finds what is done. Columns come in a fixed order (identity,
axes, the plan, ``sim_``, ``train_``, the reference run, the error, the seconds) whatever order
the rows were written in.
"""

from __future__ import annotations

import io
import os
import time
import uuid

import pandas as pd

from trainplan.experiments.sweep_grid import AXES
from trainplan.experiments.sweep_task import IDENTITY
from trainplan.planner.errors import TrainplanError
from trainplan.planner.fileio import atomic_write_bytes

RESULTS = "results.parquet"
PARTS = "parts"
_TAIL = ("error", "error_type", "needed_bytes", "seconds")
_AXES = tuple(a.name for a in AXES)


class NotASweep(TrainplanError):
    """A directory that holds no sweep results."""


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise TrainplanError("sweep results are Parquet files: pip install "
                             "'trainplan[sweep]'") from None
    return pa, pq


def column_rank(name: str) -> tuple:
    """Where a column goes: identity, axes, plan, simulated, trained, reference, error, time."""
    if name in IDENTITY:
        return (0, IDENTITY.index(name), "")
    if name in _AXES:
        return (1, _AXES.index(name), "")
    if name in _TAIL:
        return (7, _TAIL.index(name), "")
    group = 3 if name.startswith("sim_") else 4 if name.startswith("train_") else \
        5 if name.startswith(("reference_", "same_bits")) else 2
    return (group, 0, name)


def write_part(out: str, rows: list[dict]) -> str:
    """Write ``rows`` (at least one) as one new Parquet file under ``out/parts``
    (atomically); its path."""
    if not rows:
        raise ValueError("write_part needs at least one row")
    pa, pq = _pyarrow()
    columns = sorted({k for r in rows for k in r}, key=column_rank)
    table = pa.table({c: pa.array([r.get(c) for r in rows]) for c in columns})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    path = os.path.join(out, PARTS, f"part-{time.time_ns()}-{uuid.uuid4().hex[:8]}.parquet")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())
    return path


def result_files(out: str) -> list[str]:
    """The Parquet files of a sweep directory: the compacted results first, then the parts."""
    files = [os.path.join(out, RESULTS)] if os.path.isfile(os.path.join(out, RESULTS)) else []
    parts = os.path.join(out, PARTS)
    if os.path.isdir(parts):
        files += sorted(os.path.join(parts, f) for f in os.listdir(parts)
                        if f.endswith(".parquet"))
    return files


def done_keys(out: str) -> set[str]:
    """The task hashes that already have a row."""
    _, pq = _pyarrow()
    keys: set[str] = set()
    for path in result_files(out):
        keys.update(pq.read_table(path, columns=["task_hash"]).column(0).to_pylist())
    return keys


def read_results(out: str, files: list[str] | None = None):
    """Every row of the sweep (``files``: these only) as one Arrow table: each task once,
    columns in their fixed order, rows by task hash; None when there is no row."""
    pa, pq = _pyarrow()
    files = result_files(out) if files is None else files
    if not files:
        return None
    table = pa.concat_tables([pq.read_table(f) for f in files], promote_options="permissive")
    keys = table.column("task_hash").to_pylist()
    first = {}
    for i, key in enumerate(keys):
        first.setdefault(key, i)
    order = sorted(first.values(), key=lambda i: keys[i])
    table = table.take(pa.array(order, type=pa.int64()))
    return table.select(sorted(table.column_names, key=column_rank))


def load_sweep(out: str) -> pd.DataFrame:
    """A sweep's rows as a DataFrame (one per task, sorted by ``task_hash``).

    >>> load_sweep("no/such/sweep")
    Traceback (most recent call last):
    ...
    trainplan.experiments.sweep_store.NotASweep: 'no/such/sweep' holds no sweep results (no results.parquet and no parts/); run `trainplan sweep GRID.toml --out no/such/sweep`
    """
    table = read_results(out)
    if table is None:
        raise NotASweep(f"{out!r} holds no sweep results (no {RESULTS} and no {PARTS}/); run "
                        f"`trainplan sweep GRID.toml --out {out}`")
    return table.to_pandas()


def compact(out: str) -> int:
    """Fold the parts into ``results.parquet`` (atomically), then remove them; the row count.
    A crash in between leaves rows twice on disk, which readers take once."""
    _, pq = _pyarrow()
    files = result_files(out)
    table = read_results(out, files)
    if table is None:
        return 0
    buf = io.BytesIO()
    pq.write_table(table, buf)
    atomic_write_bytes(os.path.join(out, RESULTS), buf.getvalue())
    for path in files:
        if os.path.basename(path) != RESULTS:
            os.remove(path)
    return table.num_rows


def query(out: str, sql: str) -> pd.DataFrame:
    """Run ``sql`` with DuckDB over the sweep's rows, the table named ``results``."""
    return query_frame(load_sweep(out), sql)


def query_frame(results: pd.DataFrame, sql: str) -> pd.DataFrame:
    """Run ``sql`` with DuckDB over ``results`` (a sweep's rows), the table named ``results``."""
    try:
        import duckdb
    except ImportError:
        raise TrainplanError("--query runs DuckDB: pip install 'trainplan[sweep]'") from None
    connection = duckdb.connect()
    try:
        connection.register("results", results)
        return connection.execute(sql).df()
    except duckdb.Error as exc:
        raise TrainplanError(f"--query: {exc}") from None
    finally:
        connection.close()
