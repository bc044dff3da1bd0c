"""Sweep grids: the cross product, defaults, task keys, and every bad grid answered by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainplan.experiments.cli import main
from trainplan.experiments.sweep_grid import (
    AXES,
    InvalidGrid,
    expand_grid,
    load_grid,
    plan_keywords,
    task_key,
)
from trainplan.planner.zoo import EXAMPLES_DIR


def write(tmp_path, text: str, name: str = "grid.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_cross_product_of_every_list_in_file_order(tmp_path):
    tasks = load_grid(write(tmp_path, 'model = ["mlp", "lenet5"]\nbatch = [2, 4]\n'
                            'offsets = ["best_fit", "greedy_size", "nntrainer_v1"]\n'))
    assert [(t.axes["model"], t.axes["batch"], t.axes["offsets"]) for t in tasks][:4] == [
        ("mlp", 2, "best_fit"), ("mlp", 2, "greedy_size"), ("mlp", 2, "nntrainer_v1"),
        ("mlp", 4, "best_fit")]
    assert len(tasks) == 12 and len({t.key for t in tasks}) == 12


def test_defaults_filled_in_and_resolved_from_the_model():
    (task,) = expand_grid({"model": "mnist.ini"})
    assert task.axes["batch"] == 32 and task.axes["optimizer"] == "adam"  # the INI file's
    assert task.axes["order"] == "nntrainer" and task.axes["device"] == "raspberry-pi-4"
    assert set(task.axes) == {a.name for a in AXES}
    assert task.model_sha256 is not None and len(task.device_sha256) == 64


def test_tables_are_a_union_and_a_repeated_task_runs_once(tmp_path):
    tasks = load_grid(write(tmp_path, """
