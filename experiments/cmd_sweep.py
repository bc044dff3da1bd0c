"""`trainplan sweep`: a grid of tasks on Dask into Parquet, or a query over a sweep's rows."""

from __future__ import annotations

import argparse
import os

from trainplan.experiments.output import write_frame
from trainplan.planner.errors import TrainplanError


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: run at least one worker")
    return value


def register(sub) -> None:
    p = sub.add_parser("sweep", help="run a grid of tasks (plan, validate, simulate, train) on "
                       "Dask into Parquet rows, or query a sweep's rows with SQL")
    p.add_argument("source", metavar="GRID.toml|DIR", help="a grid file to run, or with "
                   "--query a sweep directory")
    p.add_argument("--out", default=None, metavar="DIR", help="the sweep directory: rows go "
                   "to DIR/results.parquet; a rerun skips the tasks already there")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--jobs", type=_jobs, default=None, metavar="N",
                       help="worker processes of the embedded Dask cluster on 127.0.0.1 "
                       f"(default: one per core, {os.cpu_count()} here)")
    where.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                       help="run on an existing Dask cluster instead")
    p.add_argument("--query", default=None, metavar="SQL", help="run SQL (DuckDB) over the "
                   "rows of the sweep directory DIR, the table named results")
    p.add_argument("--format", default=None, choices=["table", "csv", "markdown", "json"],
                   help="how --query prints its rows (default table)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run_sweep_command, out_is_directory=True)

    p = sub.add_parser("report", help="reproduce the NNTrainer paper's claims from a sweep: "
                       "Markdown and figures")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for report.md, "
                   "figures/, the grids and the sweep's rows (a rerun resumes the sweep)")
    p.add_argument("--size", default="full", choices=["small", "full"], help="full: "
                   "NNTrainer's example models and the zoo at batch 32 (default); small: two "
                   "small models, for a quick look")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--jobs", type=_jobs, default=None, metavar="N",
                       help="worker processes of the embedded Dask cluster (default: one "
                       "per core)")
    where.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                       help="run the sweep on an existing Dask cluster instead")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run_report, out_is_directory=True)


def run_sweep_command(args: argparse.Namespace):
    if args.query is not None:
        return _query(args)
    from trainplan.experiments.sweep import run_sweep
    from trainplan.experiments.sweep_grid import load_grid

    if args.out is None:
        raise TrainplanError("give --out DIR, the sweep directory the rows go to")
    if args.format is not None:
        raise TrainplanError("--format says how --query prints rows; a sweep prints its "
                             "summary (use --json for JSON)")
    if os.path.isdir(args.source):
        raise TrainplanError(f"{args.source!r} is a directory: run a grid file, or query the "
                             "directory's rows with --query SQL")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise TrainplanError(f"--out {args.out!r} is a file; give a directory")
    tasks = load_grid(args.source)
    return run_sweep(tasks, args.out, jobs=args.jobs, scheduler=args.scheduler,
                     progress=not args.no_progress)


def _query(args: argparse.Namespace) -> None:
    from trainplan.experiments.sweep_store import query

    given = [flag for flag, value in (("--out", args.out), ("--jobs", args.jobs),
                                      ("--scheduler", args.scheduler)) if value is not None]
    if given:
        raise TrainplanError(f"--query reads a sweep directory; drop {', '.join(given)}")
    if not os.path.isdir(args.source):
        raise TrainplanError(f"--query needs a sweep directory; {args.source!r} is not one")
    if not args.query.strip():
        raise TrainplanError("--query is empty; e.g. --query \"SELECT model, count(*) FROM "
                             "results GROUP BY model\"")
    write_frame(query(args.source, args.query), "json" if args.json else args.format or "table")


def run_report(args: argparse.Namespace) -> dict:
    from trainplan.experiments.report import make_report

    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise TrainplanError(f"--out {args.out!r} is a file; give a directory")
    return make_report(args.out, size=args.size, jobs=args.jobs, scheduler=args.scheduler,
                       progress=not args.no_progress)

