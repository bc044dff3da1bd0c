"""`plan --out` then `simulate|timeline|train --plan`: the saved plan is used as is, gives the
same figures and bits as planning inside those commands, and a plan for another model, batch
or order, or one that does not validate, is refused naming why."""

from __future__ import annotations

import json

import pytest

from trainplan.experiments.cli import main

GRAPH = ["--model", "lenet5", "--batch", "4"]
SWAP = ["--budget", "1MB", "--swap", "belady"]


def run_json(capsys, argv):
    code = main(argv + ["--json"])
    out = capsys.readouterr()
    return code, (json.loads(out.out) if code == 0 else out.err)


@pytest.fixture
def saved(tmp_path, capsys):
    path = str(tmp_path / "plan.json")
    code, rec = run_json(capsys, ["plan", *GRAPH, *SWAP, "--out", path])
    assert code == 0 and rec["out"] == path and rec["valid"] and rec["evictions"] > 0
    return path, rec


def test_simulate_and_train_give_the_same_figures_from_a_saved_plan(saved, capsys, tmp_path):
    path, rec = saved
    sim = ["simulate", "--device", "raspberry-pi-4"]
    _, inside = run_json(capsys, [*sim, *GRAPH, *SWAP])
    _, loaded = run_json(capsys, [*sim, "--plan", path])
    assert inside == loaded
    for key in ("arena_bytes", "peak_resident_bytes", "peak_live_bytes"):
        assert loaded[key] == rec[key]
    assert loaded["total_bytes_read"] == rec["bytes_read"]  # one iteration simulated
    train = ["train", "--dataset", "synthetic", "--iterations", "3", "--no-progress",
             "--swap-dir", str(tmp_path)]
    _, planned_here = run_json(capsys, [*train, *GRAPH, *SWAP])
    _, from_file = run_json(capsys, [*train, "--plan", path, *GRAPH])
    assert planned_here["weights_sha256"] == from_file["weights_sha256"]
    assert planned_here["arena_bytes"] == from_file["arena_bytes"] == rec["arena_bytes"]
    out = str(tmp_path / "t.png")
    code, tl = run_json(capsys, ["timeline", "--plan", path, "--device", "raspberry-pi-4",
                                 "--out", out])
    assert code == 0 and tl["arena_bytes"] == rec["arena_bytes"]


@pytest.mark.parametrize("extra,says", [
    (["--batch", "8"], "batch 4.*not model 'lenet5' \\(batch 8"),
    (["--model", "mlp"], "model 'lenet5'.*not model 'mlp'"),
    (["--order", "apply-at-end"], "order 'nntrainer', not 'apply-at-end'"),
    (["--optimizer", "sgd"], "optimizer adam.*optimizer sgd"),
    (["--budget", "1MiB"], "--plan fixes how the graph is planned; drop --budget"),
])
def test_a_plan_for_another_graph_or_order_is_refused(saved, capsys, extra, says):
    path, _ = saved
    for command in (["simulate", "--device", "raspberry-pi-4"],
                    ["train", "--iterations", "1", "--no-progress"]):
        code, err = run_json(capsys, [*command, "--plan", path, *extra])
        assert code == 2, err
        assert __import__("re").search(says, err), err


def test_train_refuses_a_plan_that_does_not_validate(saved, capsys, tmp_path):
    path, _ = saved
    data = json.loads(open(path).read())
    data["buffers"][0]["pieces"][0]["offset"] += 8  # no longer 64-byte aligned
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    code, err = run_json(capsys, ["train", "--plan", str(bad), "--iterations", "1",
                                  "--no-progress"])
    assert code == 2 and "does not validate" in err
    code, err = run_json(capsys, ["simulate", "--plan", str(bad), "--device", "smartwatch"])
    assert code == 2 and "failed validation" in err


@pytest.mark.parametrize("content,says", [("", "is empty"), ("{]", "is not JSON"),
                                          (b"\x00\x01", "binary")])
def test_unreadable_plan_files_are_named(tmp_path, capsys, content, says):
    path = tmp_path / "p.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    code, err = run_json(capsys, ["simulate", "--plan", str(path), "--device", "smartwatch"])
    assert code == 2 and says in err and "Traceback" not in err
    code, err = run_json(capsys, ["simulate", "--plan", str(tmp_path), "--device", "smartwatch"])
    assert code == 2 and "is a directory" in err
