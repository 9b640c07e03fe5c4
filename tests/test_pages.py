"""Book pages generated from measured runs: a chapter's cost per preset, a class plan."""

import json

from rlntp import stamps
from rlntp.pages import class_plan, costs_table, measured_runs, write_pages
from rlntp.scorecard import every_claim


def _run(root, preset, name, wall, device_name="Test CPU, 2 cores"):
    """A run of chapter ``name`` at ``preset`` as the runner leaves it: outputs and a current stamp
    (of a chapter the package does not know: its inputs are the notebook of chapter 3)."""
    d = root / preset / name
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"wall_time_s": wall, "device": "cpu",
                                               "device_name": device_name}))
    (d / "metrics.csv").write_text("x\n")
    (root / "chapters").mkdir(exist_ok=True)
    inputs = stamps.inputs_hash(name, preset, {}, d)
    stamps.record(root, name, preset, {}, d, inputs)


def _fake_notebooks(monkeypatch, tmp_path, names):
    nb = tmp_path / "notebooks"
    nb.mkdir()
    for name in names:
        (nb / f"{name}.ipynb").write_text("{}")
    monkeypatch.setattr(stamps, "NOTEBOOKS", nb)


def test_costs_come_from_each_runs_config_json(tmp_path, monkeypatch):
    _fake_notebooks(monkeypatch, tmp_path, ["a", "b"])
    _run(tmp_path, "smoke", "a", 3.2)
    _run(tmp_path, "cpu", "a", 1234.0)
    runs = measured_runs(tmp_path, ["a", "b"], tmp_path)
    table = costs_table(["a", "b"], runs)
    row_a, row_b = table.splitlines()[2:]
    assert "{doc}`/chapters/a`" in row_a and "3 s (Test CPU, 2 cores; this build)" in row_a
    assert "1,234 s" in row_a and row_a.endswith("| not run |")
    assert row_b.count("not run") == 3


def test_class_plan_follows_the_measured_cpu_time(tmp_path, monkeypatch):
    _fake_notebooks(monkeypatch, tmp_path, ["fast", "slow", "absent"])
    _run(tmp_path, "cpu", "fast", 240.0)
    _run(tmp_path, "cpu", "slow", 2100.0)
    names = ["fast", "slow", "absent"]
    plan = class_plan(names, measured_runs(tmp_path, names, tmp_path))
    fast, slow, absent = plan.splitlines()[2:]
    assert "4 min" in fast and "live" in fast
    assert "35 min" in slow and "before class" in slow
    assert "not measured in this build" in absent


def test_write_pages_writes_every_table(tmp_path):
    write_pages(tmp_path / "book", ["01_parity_pretraining"], tmp_path / "runs", "cpu")
    assert {p.name for p in (tmp_path / "book" / "_generated").iterdir()} == {
        "scorecard.md", "summary.md", "costs.md", "class_plan.md", "paper_costs.md"}
    summary = (tmp_path / "book" / "_generated" / "summary.md").read_text()
    n = len(every_claim())  # nothing ran: every claim is "not run"
    assert f"Of the {n} claims" in summary and f"{n} not run" in summary and "reproduced" not in summary
