"""Every bad input of the reliability audit (issue 16) is answered by the CLI's one error
boundary: exit status 2, no traceback, one message naming the problem (and the fix).

Files (missing, directories, empty, binary, not UTF-8), numbers (non-finite, negative, zero,
past 2^62), paths that cannot be written, memory a request would need, checkpoints that are not
checkpoints — and the inputs that used to be accepted silently (INI ``batch_size = 0``,
``--iterations -5``, ``--samples`` below the batch, ``--epochs 0``, ``--learning-rate nan``, a
device efficiency of NaN, ...). The commands run in-process: an exception escaping ``main``
fails the test as a traceback would.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from trainplan.experiments.cli import MAX_MESSAGE, main
from trainplan.planner.zoo import EXAMPLES_DIR

MNIST = os.path.join(EXAMPLES_DIR, "mnist.ini")
PROFILES = os.path.join(os.path.dirname(__import__("trainplan.simulator.device",
                                                   fromlist=["x"]).__file__), "profiles")
GOOD_CSV = "id,lower,upper,size\na,0,2,64\nb,1,3,32\n"
TRAIN = ["train", "--model", "mlp", "--batch", "4", "--no-progress"]
SIMULATE = ["simulate", "--model", "mlp", "--batch", "4", "--device", "raspberry-pi-4"]
COMMANDS = ("plan", "alloc", "simulate", "timeline", "compare", "graph", "train", "calibrate")


def _profile(**efficiency) -> str:
    with open(os.path.join(PROFILES, "raspberry-pi-4.json")) as fh:
        doc = json.load(fh)
    doc["compute"]["efficiency"].update(efficiency)
    return json.dumps(doc)  # NaN written as NaN, as Python's json does


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The bad files, made once: every name below is relative to this directory."""
    d = tmp_path_factory.mktemp("bad")
    with open(MNIST, encoding="utf-8") as fh:
        mnist = fh.read()
    text = {
        "latin.ini": b"[Model]\nType = NeuralNetwork\n# caf\xe9\n",
        "latin.csv": b"id,lower,upper,size\na,0,1,\xff\n",
        "latin.json": b'{"name": "\xff"}',
        "binary.ini": b"[Model]\x00\x01\x02",
        "empty.ini": b"",
        "bom.ini": b"\xef\xbb\xbf" + mnist.encode(),
        "batch0.ini": mnist.replace("batch_size = 32", "batch_size = 0").encode(),
        "huge.ini": mnist.replace("batch_size = 32", "batch_size = " + "9" * 50_000_000)
        .encode(),
        "huge_unit.ini": mnist.replace("Unit = 10", "Unit = " + "x" * 50_000_000, 1).encode(),
        "size1e30.csv": b"id,lower,upper,size\na,0,1,1000000000000000000000000000000\n",
        "size2e62.csv": f"id,lower,upper,size\na,0,2,{2**62}\n".encode(),
        "sum2e62.csv": f"id,lower,upper,size\na,0,2,{2**61}\nb,1,3,{2**61}\n".encode(),
        "good.csv": GOOD_CSV.encode(),
        "nan.json": _profile(gemm=float("nan")).encode(),
        "inf.json": _profile(conv=float("inf")).encode(),
        "empty.npz": b"",
        "random.npz": np.random.default_rng(0).bytes(5000),
        "pickled.npz": b"PK\x03\x04" + np.random.default_rng(1).bytes(200),
        "latin_plan.json": b'{"schema": "\xff"}',
        "deep.json": b"[" * 100_000,
        "a_file": b"not a directory\n",
    }
    for name, data in text.items():
        (d / name).write_bytes(data)
    assert "batch_size = 0" in (d / "batch0.ini").read_text()
    assert "Unit = 10" in mnist
    for name in ("adir.ini", "adir.csv", "adir.json", "adir.npz"):
        (d / name).mkdir()
    return d


@pytest.fixture
def at(files, monkeypatch):
    monkeypatch.chdir(files)
    return files


