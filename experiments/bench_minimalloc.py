"""Benchmark: ``exact`` beside MiniMalloc's C++ binary on MiniMalloc's CSV problems.

    python -m trainplan.experiments.bench_minimalloc CSV_DIR [--minimalloc PATH]
        [--time-limit 10] [--rounds 1] [--out results/bench_minimalloc.json]
    python -m trainplan.experiments.bench_minimalloc --perfect 20 [--minimalloc PATH] ...
    python -m trainplan.experiments.bench_minimalloc CSV_DIR --ablation [--time-limit 30]

``CSV_DIR`` holds MiniMalloc CSVs named ``NAME.CAPACITY.csv`` (its ``benchmarks/challenging``
suite) or ``--capacity`` gives the capacity. Each instance is the decision problem "fit within
the capacity": MiniMalloc runs as a subprocess (``--capacity``, ``--timeout``; its rows are
skipped when ``--minimalloc`` is absent or not a file) and ``exact`` in this process with the
same time limit and ``--workers`` cores, side by side instance by instance (in alternating
order, ``--rounds`` times). Times are wall seconds from reading the CSV to the plan
(MiniMalloc's include its process start; its own "Elapsed time" is recorded too). Every plan,
MiniMalloc's as well, is checked by ``validate_plan``; ``fitted`` means valid and within the
capacity. ``--perfect N`` benchmarks N dense perfect packings (``perfect_packing.DENSE``, 150
to 450 buffers, written as CSVs to a temporary directory) instead. ``--ablation`` decides
the capacity with parts of the portfolio (``exact_portfolio.Strategy``) to show what each
buys. The JSON (rewritten after every row) holds the settings, the load average before and
after, the rows and the per-solver summary printed at the end.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import subprocess
import tempfile
import time

import pandas as pd

from trainplan.planner.allocation import AllocationProblem
from trainplan.planner.fileio import write_json
from trainplan.planner.offsets import run_planner
from trainplan.planner.offsets.exact_common import greedy_warm_start, scale
from trainplan.planner.offsets.exact_portfolio import FULL, Strategy, decide_height
from trainplan.planner.offsets.exact_search import FOUND, Restarts
from trainplan.planner.perfect_packing import DENSE, perfect_packing
from trainplan.planner.plan import Plan
from trainplan.planner.validate import validate_plan

CELLS_ONLY = tuple(s for s in Restarts.SLICES if s[0] == "cell" and s[1])
ABLATION = {  # each step of the portfolio, as measured in docs/BENCHMARKS.md
    "search: cells, 3 preorders": Strategy(search=CELLS_ONLY, cpsat=None, windows=False),
    "search: + MiniMalloc's branching, random restarts": Strategy(cpsat=None, windows=False),
    "CP-SAT clique model, bottom-left slices": Strategy(search=None, windows=False),
    "portfolio on 2 cores": Strategy(windows=False),
    "portfolio + time windows (exact)": FULL,
}


def instances(csv_dir: str, capacity: int | None) -> list[tuple[str, str, int]]:
    """(name, path, capacity) of every CSV in ``csv_dir``, sorted by name."""
    out = []
    for path in sorted(glob.glob(os.path.join(csv_dir, "*.csv"))):
        base = os.path.basename(path)
        match = re.fullmatch(r"(.+)\.(\d+)\.csv", base)
        cap = capacity if capacity is not None else int(match.group(2)) if match else None
        if cap is None:
            raise SystemExit(f"{base}: name it NAME.CAPACITY.csv or give --capacity")
        out.append((match.group(1) if match else base[:-4], path, cap))
    return out


def perfect_instances(count: int, directory: str) -> list[tuple[str, str, int]]:
    """``count`` dense perfect packings (150..450 buffers) written as MiniMalloc CSVs."""
    out = []
    for i in range(count):
        n = 150 + 300 * i // max(1, count - 1)
        problem = perfect_packing(n, seed=i, **DENSE)
        path = os.path.join(directory, f"dense{i:02d}.{problem.capacity}.csv")
        problem.write_csv(path)
        out.append((f"dense{i:02d}", path, problem.capacity))
    return out


def _row(name: str, solver: str, problem: AllocationProblem, offsets: dict | None,
         seconds: float, status: str, **extra) -> dict:
    """One result row; the plan (when there is one) goes through the validator (``valid`` is
    None without a plan)."""
    valid, arena = None, None
    if offsets is not None and set(offsets) == {b.id for b in problem.buffers}:
        arena = max((offsets[b.id] + b.size for b in problem.buffers), default=0)
        plan = Plan(solver, offsets, arena, problem.lower_bound())
        valid = not validate_plan(problem.with_capacity(None), plan)
    fitted = bool(valid) and arena <= problem.capacity
    return {"instance": name, "buffers": len(problem.buffers), "solver": solver,
            "capacity": problem.capacity, "arena_bytes": arena, "fitted": fitted,
            "valid": valid, "status": status, "seconds": round(seconds, 3), **extra}


def run_minimalloc(binary: str, name: str, path: str, capacity: int, time_limit: float) -> dict:
    """MiniMalloc on one CSV (a subprocess); its solution is read back and validated."""
    problem = AllocationProblem.from_csv(path, capacity=capacity)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "solution.csv")
        cmd = [binary, f"--capacity={capacity}", f"--input={path}", f"--output={out}",
               f"--timeout={time_limit}s"]
        began = time.perf_counter()
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=time_limit + 30)
            log, code = done.stderr + done.stdout, done.returncode
        except subprocess.TimeoutExpired:
            log, code = "", -1
        seconds = time.perf_counter() - began
        offsets = None
        if code == 0 and os.path.exists(out):
            solved = AllocationProblem.from_csv(out)
            offsets = {b.id: b.offset for b in solved.buffers}
    reported = re.search(r"Elapsed time ([\d.]+)s", log)
    status = "FEASIBLE" if offsets is not None else f"exit {code}"
    if code == -1 or "DEADLINE_EXCEEDED" in log:
        status = "TIMEOUT"
    return _row(name, "minimalloc", problem, offsets, seconds, status,
                reported_seconds=float(reported.group(1)) if reported else None)


def run_exact(name: str, path: str, capacity: int, time_limit: float, workers: int,
              deterministic: bool) -> dict:
    """``exact`` on one CSV, timed from reading the file to the plan."""
    began = time.perf_counter()
    problem = AllocationProblem.from_csv(path, capacity=capacity)
    plan = run_planner("exact", problem, time_limit=time_limit, seed=0, workers=workers,
                       deterministic=deterministic)
    seconds = time.perf_counter() - began
    return _row(name, "exact", problem, plan.offsets, seconds, plan.status)


def run_strategy(name: str, path: str, capacity: int, label: str, strategy: Strategy,
                 time_limit: float, workers: int) -> dict:
    """Decide the capacity with one part of the portfolio (the ablation)."""
    began = time.perf_counter()
    problem = AllocationProblem.from_csv(path, capacity=capacity)
    s = scale(problem)
    hint, _ = greedy_warm_start(s)
    offsets = hint
    if s.height(hint) > s.capacity:
        out = decide_height(s, s.capacity, deadline=began + time_limit, workers=workers,
                            strategy=strategy)
        offsets = out.offsets if out.result == FOUND else hint
    seconds = time.perf_counter() - began
    return _row(name, label, problem, s.to_bytes(offsets), seconds, "")


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per solver: instances, how many fitted, total and max seconds."""
    grouped = rows.groupby("solver", sort=False)
    return pd.DataFrame({
        "instances": grouped.size(),
        "fitted": grouped["fitted"].sum(),
        "total_s": grouped["seconds"].sum().round(2),
        "max_s": grouped["seconds"].max().round(2),
        "all_valid": grouped["valid"].agg(lambda v: bool(v.dropna().all())),
    }).reset_index()