[[grid]]
model = ["mlp"]
batch = [2]
[[grid]]
model = ["mlp"]
batch = [2, 4]
budget_fraction = ["none", 0.9]
swap = ["none"]
"""))
    assert [(t.axes["batch"], t.axes["budget_fraction"]) for t in tasks] == [
        (2, None), (2, 0.9), (4, None), (4, 0.9)]


def test_key_depends_on_axes_version_device_and_model_content(tmp_path):
    (a,) = expand_grid({"model": "mlp", "batch": 2})
    (b,) = expand_grid({"model": "mlp", "batch": 2, "seed": 0})  # the default, spelled out
    (c,) = expand_grid({"model": "mlp", "batch": 2, "device": "smartwatch"})
    assert a.key == b.key != c.key
    assert task_key(a.axes, a.device_sha256, None) == a.key
    assert task_key(a.axes, "0" * 64, None) != a.key  # another profile content
    # the same file name with another content is another task
    text = (Path(EXAMPLES_DIR) / "mnist.ini").read_text()
    (tmp_path / "m.ini").write_text(text)
    (one,) = expand_grid({"model": str(tmp_path / "m.ini")})
    (tmp_path / "m.ini").write_text(text.replace("filters = 12", "filters = 10"))
    (two,) = expand_grid({"model": str(tmp_path / "m.ini")})
    assert one.key != two.key and one.axes == two.axes


def test_none_valued_axes_leave_keys_alone():
    """A new axis at its None default does not change the keys of existing tasks."""
    (task,) = expand_grid({"model": "mlp", "batch": 2})
    extra = {**task.axes, "some_new_axis": None}
    assert task_key(extra, task.device_sha256, None) == task.key


def test_plan_options_are_the_plan_training_keywords_set():
    (task,) = expand_grid({"model": "mlp", "batch": 2, "budget_fraction": 0.95,
                           "swap": "lookahead", "lookahead": 2})
    options = task.plan_options()
    assert options == {"order": "nntrainer", "swap": "lookahead", "lookahead": 2, "seed": 0,
                       "time_limit": 10.0}
    assert set(options) <= plan_keywords()


@pytest.mark.parametrize("text, words", [
    ('batch = [2]\n', ["missing key", "model"]),
    ('model = ["nope"]\n', ["model 'nope'", "unknown model"]),
    ('model = ["nope.ini"]\n', ["nope.ini", "does not exist"]),
    ('model = ["mlp"]\noffsets = ["fastest"]\n', ["offsets = 'fastest'", "one of", "best_fit"]),
    ('model = ["mlp"]\nbudget_fraction = [0.5]\nswap = ["fifo"]\n', ["swap = 'fifo'",
                                                                     "belady"]),
    ('model = ["mlp"]\norder = ["random"]\n', ["order = 'random'", "nntrainer"]),
    ('model = ["mlp"]\ndevice = ["toaster"]\n', ["device 'toaster'", "unknown device"]),
    ('model = ["mlp"]\nbatch = ["8"]\n', ["batch = '8'", "whole number"]),
    ('model = ["mlp"]\nbatch = [0]\n', ["batch = 0", "at least 1"]),
    ('model = ["mlp"]\nbatch = [2.5]\n', ["batch = 2.5", "whole number"]),
    ('model = ["mlp"]\nbudget_fraction = [-1]\n', ["budget_fraction = -1", "positive"]),
    ('model = ["mlp"]\nbudget = ["lots"]\n', ["budget = 'lots'", "byte count"]),
    ('model = ["mlp"]\ninplace = ["yes"]\n', ["inplace = 'yes'", "true or false"]),
    ('model = ["mlp"]\niterations = [-2]\n', ["iterations = -2", "at least 0"]),
    ('model = ["mlp"]\nalignment = [48]\n', ["alignment = 48", "power of two"]),
    ('model = ["mlp"]\nbatches = [2]\n', ["unknown key", "batches", "valid keys"]),
    ('model = []\n', ["model is an empty list"]),
    ('model = ["mlp"]\nswap = ["belady"]\n', ["needs a budget", "[[grid]]"]),
    ('model = ["mlp"]\nbudget = ["1MiB"]\nbudget_fraction = [0.5]\n', ["not both"]),
    ('model = ["mlp"]\noffsets = ["best"]\n', ["'best'", "budget"]),
    ('model = ["mlp"]\nlookahead = [3]\n', ["lookahead goes with swap 'lookahead'"]),
    ('model = ["mlp"]\nreference = true\n', ["reference", "iterations"]),
    ('model = ["lenet5"]\nfreeze_until = ["conv9"]\n', ["conv9", "not a layer", "fc1"]),
    ('model = ["mlp"]\nextra = 1\n[[grid]]\nmodel = ["mlp"]\n', ["beside [[grid]]", "extra"]),
    ('grid = 3\n', ["[[grid]] tables"]),
    ('model = ["mlp"\n', ["not a TOML file"]),
])
def test_bad_grids_are_named_errors(tmp_path, text, words):
    with pytest.raises(InvalidGrid) as err:
        load_grid(write(tmp_path, text))
    message = str(err.value)
    assert str(tmp_path / "grid.toml") in message
    for word in words:
        assert word in message


def test_pass_through_axes_need_plan_training_to_take_them():
    for axis in ("remat", "split"):
        value = "auto" if axis == "split" else "sqrt"
        if axis in plan_keywords():  # once recomputation lands, unknown names are refused
            with pytest.raises(InvalidGrid, match=f"{axis} = 'no-such-thing'"):
                expand_grid({"model": "mlp", axis: "no-such-thing"})
            assert expand_grid({"model": "mlp", axis: value})[0].plan_options()[axis] == value
        else:
            with pytest.raises(InvalidGrid, match=f"plan_training takes no '{axis}'"):
                expand_grid({"model": "mlp", axis: value})


def test_missing_and_binary_grid_files(tmp_path):
    with pytest.raises(InvalidGrid, match="does not exist"):
        load_grid(str(tmp_path / "none.toml"))
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InvalidGrid, match="not a TOML file"):
        load_grid(str(tmp_path / "bin.toml"))
    with pytest.raises(InvalidGrid, match="is a directory"):
        load_grid(str(tmp_path))


def test_cli_answers_bad_grids_and_options_without_a_traceback(tmp_path, capsys):
    grid = write(tmp_path, 'model = ["mlp"]\nbatch = ["x"]\n')
    assert main(["sweep", grid, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("trainplan sweep: error:") and "batch = 'x'" in err
    assert "Traceback" not in err
    assert main(["sweep", grid]) == 2
    assert "give --out DIR" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["sweep", grid, "--out", "x", "--jobs", "0"])
    assert "run at least one worker" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["sweep", grid, "--out", "x", "--jobs", "2", "--scheduler", "tcp://127.0.0.1:1"])
    assert "not allowed with" in capsys.readouterr().err
    good = write(tmp_path, 'model = ["mlp"]\n', "good.toml")
    assert main(["sweep", good, "--out", str(tmp_path / "o"), "--scheduler", "127.0.0.1"]) == 2
    assert "tcp://HOST:PORT" in capsys.readouterr().err
    assert main(["sweep", str(tmp_path), "--query", "SELECT 1"]) == 2
    assert "holds no sweep results" in capsys.readouterr().err
    assert main(["sweep", good, "--query", "SELECT 1"]) == 2
    assert "needs a sweep directory" in capsys.readouterr().err
    assert main(["sweep", str(tmp_path), "--out", "x"]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert main(["sweep", good, "--out", "x", "--format", "csv"]) == 2
    assert "--format says how --query prints" in capsys.readouterr().err
    assert main(["sweep", str(tmp_path), "--query", " "]) == 2
    assert "--query is empty" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert main(["sweep", good, "--out", str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err
    assert main(["report", "--out", str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["report", "--out", "x", "--size", "huge"])
    assert "invalid choice" in capsys.readouterr().err
