"""Options that would do nothing in a combination are refused, each with the reason; sizes take
units; a missing file is named; every option states its default; broken pipes end quietly."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from trainplan.experiments.cli import main, make_parser

PROBLEM = "id,lower,upper,size\na,0,2,100\nb,1,3,200\nc,2,4,100\n"

# (command line, what the refusal must say): one row per refused combination
REFUSED = [
    # plan, simulate, timeline, train: planning options
    (["plan", "--model", "mlp", "--swap", "belady"], "--swap belady needs --budget BYTES"),
    (["plan", "--model", "mlp", "--budget", "3MiB", "--lookahead", "2"],
     "--lookahead goes with --swap lookahead"),
    (["plan", "--model", "mlp", "--device", "phone-ufs31"],
     "--device guides swapping under a budget and recomputation; give --budget BYTES or --remat"),
    (["plan", "--model", "mlp", "--time-limit", "5"],
     "--time-limit bounds a searching planner (exact, cpsat, --swap optimal or a joint strategy, --remat optimal)"),
    (["plan", "--model", "mlp", "--seed", "3"], "--seed seeds a searching planner"),
    (["plan", "--model", "mlp", "--budget", "3MiB", "--swap", "belady", "--time-limit", "5"],
     "--time-limit bounds a searching planner"),
    (["simulate", "--model", "mlp", "--device", "phone-ufs31", "--time-limit", "5"],
     "--time-limit bounds a searching planner"),
    (["simulate", "--model", "mlp", "--device", "phone-ufs31", "--swap", "optimal"],
     "--swap optimal needs --budget BYTES"),
    (["simulate", "--model", "mlp", "--device", "phone-ufs31", "--stack", "layer"],
     "--stack goes with --out FILE"),
    (["train", "--model", "mlp", "--iterations", "1", "--time-limit", "5"],
     "--time-limit bounds a searching planner"),
    # timeline
    (["timeline", "--model", "mlp"], "give --out FIGURE (.png, .svg or .pdf) or --trace"),
    (["timeline", "--model", "mlp", "--out", "t.jpg"], ".png, .svg or .pdf"),
    (["timeline", "--model", "mlp", "--trace", "t.txt"], "a trace is JSON"),
    (["timeline", "--model", "mlp", "--trace", "t.json", "--x", "eo"],
     "--x goes with --out FIGURE"),
    (["timeline", "--model", "mlp", "--out", "t.png", "--measure-iterations", "3"],
     "--measure-iterations goes with --measured"),
    (["timeline", "--model", "mlp", "--out", "t.png", "--blas-threads", "0"],
     "--blas-threads goes with --measured"),
    (["timeline", "--model", "mlp", "--out", "t.png", "--measured", "--iterations", "2"],
     "--iterations shapes the simulated timeline; --measured simulates the plan the runtime"),
    (["timeline", "--model", "mlp", "--out", "t.png", "--swap-through"],
     "--swap-through goes with --measured"),
    (["timeline", "--model", "mlp", "--out", "t.png", "--measured", "--stack", "layer"],
     "--stack shapes the simulated timeline"),
    (["timeline", "--model", "mlp", "--out", "t.png", "--measured", "--x", "eo"],
     "--x goes with a simulated figure"),
    # train
    (["train", "--model", "mlp", "--iterations", "1", "--swap-through"],
     "--swap-through needs a plan that swaps"),
    (["train", "--model", "mlp", "--iterations", "1", "--swap-dir", "."],
     "--swap-dir needs a plan that swaps"),
    (["train", "--model", "mlp", "--iterations", "1", "--budget", "1TiB", "--swap-dir", "."],
     "--swap-dir needs a plan that swaps"),
    (["train", "--model", "mlp", "--iterations", "1", "--reference", "--budget", "1MiB"],
     "--reference trains without a plan; drop --budget"),
    (["train", "--model", "mlp", "--iterations", "1", "--reference", "--alignment", "128"],
     "--reference trains without a plan; drop --alignment"),
    (["train", "--model", "mlp", "--iterations", "1", "--dataset", "digits", "--samples", "64"],
     "--samples sizes the synthetic data set"),
    (["train", "--model", "mlp", "--resume"], "--resume needs --checkpoint PATH"),
    (["train", "--iterations", "1"], "give --model NAME (or --plan FILE)"),
    # compare
    (["compare", "--models", "mlp", "--planners", "basic", "--json", "--format", "csv"],
     "--json prints JSON, --format csv prints csv; give one"),
    (["compare", "--models", "mlp", "--planners", "basic,greedy_size", "--time-limit", "5"],
     "--time-limit bounds a searching planner (exact, cpsat); none of the planners"),
    (["compare", "--models", "mlp", "--planners", "basic", "--seed", "1"],
     "--seed seeds a searching planner"),
    (["compare", "--models", "mlp", "--planners", "basic", "--plot", "c.jpg"],
     "use a .png, .svg or .pdf"),
    # calibrate
    (["calibrate", "--models", "mlp"], "--models goes with --runtime"),
    (["calibrate", "--batch", "8"], "--batch goes with --runtime"),
    (["calibrate", "--base", "phone-ufs31"], "--base goes with --runtime"),
    (["calibrate", "--measure-iterations", "2"], "--measure-iterations goes with --runtime"),
    (["calibrate", "--blas-threads", "2"], "--blas-threads goes with --runtime"),
    (["calibrate", "--runtime", "--base", "phone-ufs31", "--storage", "8MiB"],
     "--storage says where the storage is measured; --base starts from a profile"),
    (["calibrate", "--runtime", "--base", "phone-ufs31", "--dir", "."],
     "--dir says where the storage is measured"),
]


@pytest.mark.parametrize("argv,says", REFUSED, ids=[" ".join(a[:1] + a[-2:]) for a, _ in
                                                     REFUSED])
def test_an_option_that_would_do_nothing_is_refused_saying_why(capsys, tmp_path, monkeypatch,
                                                                argv, says):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


def test_alloc_refuses_search_options_for_a_greedy_planner(capsys, tmp_path):
    problem = tmp_path / "p.csv"
    problem.write_text(PROBLEM)
    for extra, says in ((["--time-limit", "3"], "greedy_size finishes without searching"),
                        (["--seed", "3"], "greedy_size does not search")):
        assert main(["alloc", str(problem), *extra]) == 2
        assert says in capsys.readouterr().err


def test_alloc_takes_a_capacity_with_units_and_names_a_missing_file(capsys, tmp_path):
    problem = tmp_path / "p.csv"
    problem.write_text(PROBLEM)
    assert main(["alloc", str(problem), "--capacity", "1KiB", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["capacity_bytes"] == 1024 and out["fits"] is True and out["valid"]
    assert main(["alloc", str(tmp_path / "nofile.csv")]) == 2
    err = capsys.readouterr().err
    assert "nofile.csv' does not exist" in err and "missing column" not in err
    with pytest.raises(SystemExit):
        main(["alloc", str(problem), "--capacity", "lots"])
    assert "is not a byte count" in capsys.readouterr().err


def test_alloc_reports_the_solver_figures(capsys, tmp_path):
    problem = tmp_path / "p.csv"
    problem.write_text(PROBLEM)
    assert main(["alloc", str(problem), "--planner", "exact", "--time-limit", "5", "--json"]) \
        == 0
    out = json.loads(capsys.readouterr().out)
    assert out["optimal"] is True and out["arena_bytes"] == out["lower_bound_bytes"] == 300
    assert out["status"] and out["solve_seconds"] > 0 and "gap" in out
    assert "best_bound_bytes" in out


def test_compare_takes_the_graph_options(capsys):
    base = ["compare", "--models", "mlp", "--planners", "nntrainer_v1", "--json"]
    assert main(base) == 0
    plain = json.loads(capsys.readouterr().out)[0]
    assert main([*base, "--optimizer", "sgd", "--batch", "4"]) == 0
    sgd = json.loads(capsys.readouterr().out)[0]
    # sgd keeps no optimizer state: the weight pool shrinks to the weights alone
    assert sgd["weight_pool_bytes"] < plain["weight_pool_bytes"]
    assert main([*base, "--input-shape", "1:28:28", "--batch", "4"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["valid"]


def _options():
    """Every (command, option action) of the command line."""
    parser = make_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        for action in command._actions:
            if action.option_strings and action.dest != "help":
                yield name, action


@pytest.mark.parametrize("command,action", list(_options()),
                         ids=[f"{c} {a.option_strings[-1]}" for c, a in _options()])
def test_every_option_has_help_stating_its_default(command, action):
    assert action.help, f"{command} {action.option_strings} has no help"
    if action.default not in (None, False):
        assert "default" in action.help, f"{command} {action.option_strings}: {action.help}"


def test_the_help_lists_the_planners():
    text = make_parser().format_help()
    for name in ("nntrainer_v1", "greedy_size", "exact", "cpsat", "best", "belady",
                 "lookahead", "optimal"):
        assert name in text


def test_planners_lists_offset_and_swap_planners(capsys):
    assert main(["planners", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    kinds = {(r["kind"], r["planner"]): r["searches"] for r in rows}
    assert kinds[("offsets", "exact")] and kinds[("swap", "optimal")]
    assert not kinds[("offsets", "greedy_size")] and ("swap", "belady") in kinds


def test_a_closed_pipe_ends_quietly():
    proc = subprocess.Popen([sys.executable, "-m", "trainplan", "models"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the table is written (| head -0)
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipe" not in err
    assert proc.returncode == 1
