"""`trainplan plan`, `alloc` and `compare` from the command line."""

import json

import pandas as pd

from trainplan.experiments.cli import main
from trainplan.planner.allocation import AllocationProblem

MNIST = "mnist.ini"  # a shipped example, by name


def run_json(capsys, argv):
    code = main(argv + ["--json"])
    out = capsys.readouterr()
    return code, (json.loads(out.out) if code == 0 else out.err)


def test_plan_reports_nntrainer_pools_for_its_mnist_model(capsys):
    code, out = run_json(capsys, ["plan", "--model", MNIST, "--nntrainer-compat",
                                  "--planner", "nntrainer_v1"])
    assert code == 0
    assert out["weight_pool_bytes"] == 46_776 and out["tensor_pool_bytes"] == 1_106_544
    assert out["valid"] is True and out["optimal"] is None
    for key in ("planner", "arena_bytes", "lower_bound_bytes", "ratio", "solve_seconds"):
        assert key in out
    code, out = run_json(capsys, ["plan", "--model", MNIST, "--nntrainer-compat",
                                  "--planner", "basic", "--no-inplace"])
    assert out["tensor_pool_bytes"] == 2_837_480


def test_alloc_writes_a_solution_and_says_whether_it_fits(tmp_path, capsys):
    src = tmp_path / "p.csv"
    src.write_text("id,lower,upper,size\nb1,0,3,4\nb2,3,9,4\nb3,0,9,4\nb4,9,21,4\nb5,0,21,4\n")
    out_csv = tmp_path / "s.csv"
    code, out = run_json(capsys, ["alloc", str(src), "--planner", "greedy_size",
                                  "--capacity", "12", "--out", str(out_csv)])
    assert code == 0 and out["fits"] is True and out["valid"] is True
    solved = pd.read_csv(out_csv)
    assert list(solved.columns)[-1] == "offset" and len(solved) == 5
    assert AllocationProblem.from_csv(str(out_csv)).lower_bound() == 12


def test_alloc_capacity_below_the_bound_fails_at_once(tmp_path, capsys):
    src = tmp_path / "p.csv"
    src.write_text("id,lower,upper,size\na,0,2,8\nb,1,3,8\n")
    code, err = run_json(capsys, ["alloc", str(src), "--planner", "greedy_size", "--capacity", "10"])
    assert code == 2 and "infeasible: needs at least 16 bytes" in err


def test_alloc_malformed_csv_names_the_line(tmp_path, capsys):
    src = tmp_path / "bad.csv"
    src.write_text("id,lower,upper,size\na,0,2,8\nb,3,3,8\n")
    code, err = run_json(capsys, ["alloc", str(src)])
    assert code == 2 and "line 3" in err


def test_compare_formats(capsys, tmp_path):
    argv = ["compare", "--models", "mlp,lenet5", "--planners", "basic,greedy_size",
            "--batch", "4"]
    code, rows = run_json(capsys, argv)
    assert code == 0 and len(rows) == 4
    assert {r["planner"] for r in rows} == {"basic", "greedy_size"}
    assert all(r["valid"] for r in rows)
    assert main(argv + ["--format", "csv", "--out", str(tmp_path / "c.md")]) == 0
    assert capsys.readouterr().out.startswith("model,planner,arena_bytes,lower_bound_bytes")
    assert (tmp_path / "c.md").read_text().startswith("| model")


def test_compare_unknown_planner_lists_valid_names(capsys):
    assert main(["compare", "--models", "mlp", "--planners", "greedy,basic"]) == 2
    assert "valid:" in capsys.readouterr().err


def test_plan_under_a_budget_swaps_to_fit(capsys):
    from trainplan.planner.build import build_training_graph
    from trainplan.planner.swap import graph_buffers
    from trainplan.planner.swap.working_set import min_budget
    from trainplan.planner.zoo import get_model
    budget = int(1.1 * min_budget(*graph_buffers(build_training_graph(get_model("lenet5",
                                                                                  batch=8)))))
    code, out = run_json(capsys, ["plan", "--model", "lenet5", "--batch", "8", "--budget",
                                  str(budget), "--swap", "belady"])
    assert code == 0 and out["valid"] is True
    assert out["arena_bytes"] <= out["budget_bytes"] == budget
    assert out["peak_resident_bytes"] <= out["budget_bytes"]
    assert out["bytes_written"] > 0 and out["bytes_read"] > 0
    for key in ("min_budget_bytes", "evictions", "prefetches"):
        assert key in out


def test_budget_below_the_minimum_gives_the_minimum(capsys):
    code, err = run_json(capsys, ["plan", "--model", "lenet5", "--budget", "1000"])
    assert code == 2 and "needs at least" in err


def test_budget_units():
    from trainplan.experiments.graph_options import parse_bytes
    assert parse_bytes("64MiB") == 64 * 2**20
    assert parse_bytes("1.5GB") == 1_500_000_000
    assert parse_bytes("1000000") == 1_000_000
