"""Every example of the README and docs/*.md runs: each `trainplan ...` command of a code block
(also inside `a && b` chains) exits 0, and each Python block runs, in a fresh directory, in
the order the page gives them. Only iteration and epoch counts are shortened."""

from __future__ import annotations

import glob
import importlib.util
import os
import re
import shlex
import subprocess

import matplotlib
import pytest

from trainplan.experiments.cli import main

matplotlib.use("Agg")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ["README.md", *sorted(os.path.relpath(p, ROOT) for p in
                              glob.glob(os.path.join(ROOT, "docs", "**", "*.md"),
                                        recursive=True))]
BLOCK = re.compile(r"```(\w*)\n(.*?)```", re.DOTALL)
COUNTS = re.compile(r"(--(?:epochs|iterations|measure-iterations))(?:\s+|=)\d+")
PREFIXES = ("trainplan ", "python -m trainplan ")
SHELL = ("printf ",)  # commands that write an example's input file


def examples(page: str) -> list[tuple[str, str]]:
    """(kind, text) in page order: ("cli", a trainplan command), ("shell", a command writing
    an input file) or ("python", a block)."""
    out = []
    with open(os.path.join(ROOT, page), encoding="utf-8") as fh:
        text = fh.read()
    for lang, body in BLOCK.findall(text):
        if lang == "python":
            out.append(("python", body))
            continue
        for line in body.splitlines():
            for part in line.split("&&"):
                part = part.strip()
                if part.startswith(PREFIXES):
                    out.append(("cli", part))
                elif part.startswith(SHELL):
                    out.append(("shell", part))
    return out


def shortened(command: str) -> list[str]:
    """The command's arguments, its iteration and epoch counts cut to 1."""
    command = COUNTS.sub(r"\1 1", command)
    argv = shlex.split(command)
    return argv[3:] if argv[:3] == ["python", "-m", "trainplan"] else argv[1:]


def test_shortening_touches_only_counts():
    assert shortened("trainplan train --model lenet5 --epochs 10 --budget 2.5MB") == [
        "train", "--model", "lenet5", "--epochs", "1", "--budget", "2.5MB"]
    assert shortened("python -m trainplan --version") == ["--version"]
    assert examples("README.md")  # the README has examples to run


def missing_extra(argv: list[str]) -> bool:
    """Whether the command imports a model through an extra that is not installed: PyTorch
    for ``file.py:factory``, onnx for ``model.onnx``."""
    needs = {"torch" for a in argv if ".py:" in a} | {"onnx" for a in argv
                                                      if a.endswith(".onnx")}
    return any(importlib.util.find_spec(name) is None for name in needs)


def missing_module(block: str) -> bool:
    """Whether a Python block imports an optional package (torch, onnx) that is missing."""
    wanted = set(re.findall(r"^\s*(?:import|from) (torch|onnx)\b", block, re.MULTILINE))
    return any(importlib.util.find_spec(name) is None for name in wanted)


RUNNABLE = [p for p in PAGES if examples(p)]


@pytest.mark.parametrize("page", RUNNABLE)
def test_every_example_of_the_page_runs(page, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__example__"}
    for kind, text in examples(page):
        if kind == "python":
            if missing_module(text):
                continue  # the block imports an extra this installation lacks
            exec(compile(text, f"{page} (a Python block)", "exec"), namespace)  # noqa: S102
            continue
        if kind == "shell":
            subprocess.run(text, shell=True, check=True, cwd=tmp_path)  # noqa: S602
            continue
        argv = shortened(text)
        if missing_extra(argv):
            continue  # an optional importer this installation lacks (tested where installed)
        try:
            code = main(argv + ["--no-progress"] if argv[0] == "train" else argv)
        except SystemExit as exc:  # --version and --help exit through argparse
            code = exc.code
        err = capsys.readouterr().err
        assert code == 0, f"{page}: `{text}` exited {code}: {err[-2000:]}"