def run(capsys, argv: list[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse refuses a value its option's type rejects
        code = exc.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def refused(capsys, argv: list[str], *says: str) -> str:
    """Exit status 2, one error line naming the problem; returns the message."""
    code, err = run(capsys, argv)
    assert code == 2, err
    assert err.count("error:") == 1 and len(err) < MAX_MESSAGE + 200, err[:300]
    for phrase in says:
        assert phrase in err or argparse_form(phrase) in err.replace("'", ""), \
            (phrase, err[:500])
    return err


def argparse_form(phrase: str) -> str:
    """``--option value`` as argparse names an option whose type refused the value."""
    option, _, value = phrase.partition(" ")
    return f"argument {option}: {value}" if option.startswith("--") else phrase


# --- files --------------------------------------------------------------------------------

@pytest.mark.parametrize("argv,says", [
    (["plan", "--model", "latin.ini"], ["latin.ini", "not UTF-8", "save it as UTF-8"]),
    (["plan", "--model", "binary.ini"], ["binary.ini", "binary, not text"]),
    (["plan", "--model", "empty.ini"], ["empty.ini", "is empty"]),
    (["plan", "--model", "adir.ini"], ["adir.ini", "is a directory"]),
    (["alloc", "latin.csv"], ["latin.csv", "not UTF-8"]),
    (["alloc", "adir.csv"], ["adir.csv", "is a directory"]),
    (["alloc", "missing.csv"], ["missing.csv", "does not exist"]),
    ([*SIMULATE[:-1], "latin.json"], ["latin.json", "not UTF-8"]),
    ([*SIMULATE[:-1], "adir.json"], ["adir.json", "is a directory"]),
    ([*SIMULATE[:-1], "./missing.json"], ["missing.json", "does not exist"]),
    ([*SIMULATE[:-1], "deep.json"], ["deep.json", "not valid JSON"]),
    (["simulate", "--plan", "latin_plan.json", "--device", "raspberry-pi-4"],
     ["latin_plan.json", "not UTF-8"]),
    (["simulate", "--plan", "adir.json", "--device", "raspberry-pi-4"], ["is a directory"]),
    (["simulate", "--plan", "deep.json", "--device", "raspberry-pi-4"], ["nests JSON"]),
], ids=lambda v: " ".join(v) if v and v[0] in COMMANDS else None)
def test_unreadable_files_are_named(at, capsys, argv, says):
    refused(capsys, argv, *says)


def test_an_ini_with_a_byte_order_mark_plans_like_the_file_without(at, capsys):
    assert main(["plan", "--model", "bom.ini", "--json"]) == 0
    with_bom = json.loads(capsys.readouterr().out)
    assert main(["plan", "--model", MNIST, "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert with_bom["arena_bytes"] == plain["arena_bytes"] > 0


def test_ini_batch_size_0_is_refused_not_replaced_by_32(at, capsys):
    refused(capsys, ["plan", "--model", "batch0.ini"], "batch0.ini:", "batch_size", "1 or more")


@pytest.mark.parametrize("name", ["huge.ini", "huge_unit.ini"])
def test_a_50_mb_ini_value_is_not_echoed_whole(at, capsys, name):
    err = refused(capsys, ["plan", "--model", name], name, "characters")
    assert len(err) < 1000


# --- numbers and sizes --------------------------------------------------------------------

@pytest.mark.parametrize("name,says", [
    ("size1e30.csv", "size 1e+30 is too large"),
    ("size2e62.csv", "below 2^62"),
    ("sum2e62.csv", "add up to"),
])
def test_csv_sizes_past_int64_are_refused(at, capsys, name, says):
    refused(capsys, ["alloc", name], says)


@pytest.mark.parametrize("argv,says", [
    (["plan", "--model", "mlp", "--budget", "1e400"], "below 2^62"),
    (["plan", "--model", "mlp", "--budget=-1MiB"], "positive"),
    (["plan", "--model", "mlp", "--time-limit", "-1"], "positive, finite"),
    (["plan", "--model", "mlp", "--time-limit", "nan"], "positive, finite"),
    (["plan", "--model", "mlp", "--budget", "1GiB", "--swap", "lookahead", "--lookahead", "-1"],
     "0 or more"),
    (["alloc", "good.csv", "--time-limit", "nan"], "--time-limit nan"),
    (["alloc", "good.csv", "--time-limit", "-1"], "--time-limit -1"),
    (["alloc", "good.csv", "--capacity", "-1"], "--capacity -1"),
    (["compare", "--models", "mlp", "--planners", "basic", "--time-limit", "inf"],
     "--time-limit inf"),
    (["compare", "--models", "mlp", "--planners", "basic", "--batch", "0"], "--batch 0"),
    ([*SIMULATE, "--iterations", "-5"], "--iterations -5"),
    ([*SIMULATE, "--iterations", "0"], "--iterations 0"),
    ([*TRAIN, "--iterations", "-5"], "--iterations -5"),
    ([*TRAIN, "--epochs", "0"], "--epochs 0"),
    ([*TRAIN, "--samples", "3"], "fewer than one batch of 4"),
    ([*TRAIN, "--iterations", "1", "--learning-rate", "nan"], "--learning-rate nan"),
    ([*TRAIN, "--iterations", "1", "--learning-rate", "inf"], "--learning-rate inf"),
    ([*TRAIN, "--iterations", "1", "--learning-rate", "0"], "--learning-rate 0"),
    ([*TRAIN, "--iterations", "1", "--learning-rate", "-0.1"], "--learning-rate -0.1"),
    ([*TRAIN, "--iterations", "1", "--seed", "-1"], "--seed -1"),
    (["calibrate", "--storage", "-1"], "--storage -1"),
    (["calibrate", "--storage", "0"], "--storage 0"),
    ([*SIMULATE[:-1], "nan.json"], "compute.efficiency.gemm must be a number > 0 and finite"),
    ([*SIMULATE[:-1], "inf.json"], "compute.efficiency.conv must be a number > 0 and finite"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_numbers_outside_their_meaning_are_refused(at, capsys, argv, says):
    refused(capsys, argv, says)


# --- paths that cannot be written ---------------------------------------------------------

TRAINED = [*TRAIN, "--iterations", "1"]


@pytest.mark.parametrize("argv", [
    ["alloc", "good.csv", "--out", "{d}/x.csv"],
    [*SIMULATE, "--out", "{d}/x.json"],
    ["plan", "--model", "mlp", "--out", "{d}/plan.json"],
    ["compare", "--models", "mlp", "--planners", "basic", "--out", "{d}/x.csv"],
    ["graph", "--model", "mlp", "--export", "dot", "{d}/x.dot"],
    [*TRAINED, "--checkpoint", "{d}/c.npz"],
    ["calibrate", "--storage", "1MiB", "--dir", "{d}"],
    [*TRAINED, "--budget", "100KiB", "--swap-dir", "{d}"],
], ids=lambda v: f"{v[0]} {v[-2]}")
def test_a_missing_directory_is_named_with_the_fix(at, capsys, argv):
    argv = [a.format(d="no/such/dir") for a in argv]
    refused(capsys, argv, "no/such/dir", "does not exist", "mkdir -p")
    assert not os.path.exists("no")


@pytest.mark.parametrize("argv", [
    [*SIMULATE[:2], "mlp", "--device", "raspberry-pi-4", "--out", "a_file/x.json"],
    ["timeline", "--model", "mlp", "--batch", "4", "--out", "a_file/x.png"],
    ["compare", "--models", "mlp", "--planners", "basic", "--plot", "a_file/x.png"],
    [*TRAINED, "--checkpoint", "a_file/c.npz"],
    ["calibrate", "--storage", "1MiB", "--dir", "a_file"],
], ids=["simulate", "timeline", "compare --plot", "train --checkpoint", "calibrate --dir"])
def test_a_file_where_a_directory_should_be_is_named(at, capsys, argv):
    refused(capsys, argv, "a_file", "not a directory")


def test_an_output_that_is_a_directory_is_named(at, capsys):
    refused(capsys, ["alloc", "good.csv", "--out", "adir.csv"], "adir.csv", "is a directory")


def test_figures_create_their_directory_as_documented(at, capsys):
    code, err = run(capsys, ["compare", "--models", "mlp", "--planners", "basic", "--plot",
                             "figs/new/x.png"])
    assert code == 0, err
    assert os.path.getsize("figs/new/x.png") > 0
    shutil.rmtree("figs")


@pytest.mark.parametrize("argv", [
    ["alloc", "good.csv", "--out", "ro/x.csv"],
    [*SIMULATE, "--out", "ro/x.json"],
    ["timeline", "--model", "mlp", "--batch", "4", "--out", "ro/x.png"],
    ["compare", "--models", "mlp", "--planners", "basic", "--plot", "ro/x.png"],
    ["graph", "--model", "mlp", "--export", "dot", "ro/x.dot"],
    ["calibrate", "--storage", "1MiB", "--dir", "ro"],
    [*TRAINED, "--checkpoint", "ro/c.npz"],
], ids=["alloc", "simulate", "timeline", "compare --plot", "graph --export", "calibrate",
        "train --checkpoint"])
def test_a_read_only_directory_is_named(at, capsys, monkeypatch, argv):
    os.makedirs("ro", exist_ok=True)
    os.chmod("ro", 0o555)
    if os.geteuid() == 0:  # root writes anywhere: let the directory say it is read-only
        access = os.access
        monkeypatch.setattr(os, "access", lambda path, mode: access(path, mode) and not (
            os.path.basename(os.fspath(path)) == "ro" and mode & os.W_OK))
    try:
        refused(capsys, argv, "ro", "not writable")
    finally:
        os.chmod("ro", 0o755)


def test_a_full_disk_is_named_with_the_fix(at, capsys, monkeypatch):
    """An OSError the checks cannot foresee (ENOSPC while writing) names its file and a fix."""
    import errno

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "x.csv")
    monkeypatch.setattr(os, "fsync", full)
    refused(capsys, ["alloc", "good.csv", "--out", "x.csv"], "x.csv", "free some space")
    assert not [n for n in os.listdir(".") if n.startswith(".tmp-")]


# --- checkpoints --------------------------------------------------------------------------

@pytest.mark.parametrize("name,says", [
    ("empty.npz", "is empty"),
    ("random.npz", "is not a trainplan checkpoint"),
    ("pickled.npz", "is not a trainplan checkpoint"),
    ("adir.npz", "is a directory"),
    ("missing.npz", "does not exist"),
])
def test_a_checkpoint_that_is_not_one_is_named(at, capsys, name, says):
    err = refused(capsys, [*TRAINED, "--checkpoint", name, "--resume"], name, says)
    assert "allow_pickle" not in err


# --- memory -------------------------------------------------------------------------------

def test_train_batch_1000000_is_refused_with_the_bytes_needed(at, capsys):
    refused(capsys, ["train", "--model", "mlp", "--batch", "1000000", "--iterations", "1",
                     "--no-progress"], "needs", "bytes", "of RAM available")


def test_an_arena_larger_than_the_ram_is_refused_before_it_is_allocated(at, capsys,
                                                                         monkeypatch):
    from trainplan.planner import resources

    monkeypatch.setattr(resources, "available_bytes", lambda: 1_000_000)
    err = refused(capsys, [*TRAINED], "the plan's arena needs", "1,000,000 bytes", "--budget")
    assert "synthetic" not in err  # the data (4 x 8 samples) fit; the arena does not


def test_simulating_100_million_iterations_is_refused_with_the_bytes_needed(at, capsys):
    refused(capsys, [*SIMULATE, "--iterations", "100000000"], "100,000,000 iterations",
            "needs", "of RAM available", "fewer iterations")


def test_a_memory_error_left_is_named_with_its_size(at, capsys, monkeypatch):
    try:
        from numpy._core._exceptions import _ArrayMemoryError
    except ImportError:  # numpy 1.x
        from numpy.core._exceptions import _ArrayMemoryError
    from trainplan.experiments import cmd_graph

    def fail(args):
        raise _ArrayMemoryError((2**40,), np.dtype(np.uint8))
    monkeypatch.setattr(cmd_graph, "graph_summary", lambda *a: fail(None))
    refused(capsys, ["graph", "--model", "mlp"], "out of memory", "1,099,511,627,776 bytes",
            "--batch")


# --- NNTrainer-compatible graphs ----------------------------------------------------------

def test_training_a_compat_graph_is_refused_with_the_reason(at, capsys):
    refused(capsys, [*TRAINED, "--nntrainer-compat"], "--nntrainer-compat",
            "drop --nntrainer-compat")
    refused(capsys, [*TRAINED, "--nntrainer-compat", "--reference"], "drop --nntrainer-compat")


def test_a_reader_that_leaves_early_gets_no_traceback(at):
    """`trainplan ... | head`: the pipe closes before the output is written."""
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-m", "trainplan", "compare", "--models",
                                "lenet5,mlp", "--planners", "all", "--format", "csv"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.close()
    err = process.stderr.read()
    assert process.wait(timeout=300) in (0, 1)
    assert "Traceback" not in err and "Exception ignored" not in err, err[-500:]
