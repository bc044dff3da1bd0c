"""Exports: a timeline as Chrome trace-event JSON (simulated and measured), a plan's pieces as
CSV, the arena and offsets as a C header that a C compiler accepts and that says the same."""

from __future__ import annotations

import json
import shutil
import subprocess

import pandas as pd
import pytest

from trainplan.experiments.cli import main
from trainplan.experiments.exports import c_header, c_identifier
from trainplan.experiments.trace import measured_events, timeline_events, trace_document
from trainplan.planner.build import build_training_graph
from trainplan.planner.plan_training import plan_training
from trainplan.planner.zoo import get_model
from trainplan.runtime.measure import measure
from trainplan.simulator.simulate import simulate

STEPS = {"forward", "calc_gradient", "calc_derivative", "apply_gradient"}


@pytest.fixture(scope="module")
def lenet4():
    return build_training_graph(get_model("lenet5", batch=4))


@pytest.fixture(scope="module")
def swapped(lenet4):
    bounds = plan_training(lenet4).bounds
    return plan_training(lenet4, budget=(bounds.min_budget_bytes + bounds.lower_bound_bytes) // 2)


def _slices(doc: dict, pid: int) -> list[dict]:
    return [e for e in doc["traceEvents"] if e["ph"] == "X" and e["pid"] == pid]


def _check_format(doc: dict) -> None:
    """What trace viewers need: a traceEvents list, every event a phase, a process, and for
    slices and counters a time in µs (slices a duration, counters numeric values)."""
    assert isinstance(doc["traceEvents"], list) and doc["traceEvents"]
    for e in doc["traceEvents"]:
        assert e["ph"] in ("X", "C", "M") and isinstance(e["pid"], int)
        if e["ph"] in ("X", "C"):
            assert isinstance(e["ts"], (int, float)) and e["ts"] >= 0
        if e["ph"] == "X":
            assert isinstance(e["dur"], (int, float)) and e["dur"] >= 0 and e["name"]
        if e["ph"] == "C":
            assert e["args"] and all(isinstance(v, int) for v in e["args"].values())


def test_timeline_trace_parses_back_with_a_slice_per_op_and_transfer(capsys, tmp_path, lenet4,
                                                                    swapped):
    path = tmp_path / "trace.json"
    budget = str(swapped.budget_bytes)
    assert main(["timeline", "--model", "lenet5", "--batch", "4", "--budget", budget,
                 "--device", "smartwatch", "--iterations", "2", "--trace", str(path),
                 "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    doc = json.loads(path.read_text())
    _check_format(doc)
    tl = simulate(lenet4, swapped, "smartwatch", iterations=2)
    slices = _slices(doc, 1)
    ops = [e for e in slices if e["cat"] in STEPS]
    moved = tl.transfers[~tl.transfers["skipped"].astype(bool)]
    assert len(ops) == len(tl.events) == 2 * rec["ops"]
    assert len([e for e in slices if e["cat"] in ("read", "write")]) == len(moved) > 0
    assert len([e for e in slices if e["cat"] == "stall"]) == int((tl.events["stall_s"] > 0).sum())
    # the op slices are the simulated ops, in µs
    first = tl.events.iloc[0]
    assert ops[0]["name"] == first["op"]
    assert ops[0]["dur"] == pytest.approx((first["end_s"] - first["start_s"]) * 1e6, abs=1e-3)
    memory = [e["args"] for e in doc["traceEvents"] if e["ph"] == "C" and e["name"] == "memory"]
    assert max(m["held_bytes"] for m in memory) == rec["arena_bytes"]
    assert max(m["live_bytes"] for m in memory) == rec["peak_live_bytes"]
    assert max(m["resident_bytes"] for m in memory) == rec["peak_resident_bytes"]
    threads = {e["args"]["name"] for e in doc["traceEvents"] if e["name"] == "thread_name"}
    assert "compute" in threads and any(t.startswith("storage") for t in threads)


def test_a_measured_timeline_traces_one_slice_per_measured_eo(lenet4):
    plan = plan_training(lenet4)
    m = measure(lenet4, plan, warmup=1, iterations=2)
    tl = simulate(lenet4, plan, "raspberry-pi-4")
    doc = json.loads(json.dumps(trace_document(timeline_events(tl) + measured_events(m.events,
                                                                                    plan))))
    _check_format(doc)
    measured = [e for e in _slices(doc, 2) if e["cat"] != "stall"]
    assert len(measured) == len(m.events) and len(_slices(doc, 1)) == len(tl.events)
    rss = [e["args"]["rss_bytes"] for e in doc["traceEvents"]
           if e["ph"] == "C" and e["pid"] == 2 and e["name"] == "process"]
    assert len(rss) == len(m.events) and min(rss) > 0
    held = [e["args"]["held_bytes"] for e in doc["traceEvents"]
            if e["ph"] == "C" and e["pid"] == 2 and e["name"] == "memory"]
    assert max(held) == plan.arena_bytes


def test_plan_writes_its_pieces_as_csv(capsys, tmp_path, swapped):
    path = tmp_path / "buffers.csv"
    assert main(["plan", "--model", "lenet5", "--batch", "4", "--budget",
                 str(swapped.budget_bytes), "--buffers", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["buffers"] == str(path)
    rows = pd.read_csv(path)
    assert list(rows.columns) == ["buffer", "piece", "role", "pool", "bytes", "start", "end",
                                  "offset"]
    assert len(rows) == sum(len(b.pieces) for b in swapped.buffers) > len(swapped.buffers)
    assert int((rows["offset"] + rows["bytes"]).max()) == swapped.arena_bytes
    by_piece = {(b.id, i): (p.offset, p.start, p.end) for b in swapped.buffers
                for i, p in enumerate(b.pieces)}
    for r in rows.itertuples():
        assert by_piece[(r.buffer, r.piece)] == (r.offset, r.start, r.end)


def test_identifiers_are_sanitised():
    assert c_identifier("conv1:out0") == "CONV1_OUT0"
    assert c_identifier("a--b::c") == "A_B_C"
    assert c_identifier("1st") == "B_1ST"
    assert c_identifier("::") == "B_"


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_the_c_header_compiles_and_says_what_the_plan_says(capsys, tmp_path, swapped):
    header = tmp_path / "lenet5_plan.h"
    assert main(["plan", "--model", "lenet5", "--batch", "4", "--budget",
                 str(swapped.budget_bytes), "--c-header", str(header)]) == 0
    text = header.read_text()
    assert f"#define LENET5_ARENA_BYTES {swapped.arena_bytes}u" in text
    program = tmp_path / "main.c"
    program.write_text(
        '#include <stdio.h>\n#include "lenet5_plan.h"\n'
        "int main(void) {\n"
        "  static unsigned char arena[LENET5_ARENA_BYTES];\n"
        "  unsigned long top = 0;\n"
        "  for (unsigned i = 0; i < LENET5_PIECE_COUNT; i++) {\n"
        "    unsigned long end = LENET5_OFFSETS[i] + LENET5_SIZES[i];\n"
        "    if (end > top) top = end;\n"
        "  }\n"
        '  printf("%u %lu %u %lu\\n", (unsigned) LENET5_PIECE_COUNT, top,\n'
        "         (unsigned) LENET5_ARENA_ALIGNMENT, (unsigned long) sizeof arena);\n"
        "  return 0;\n}\n")
    exe = tmp_path / "main"
    subprocess.run(["cc", "-std=c99", "-Wall", "-Werror", "-o", str(exe), str(program)],
                   check=True, cwd=tmp_path)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split()
    pieces = sum(len(b.pieces) for b in swapped.buffers)
    assert [int(v) for v in out] == [pieces, swapped.arena_bytes, swapped.alignment,
                                     swapped.arena_bytes]


def test_every_piece_gets_its_own_name(swapped):
    text = c_header(swapped)
    enum = [line.split("=")[0].strip() for line in text.splitlines()
            if line.startswith("    LENET5_")]
    assert len(enum) == len(set(enum)) == sum(len(b.pieces) for b in swapped.buffers)
