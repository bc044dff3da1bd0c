"""`trainplan models` and `trainplan graph` from the command line."""

import json
import subprocess
import sys

from trainplan.experiments.cli import main


def test_models_json(capsys):
    assert main(["models", "--json"]) == 0
    names = [m["model"] for m in json.loads(capsys.readouterr().out)]
    assert {"mlp", "lenet5", "resnet18", "transformer", "tacotron2"} <= set(names)


def test_graph_json_fields(capsys):
    assert main(["graph", "--model", "lenet5", "--batch", "8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("model", "batch", "layers", "ops", "tensors", "parameters", "bytes_by_role",
                "no_reuse_bytes", "lower_bound_bytes", "n_eo"):
        assert key in out
    assert out["parameters"] == 61_706 and out["batch"] == 8


def test_graph_export(tmp_path, capsys):
    for fmt in ("graphml", "dot"):
        path = tmp_path / f"g.{fmt}"
        assert main(["graph", "--model", "mlp", "--export", fmt, str(path)]) == 0
        assert "fc1:out0" in path.read_text()


def test_bad_input_exits_nonzero_without_traceback():
    proc = subprocess.run([sys.executable, "-m", "trainplan.experiments.cli", "graph", "--model",
                           "nosuch"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "unknown model 'nosuch'" in proc.stderr and "Traceback" not in proc.stderr
