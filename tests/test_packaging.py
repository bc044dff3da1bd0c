"""The distribution installs one import name, ``trainplan``, and nothing in the working
directory shadows it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import trainplan

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not (ROOT / "pyproject.toml").exists(), reason="needs the source checkout")
def test_the_wheel_installs_only_trainplan(tmp_path):
    source = tmp_path / "source"  # a copy: building in place would leave build/ in the checkout
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "build", "dist", "results", "__pycache__", "*.egg-info", ".hypothesis"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(tmp_path), str(source)], check=True, capture_output=True, timeout=600)
    (wheel,) = tmp_path.glob("trainplan-*.whl")
    with zipfile.ZipFile(wheel) as z:
        record = next(n for n in z.namelist() if n.endswith(".dist-info/RECORD"))
        paths = [line.split(",")[0] for line in z.read(record).decode().splitlines() if line]
    tops = {p.split("/")[0] for p in paths}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"trainplan"}
    for stage in ("planner", "simulator", "runtime", "experiments"):
        assert f"trainplan/{stage}/__init__.py" in paths
    assert "trainplan/py.typed" in paths and "trainplan/__main__.py" in paths
    assert "trainplan/planner/zoo/examples/mnist.ini" in paths
    assert "trainplan/simulator/profiles/raspberry-pi-4.json" in paths
    assert any(p.endswith("dist-info/licenses/LICENSE") or p.endswith("dist-info/LICENSE")
               for p in paths)


def test_folders_named_like_the_stages_in_the_working_directory_shadow_nothing(tmp_path):
    for name in ("experiments", "planner", "simulator", "runtime"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise ImportError('the user\\'s own')\n")
    code = ("from trainplan.experiments.plots import plot_timeline; import trainplan; "
            "from trainplan.planner.zoo import get_model; print(trainplan.__version__)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == trainplan.__version__


def test_python_dash_m_trainplan_and_version(tmp_path):
    done = subprocess.run([sys.executable, "-m", "trainplan", "--version"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"trainplan {trainplan.__version__}"
    assert trainplan.__version__ != "0+unknown"
