"""A tour of the notebook API (docs/api.md): plan LeNet-5 under a RAM budget, simulate it on a
phone, compare offset planners, train inside the planned arena, and export what other tools
read. Run it as ``python docs/examples/api_tour.py [output directory]``; CI runs it
(tests/test_api.py)."""

import os
import sys

import matplotlib

matplotlib.use("Agg")  # this script only writes files; a notebook keeps its own backend

import matplotlib.pyplot as plt

import trainplan as tp

out = sys.argv[1] if len(sys.argv) > 1 else "."
os.makedirs(out, exist_ok=True)

# a model's training graph, and its plan without and with a RAM budget
g = tp.graph("lenet5", batch=8)
unswapped = tp.plan(g)
plan = tp.plan(g, budget="1.2MB", swap="belady")
print(unswapped)
print(plan)
print(plan.record()["peak_resident_bytes"], "bytes resident at most, under", plan.budget_bytes)

# the plan simulated on a phone: a Timeline with a summary and DataFrames
tl = tp.simulate(g, plan, "phone-ufs31", iterations=2)
print(tl.summary)
print(tl.events[["eo", "step", "layer", "start_s", "end_s", "stall_s"]].head())

# offset planners side by side (a table, the curves, a figure)
comparison = tp.compare("lenet5", ["nntrainer_v1", "greedy_size", "best_fit"], batch=8)
print(comparison.table[["planner", "arena_bytes", "lower_bound_bytes", "ratio"]])

# figures draw into the Axes they are given and return the Figure
fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 10), layout="constrained")
tp.plot_timeline(tl, ax=top)
comparison.plot(ax=bottom)
fig.savefig(os.path.join(out, "tour.png"), bbox_inches="tight")

# training inside the planned arena (synthetic data here; dataset="digits" learns digits)
report = tp.train(g, plan, iterations=4)
print(report)
print(report.epochs)

# exports: a Perfetto trace, the pieces as CSV, the arena as a C header
tp.trace(tl, os.path.join(out, "lenet5_trace.json"))
tp.buffers(plan).to_csv(os.path.join(out, "lenet5_buffers.csv"), index=False)
tp.c_header(plan, os.path.join(out, "lenet5_plan.h"))
print("wrote", ", ".join(sorted(os.listdir(out))))
