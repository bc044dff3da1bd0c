"""`--model` with an imported model on the command line: PyTorch factories and ONNX files
(skipped without the extras), their weights in `train`, and refusals without a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from trainplan.experiments.cli import main
from trainplan.planner.zoo import EXAMPLES_DIR

MODELS = os.path.join(EXAMPLES_DIR, "torch_models.py")


def test_graph_of_a_pytorch_factory(capsys):
    pytest.importorskip("torch")
    assert main(["graph", "--model", f"{MODELS}:small_lstm", "--input-shape", "5:4",
                 "--batch", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    # LSTM(4, 8) then LSTM(8, 8) with both biases (448 + 576), Linear(8, 3) (27)
    assert out["parameters"] == 448 + 576 + 27


def test_train_runs_an_imported_model(capsys):
    pytest.importorskip("torch")
    assert main(["train", "--model", f"{MODELS}:small_cnn", "--input-shape", "3:8:8",
                 "--batch", "4", "--dataset", "synthetic", "--iterations", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["iterations"] == 2 and out["final_loss"] > 0


def test_refusals_exit_without_a_traceback():
    pytest.importorskip("torch")
    proc = subprocess.run([sys.executable, "-m", "trainplan.experiments.cli", "graph",
                           "--model", f"{MODELS}:unsupported_op", "--input-shape", "4"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert "aten.sort" in proc.stderr and "Traceback" not in proc.stderr


def test_graph_of_an_onnx_file(capsys, tmp_path):
    onnx = pytest.importorskip("onnx")
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper
    w = numpy_helper.from_array(np.ones((3, 2), np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
                              [w])
    path = tmp_path / "fc.onnx"
    onnx.save(helper.make_model(graph), str(path))
    assert main(["graph", "--model", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["parameters"] == 6
