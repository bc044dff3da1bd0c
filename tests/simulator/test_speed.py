"""The simulator is fast enough for sweeps: a 10,000-op iteration in well under a second.

The full benchmark (graphs, swap) is ``python -m trainplan.experiments.bench_simulate``; these are its
quick versions.
"""

from __future__ import annotations

import json

from trainplan.experiments import bench_simulate
from trainplan.simulator.device import load_device
from trainplan.simulator.timeline import simulate_events


def test_ten_thousand_ops_with_transfers_simulate_in_under_a_second():
    steps = bench_simulate.synthetic_steps(10_000)
    transfers = bench_simulate.synthetic_transfers(10_000)
    seconds, tl = bench_simulate._best(
        lambda: simulate_events(steps, transfers, load_device("raspberry-pi-4")), 2)
    assert len(tl.events) == 10_000 and len(tl.transfers) == len(transfers)
    assert seconds < 1.0


def test_bench_writes_json_records(tmp_path, capsys):
    out = tmp_path / "bench.json"
    records = bench_simulate.main(["--ops", "600", "--repeat", "1", "--out", str(out)])
    assert json.loads(out.read_text()) == records
    assert [r["case"] for r in records] == ["engine", "engine+transfers", "simulate(graph)",
                                            "simulate(graph, swap)"]
    assert all(r["ops"] >= 594 and r["seconds"] > 0 for r in records)
    assert "us_per_op" in capsys.readouterr().out
