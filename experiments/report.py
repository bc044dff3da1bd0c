"""`trainplan report`: the NNTrainer paper's claims reproduced from one sweep, as Markdown and
figures — memory down to 1/20 with planning and swapping and the simulated slowdown per device,
no accuracy change (the same bits), personalisation on a watch, planners and strategies side by
side — on NNTrainer's own example models and the zoo.

The sweep (two phases, report_grids.py) runs through the same engine as `trainplan sweep` and
resumes like it. Every table is a SQL query over the sweep's rows (printed with its section, so
``trainplan sweep DIR/sweep --query "..."`` reruns it) and names the rows it came from.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from trainplan import __version__
from trainplan.experiments import plot_sweep
from trainplan.experiments.plots import save_figure
from trainplan.experiments.report_grids import BASE_DEVICE, SIZES, WATCH, first_grid, second_grid
from trainplan.experiments.sweep import run_sweep
from trainplan.experiments.sweep_grid import grid_toml, load_grid
from trainplan.experiments.sweep_store import load_sweep, query_frame
from trainplan.planner.errors import TrainplanError
from trainplan.planner.fileio import atomic_write_text

CLAIM_FACTOR = 20  # the paper: training memory down to 1/20 of a conventional framework's


@dataclass
class Section:
    """One claim: its rows (a WHERE clause over the sweep), the table made from them by SQL,
    a verdict, and its figures (file name -> Figure)."""

    title: str
    claim: str
    where: str
    sql: str
    table: pd.DataFrame
    verdict: str
    figures: dict = field(default_factory=dict)
    hashes: list[str] = field(default_factory=list)


def _select(rows: pd.DataFrame, where: str, sql: str) -> tuple[pd.DataFrame, list[str], str]:
    """The table ``sql`` makes of the rows ``where`` selects (as the CTE ``rows``), the hashes
    of those rows, and the full query as printed."""
    full = f"WITH rows AS (SELECT * FROM results WHERE {where})\n{sql.strip()}"
    hashes = query_frame(rows, f"SELECT task_hash FROM results WHERE {where} "
                         "ORDER BY task_hash")["task_hash"].tolist()
    return query_frame(rows, full), hashes, full


_UNSWAPPED = (f"iterations = 0 AND freeze_until IS NULL AND device = '{BASE_DEVICE}' "
              "AND error IS NULL")


def memory_section(rows: pd.DataFrame) -> Section:
    where = _UNSWAPPED + " AND (budget_bytes IS NOT NULL OR offsets_used = 'nntrainer_v1')"
    table, hashes, sql = _select(rows, where, """
SELECT model, batch, max(no_reuse_bytes) AS no_reuse_bytes,
  min(arena_bytes) FILTER (WHERE budget_bytes IS NULL) AS planned_bytes,
  min(peak_resident_bytes) FILTER (WHERE budget_bytes IS NOT NULL) AS swapped_bytes,
  max(no_reuse_bytes) / min(arena_bytes) FILTER (WHERE budget_bytes IS NULL) AS planned_factor,
  max(no_reuse_bytes) / min(peak_resident_bytes) FILTER (WHERE budget_bytes IS NOT NULL)
    AS swapped_factor
FROM rows GROUP BY model, batch ORDER BY no_reuse_bytes""")
    reached = table[table["swapped_factor"] >= CLAIM_FACTOR]["model"].tolist()
    best = table.loc[table["swapped_factor"].idxmax()] if len(table) else None
    verdict = (f"1/{CLAIM_FACTOR} or less reached by {', '.join(reached)}" if reached else
               f"no model reaches 1/{CLAIM_FACTOR}") + (
        f"; the largest reduction is 1/{best['swapped_factor']:.1f} ({best['model']})"
        if best is not None else "")
    return Section("Memory down to 1/20 with planning and swapping",
                   "NNTrainer trains in as little as 1/20 of the memory a conventional "
                   "framework needs (every tensor its own buffer: no reuse), by planning "
                   "buffers over the execution order and swapping to storage.",
                   where, sql, table, verdict,
                   {"memory.png": plot_sweep.plot_memory_reduction(table)}, hashes)


def slowdown_section(rows: pd.DataFrame) -> Section:
    where = ("iterations = 0 AND freeze_until IS NULL AND error IS NULL AND "
             "((budget_bytes IS NULL AND offsets_used = 'nntrainer_v1') OR swap = 'belady')")
    table, hashes, sql = _select(rows, where, """
, unswapped AS (SELECT model, device, min(sim_total_seconds) AS unswapped_seconds
  FROM rows WHERE budget_bytes IS NULL GROUP BY model, device),
least AS (SELECT model, device, peak_resident_bytes, budget_fraction,
    sim_total_seconds AS swapped_seconds, sim_total_stall_seconds AS stall_seconds,
    row_number() OVER (PARTITION BY model, device ORDER BY budget_bytes, task_hash) AS k
  FROM rows WHERE budget_bytes IS NOT NULL)