def side_by_side(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per instance: each solver's seconds (median over rounds) and whether it fit."""
    med = rows.groupby(["instance", "buffers", "solver"], sort=False).agg(
        seconds=("seconds", "median"), fitted=("fitted", "all")).reset_index()
    wide = med.pivot(index=["instance", "buffers"], columns="solver",
                     values=["seconds", "fitted"])
    wide.columns = [f"{solver} {what}" for what, solver in wide.columns]
    return wide.reset_index()


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv_dir", nargs="?", help="directory of NAME.CAPACITY.csv files")
    parser.add_argument("--minimalloc", default=None, help="path of MiniMalloc's binary")
    parser.add_argument("--capacity", type=int, default=None)
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--deterministic", action="store_true")
    parser.add_argument("--perfect", type=int, default=0, metavar="N",
                        help="benchmark N dense perfect packings instead of CSV_DIR")
    parser.add_argument("--ablation", action="store_true", help="run each part of exact")
    parser.add_argument("--out", default="results/bench_minimalloc.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.perfect:
            todo = perfect_instances(args.perfect, tmp)
        elif args.csv_dir:
            todo = instances(args.csv_dir, args.capacity)
        else:
            parser.error("give CSV_DIR or --perfect N")
        return _bench(args, todo)


def _bench(args: argparse.Namespace, todo: list[tuple[str, str, int]]) -> pd.DataFrame:
    binary = args.minimalloc if args.minimalloc and os.path.isfile(args.minimalloc) else None
    if args.minimalloc and binary is None:
        print(f"MiniMalloc not found at {args.minimalloc}: its rows are skipped")
    settings = {"time_limit": args.time_limit, "workers": args.workers, "rounds": args.rounds,
                "deterministic": args.deterministic, "minimalloc": binary,
                "instances": [name for name, _, _ in todo], "cpus": os.cpu_count(),
                "load_before": os.getloadavg(), "perfect": args.perfect}
    rows: list[dict] = []
    for r in range(args.rounds):
        for k, (name, path, capacity) in enumerate(todo):
            for job in _jobs(args, binary, name, path, capacity, flip=(r + k) % 2 == 1):
                rows.append({**job(), "round": r})
                print(_progress(rows[-1]), flush=True)
                write_json(args.out, {"settings": settings, "rows": rows})
    frame = pd.DataFrame(rows)
    table = summary(frame)
    settings["load_after"] = os.getloadavg()
    write_json(args.out, {"settings": settings, "summary": table.to_dict(orient="records"),
                          "side_by_side": side_by_side(frame).to_dict(orient="records"),
                          "rows": rows})
    print(side_by_side(frame).to_markdown(index=False))
    print(table.to_markdown(index=False))
    print(f"load average before {settings['load_before']}, after {settings['load_after']}")
    return table


def _jobs(args, binary, name, path, capacity, flip: bool) -> list:
    """The runs of one instance, in alternating order between instances and rounds."""
    if args.ablation:
        return [lambda label=label, st=st: run_strategy(name, path, capacity, label, st,
                                                         args.time_limit, args.workers)
                for label, st in ABLATION.items()]
    jobs = [lambda: run_exact(name, path, capacity, args.time_limit, args.workers,
                              args.deterministic)]
    if binary:
        jobs.append(lambda: run_minimalloc(binary, name, path, capacity, args.time_limit))
    return jobs[::-1] if flip else jobs


def _progress(row: dict) -> str:
    return (f"{row['instance']:>8} {row['solver']:<48} {row['seconds']:8.2f} s  "
            f"fitted={row['fitted']} valid={row['valid']} {row['status']}")


if __name__ == "__main__":
    main()
