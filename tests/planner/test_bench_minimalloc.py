"""The MiniMalloc benchmark harness: instances by file name, both solvers' plans validated,
MiniMalloc's rows skipped without its binary (a stand-in script plays the binary here)."""

from __future__ import annotations

import json
import os
import stat
import sys

from trainplan.experiments.bench_minimalloc import instances, main

PROBLEM = "id,lower,upper,size\nb1,0,3,4\nb2,3,9,4\nb3,0,9,4\nb4,9,21,4\nb5,0,21,4\n"

# Answers like MiniMalloc's binary: reads --input, writes --output with every buffer stacked
# (valid, but 20 bytes: it does not fit 12), logs "Elapsed time" on stderr.
STAND_IN = """#!{python}
import sys
args = dict(a[2:].split("=", 1) for a in sys.argv[1:])
rows = open(args["input"]).read().split()
out, top = [rows[0] + ",offset"], 0
for row in rows[1:]:
    out.append(f"{{row}},{{top}}")
    top += int(row.split(",")[3])
open(args["output"], "w").write("\\n".join(out) + "\\n")
print("Elapsed time 0.001s", file=sys.stderr)
"""


def test_instances_take_the_capacity_from_the_file_name(tmp_path):
    (tmp_path / "X.12.csv").write_text(PROBLEM)
    assert instances(str(tmp_path), None) == [("X", str(tmp_path / "X.12.csv"), 12)]
    assert instances(str(tmp_path), 20)[0][2] == 20


def test_side_by_side_rows_are_validated_and_the_binary_is_optional(tmp_path, capsys):
    (tmp_path / "X.12.csv").write_text(PROBLEM)
    binary = tmp_path / "minimalloc"
    binary.write_text(STAND_IN.format(python=sys.executable))
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    out = tmp_path / "r.json"
    main([str(tmp_path), "--minimalloc", str(binary), "--time-limit", "5", "--out", str(out)])
    rows = {r["solver"]: r for r in json.loads(out.read_text())["rows"]}
    assert rows["exact"]["fitted"] and rows["exact"]["arena_bytes"] == 12
    assert rows["minimalloc"]["valid"] and not rows["minimalloc"]["fitted"]
    assert rows["minimalloc"]["arena_bytes"] == 20 and rows["minimalloc"]["reported_seconds"]
    main([str(tmp_path), "--minimalloc", os.path.join(tmp_path, "absent"), "--out", str(out)])
    assert "its rows are skipped" in capsys.readouterr().out
    assert {r["solver"] for r in json.loads(out.read_text())["rows"]} == {"exact"}