SELECT model, device, budget_fraction, peak_resident_bytes, unswapped_seconds,
  swapped_seconds, stall_seconds, swapped_seconds / unswapped_seconds AS slowdown
FROM least JOIN unswapped USING (model, device) WHERE k = 1
ORDER BY model, device""")
    if len(table):
        median = table.groupby("device")["slowdown"].median().sort_values()
        verdict = (f"{len(table)} (model, device) pairs; the median slowdown at the smallest "
                   "budget per device: " + ", ".join(f"{d} {v:.2f}×" for d, v in median.items())
                   + " — storage bandwidth against compute decides it")
    else:
        verdict = "no rows"
    return Section("Simulated slowdown per device at the smallest budget",
                   "Swapping costs time where storage cannot keep up with compute; the "
                   "slowdown depends on the device's storage and compute.",
                   where, sql, table, verdict,
                   {"slowdown.png": plot_sweep.plot_slowdown(table)}, hashes)


def bits_section(rows: pd.DataFrame) -> Section:
    where = "reference"
    table, hashes, sql = _select(rows, where, """
SELECT model, batch, dataset, freeze_until, swap_used, budget_bytes, peak_resident_bytes,
  iterations, train_weights_sha256, reference_weights_sha256, same_bits, error
FROM rows ORDER BY model, dataset, budget_bytes NULLS FIRST""")
    ok = table["error"].isna()
    same = bool(len(table)) and bool(table.loc[ok, "same_bits"].fillna(False).all())
    verdict = (f"{int(table.loc[ok, 'same_bits'].fillna(False).sum())} of {int(ok.sum())} "
               "planned runs (swapped or not) end on exactly the reference run's weights"
               + (" — no accuracy change" if same else " — SOME DIFFER"))
    if (~ok).any():
        verdict += f"; {int((~ok).sum())} task(s) failed: see their error"
    return Section("No accuracy change: the same bits",
                   "Planning and swapping change where bytes live, never what is computed: a "
                   "planned, swapped run's weights equal the unplanned run's bit for bit.",
                   where, sql, table, verdict, {}, hashes)


def personal_section(rows: pd.DataFrame) -> Section:
    where = f"dataset = 'digits' AND device = '{WATCH}'"
    table, hashes, sql = _select(rows, where, """
SELECT model, coalesce('fine-tune after ' || freeze_until, 'full training') AS training,
  budget_bytes, peak_resident_bytes, sim_total_seconds, sim_fits, train_test_accuracy,
  train_final_loss, same_bits, error
FROM rows ORDER BY training, budget_bytes NULLS FIRST""")
    ok = table[table["error"].isna()]
    full = ok[ok["training"] == "full training"]
    tuned = ok[ok["training"] != "full training"]
    if len(full) and len(tuned):
        def unswapped(rows) -> float:
            return rows[rows["budget_bytes"].isna()]["peak_resident_bytes"].min() / 2**20

        def accuracies(rows) -> str:
            return ", ".join(f"{a:.1%}" for a in sorted(rows["train_test_accuracy"].unique()))
        verdict = (f"without swapping, fine-tuning the head holds {unswapped(tuned):.2f} MiB "
                   f"against {unswapped(full):.2f} MiB for full training; test accuracy "
                   f"{accuracies(tuned)} after fine-tuning and {accuracies(full)} trained "
                   "fully, swapped or not (one value each: swapping changes no bit); every "
                   f"run fits the watch: {bool(ok['sim_fits'].all())}")
    else:
        verdict = "no rows for both kinds of training"
    figures = {"personalisation.png": plot_sweep.plot_personalisation(ok)} if len(ok) else {}
    return Section("Personalisation on a watch",
                   "A model personalised on the device: the backbone frozen, the head "
                   "fine-tuned on the user's data (here the digits), within a watch's memory.",
                   where, sql, table, verdict, figures, hashes)


def planners_section(rows: pd.DataFrame) -> Section:
    where = _UNSWAPPED + " AND budget_bytes IS NULL"
    table, hashes, sql = _select(rows, where, "SELECT * FROM rows")
    planners = plot_sweep.planner_table(table)
    best = planners.loc[planners.groupby("model")["ratio"].idxmin()]
    verdict = "; ".join(f"{r.model}: {r.planner} {r.ratio:.3f}×" for r in best.itertuples())
    return Section("Offset planners side by side",
                   "How close each planner's arena comes to the lower bound (the most bytes "
                   "live at once), without a budget.", where, sql,
                   planners.drop(columns=["rows"]), "smallest arena over lower bound — "
                   + verdict, {"planners.png": plot_sweep.plot_planner_table(planners)},
                   hashes)


def strategies_section(rows: pd.DataFrame) -> Section:
    where = _UNSWAPPED.replace(" AND error IS NULL", "")
    table, hashes, sql = _select(rows, where, """
SELECT model, batch, coalesce(swap, 'no swap') AS strategy,
  count(*) FILTER (WHERE error IS NULL) AS plans,
  count(*) FILTER (WHERE error IS NOT NULL) AS infeasible,
  min(peak_resident_bytes) AS least_resident_bytes,
  min(sim_total_seconds) AS fastest_seconds
