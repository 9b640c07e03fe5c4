import csv
import json

import pytest

from rlntp.experiments.parity_pretrain import ParityPretrainConfig
from rlntp.params import resolve
from rlntp.results import (
    METRIC_COLUMNS,
    atomic_write_text,
    cached,
    metric_rows,
    write_metrics,
    write_run_info,
)


def test_metrics_csv_has_exactly_the_documented_columns(tmp_path):
    rows = metric_rows({"acc_greedy": 0.5, "loss": 1.25}, experiment="e", phase="pretrain", p_cot=0.1,
                       d=8, seed=0, step=10, sequences_seen=640)
    path = write_metrics(rows, tmp_path / "metrics.csv")
    with open(path) as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == METRIC_COLUMNS
        got = list(reader)
    assert [r["metric"] for r in got] == ["acc_greedy", "loss"]
    assert got[0]["method"] == "" and got[0]["value"] == "0.5" and got[1]["sequences_seen"] == "640"


def test_metric_rows_rejects_unknown_columns_and_phases():
    with pytest.raises(KeyError, match="not metric columns"):
        metric_rows({"a": 1.0}, colour="red")
    with pytest.raises(ValueError, match="phase"):
        metric_rows({"a": 1.0}, phase="warmup")


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    atomic_write_text(tmp_path / "x.txt", "one")
    atomic_write_text(tmp_path / "x.txt", "two")
    assert (tmp_path / "x.txt").read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_cached_computes_once(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"v": 3}

    assert cached(tmp_path / "r.pt", compute) == {"v": 3}
    assert cached(tmp_path / "r.pt", compute) == {"v": 3}
    assert len(calls) == 1


def test_run_info(tmp_path):
    cfg = resolve(ParityPretrainConfig, preset="smoke", out_dir=str(tmp_path))
    info = json.loads(write_run_info(cfg, tmp_path, 12.345).read_text())
    assert info["config"]["d"] == cfg.d and info["wall_time_s"] == 12.35
    assert {"rlntp_version", "git_commit", "git_modified", "torch_version", "device", "device_name",
            "source_hash"} <= info.keys()
    assert info["resolved"] == {}  # nothing 'auto' in it


def test_run_info_and_provenance_say_what_an_auto_precision_ran_in(tmp_path):
    from rlntp.results import provenance

    cfg = resolve(ParityPretrainConfig, preset="smoke", out_dir=str(tmp_path), matmuls="auto")
    line = provenance(write_run_info(cfg, tmp_path, 1.0))
    ran = "bfloat16" if cfg.bf16_matmuls else "float32"
    assert json.loads((tmp_path / "config.json").read_text())["resolved"] == {"matmuls": ran}
    assert f"matmuls {ran}" in line


def test_provenance_line_names_preset_seeds_version_commit_device_and_wall_time(tmp_path):
    from rlntp import __version__
    from rlntp.results import provenance

    cfg = resolve(ParityPretrainConfig, preset="smoke", out_dir=str(tmp_path), seeds=[3, 5])
    line = provenance(write_run_info(cfg, tmp_path, 41.6))
    info = json.loads((tmp_path / "config.json").read_text())
    for part in ("preset smoke", "seeds 3, 5", f"rlntp {__version__}", "device cpu", "wall time 42 s",
                 f"commit {(info['git_commit'] or 'unknown')[:10]}", info["device_name"]):
        assert part in line


def test_show_figure_refuses_a_figure_wider_than_the_book_column(tmp_path):
    import matplotlib.pyplot as plt

    from rlntp.plotting import show_figure

    fig = plt.figure(figsize=(9, 3))
    with pytest.raises(ValueError, match="9.0 in wide"):
        show_figure(fig, tmp_path, "wide")
    plt.close(fig)
    show_figure(plt.figure(figsize=(7, 3)), tmp_path, "fits")
    assert (tmp_path / "fits.svg").exists() and (tmp_path / "fits.png").exists()