FROM rows GROUP BY ALL ORDER BY model, strategy""")
    ok = query_frame(rows, f"SELECT * FROM results WHERE {where} AND error IS NULL")
    verdict = (f"{int(table['plans'].sum())} plans and {int(table['infeasible'].sum())} "
               "budgets below a planner's minimum")
    return Section("Swap strategies: memory against time", "Each swap planner's trade-off "
                   "between the memory a plan holds and its simulated time per iteration "
                   "(Pareto fronts), and the bytes it moves.", where, sql, table, verdict,
                   {"pareto.png": plot_sweep.plot_pareto(ok),
                    "bytes_moved.png": plot_sweep.plot_bytes_moved(ok)}, hashes)


SECTIONS: tuple[Callable[[pd.DataFrame], Section], ...] = (
    memory_section, slowdown_section, bits_section, personal_section, planners_section,
    strategies_section)


def make_report(out: str, *, size: str = "full", jobs: int | None = None,
                scheduler: str | None = None, progress: bool = True) -> dict:
    """Sweep what the claims need into ``out/sweep`` (resuming), then write
    ``out/report.md`` and ``out/figures/*.png``; what was written and how long it took."""
    if size not in SIZES:
        raise TrainplanError(f"--size {size!r}: one of {', '.join(SIZES)}")
    began, load = time.perf_counter(), os.getloadavg()
    spec = SIZES[size]
    sweep_dir = os.path.join(out, "sweep")
    runs = [_phase(out, "grid-1.toml", first_grid(spec), sweep_dir, jobs, scheduler, progress)]
    runs.append(_phase(out, "grid-2.toml", second_grid(load_sweep(sweep_dir), spec), sweep_dir,
                       jobs, scheduler, progress))
    rows = load_sweep(sweep_dir)
    sections = [make(rows) for make in SECTIONS]
    figures = []
    for section in sections:
        for name, fig in section.figures.items():
            save_figure(fig, os.path.join(out, "figures", name))
            figures.append(os.path.join("figures", name))
    seconds = time.perf_counter() - began
    text = markdown(sections, size=size, rows=len(rows), seconds=seconds, load=load,
                    runs=runs)
    atomic_write_text(os.path.join(out, "report.md"), text)
    return {"report": os.path.join(out, "report.md"), "figures": figures, "rows": len(rows),
            "tasks_run": sum(r["ran"] for r in runs), "seconds": round(seconds, 1),
            "load_average": round(load[0], 2),
            "claims": {s.title: s.verdict for s in sections}}


def _phase(out: str, name: str, tables: list[dict], sweep_dir: str, jobs, scheduler,
           progress: bool) -> dict:
    path = os.path.join(out, name)
    os.makedirs(out, exist_ok=True)
    atomic_write_text(path, grid_toml(tables))
    return run_sweep(load_grid(path), sweep_dir, jobs=jobs, scheduler=scheduler,
                     progress=progress)


def markdown(sections: list[Section], *, size: str, rows: int, seconds: float, load,
             runs: list[dict]) -> str:
    """The report: how it was made, then one part per claim with its verdict, table, figures
    and the query and task hashes of its rows."""
    phases = "; ".join(f"phase {i}: {r['ran']} tasks run, {r['already_done']} already done"
                       for i, r in enumerate(runs, start=1))
    made = (f"Made by `trainplan report --size {size}` from {rows} sweep rows ({phases}) in "
            f"{seconds:,.0f} s (load average {load[0]:.2f} at the start). The grids are "
            "`grid-1.toml` and `grid-2.toml` (the second read off the first's rows); the rows "
            "are in `sweep/`: `trainplan sweep sweep --query \"SQL\"` reruns any query below.")
    lines = [f"# The NNTrainer paper's claims, reproduced (trainplan {__version__})", "", made,
             ""]
    for i, s in enumerate(sections, start=1):
        lines += [f"## {i}. {s.title}", "", f"*Claim.* {s.claim}", "", f"**Found:** {s.verdict}.",
                  "", _table(s.table), ""]
        lines += [f"![{name}](figures/{name})" for name in s.figures] + [""]
        summary = f"<details><summary>From {len(s.hashes)} rows (query and task hashes)</summary>"
        lines += [summary, "", "```sql", s.sql, "```", "", " ".join(s.hashes) or "(none)", "",
                  "</details>", ""]
    return "\n".join(lines)


def _table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "(no rows)"
    shown = frame.copy()
    for column in shown.columns:
        if column.endswith("_bytes"):
            shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{v / 2**20:,.2f}")
            shown = shown.rename(columns={column: column[:-6] + "_MiB"})
        elif column.endswith("sha256"):
            shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else str(v)[:12])
        elif shown[column].dtype == object:
            shown[column] = shown[column].map(lambda v: "" if v is None or pd.isna(v) else v)
    return shown.to_markdown(index=False, floatfmt=".4g")
