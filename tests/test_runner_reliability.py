"""Issue 24 (reliability), the book runner: the pages never quote a number its run did not
produce (stamps checked for every chapter, wherever its outputs lie), and a bad folder, YAML file,
signal or killed kernel ends in one line naming it. One test per item of the issue (numbered as
there)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import copy_book

from rlntp import book, stamps
from rlntp.config import ConfigError
from rlntp.experiments import chapters
from rlntp.launch import Resources

REPO = Path(__file__).resolve().parent.parent
CH1, CH3 = "01_parity_pretraining", "03_linear_theory"


def _scorecard_rows(book_dir: Path, chapter: str) -> list[str]:
    """The generated scorecard's rows of ``chapter``'s claims."""
    keys = [c.figure for c in chapters()[chapter].claims]
    rows = (book_dir / "_generated" / "scorecard.md").read_text().splitlines()[2:]
    return [r for r in rows if any(f"<{k}>`" in r for k in keys) and f"Ch. {int(chapter[:2])}," in r]


# 1 ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_pages_never_quote_tampered_outputs_of_a_chapter_not_in_only(tmp_path):
    book_dir, runs = copy_book(tmp_path / "book"), tmp_path / "R"
    book.build_book("smoke", book_dir, runs, only=[CH1, CH3], html=False)
    metrics = runs / "smoke" / CH1 / "metrics.csv"
    df = pd.read_csv(metrics)
    df.loc[(df.metric == "acc_greedy") & (df.step == df.step.max()), "value"] = 0.99
    df.to_csv(metrics, index=False)
    book.build_book("smoke", book_dir, runs, only=[CH3], html=False)
    rows = _scorecard_rows(book_dir, CH1)
    assert rows and all("**stale: rerun**" in r and "0.99" not in r for r in rows), rows
    assert "**stale: rerun**" not in "".join(_scorecard_rows(book_dir, CH3))
    assert "stale: rerun" in (book_dir / "_generated" / "summary.md").read_text()


# 2 ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_an_out_dir_given_to_the_runner_is_stamped_checked_and_read(tmp_path):
    book_dir, runs, x = copy_book(tmp_path / "book"), tmp_path / "R", tmp_path / "X"
    with pytest.raises(ConfigError, match="out_dir.*--only"):
        book.build_book("smoke", book_dir, runs, only=[CH1, CH3], params={"out_dir": str(x)})
    book.build_book("smoke", book_dir, runs, only=[CH3], params={"out_dir": str(x)}, html=False)
    assert not (runs / "smoke" / CH3).exists()
    measured = _scorecard_rows(book_dir, CH3)
    assert measured and not any("the chapter was not run" in r for r in measured), measured
    for name in stamps.OUTPUTS:
        (x / name).unlink()
    assert book.run_notebook(CH3, "smoke", book_dir, runs, {"out_dir": str(x)}) == "ran"
    assert all((x / name).is_file() for name in stamps.OUTPUTS)
    (x / "metrics.csv").write_text("edited\n")
    book.write_pages(book_dir, book.chapters(book_dir), runs, "smoke")
    assert all("**stale: rerun**" in r for r in _scorecard_rows(book_dir, CH3))


# 4 (the runner) ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["D", "_d", "open", "itres"])
def test_the_runner_checks_every_name_against_each_chapter_before_running(tmp_path, name):
    with pytest.raises(ConfigError, match=f"chapter {CH1}: unknown parameter '{name}'"):
        book.build_book("smoke", copy_book(tmp_path / "book"), tmp_path / "R", only=[CH1],
                        params={name: 4}, html=False)
    assert not (tmp_path / "R" / "smoke" / CH1).exists()


# 6 ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["{}", '"a string"', "[1, 2]", "not json"])
def test_a_bad_config_json_in_another_presets_folder_does_not_stop_the_pages(tmp_path, text):
    other = tmp_path / "R" / "cpu" / CH3
    other.mkdir(parents=True)
    (other / "config.json").write_text(text)
    book_dir = copy_book(tmp_path / "book")
    book.write_pages(book_dir, book.chapters(book_dir), tmp_path / "R", "smoke")
    (row,) = [r for r in (book_dir / "_generated" / "costs.md").read_text().splitlines() if CH3 in r]
    assert row.split("|")[3].strip() == "stale: rerun", row  # never read: no stamp of this book


# 7 ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "needle"), [
    ("- gpus\n", "a mapping"), ("[1, 2]\n", "a mapping"), ("3\n", "a mapping"),
    ("gpus: two\n", "gpus='two'"), ("cpus: 1.5\n", "cpus=1.5"), ("time_min: true\n", "time_min=True"),
    ("retries: .inf\n", "retries=inf"), ("partition: 3\n", "partition=3"), ("gpu: 1\n", "unknown keys"),
])
def test_bad_resources_yaml_is_one_line_naming_file_and_key(tmp_path, text, needle):
    path = tmp_path / "res.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        Resources.from_yaml(path)
    message = str(err.value)
    assert message.startswith(f"--resources {path}: ") and needle in message and "\n" not in message


# 8 ------------------------------------------------------------------------------------------------
def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited (nobody reaped it yet)


@pytest.mark.slow
def test_sigterm_on_the_runner_stops_the_jobs_it_submitted(tmp_path):
    script = textwrap.dedent(f"""
        import time
        from rlntp.book import stop_on_signals
        from rlntp.launch import Resources, launch
        from rlntp.parallel import Stage
        stop_on_signals()
        launch([Stage("sleep", time.sleep, [(300,), (300,)])], "local", {str(tmp_path)!r},
               Resources(parallel=2))
    """)
    runner = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stderr=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
                              # started as `nohup ... &` starts it: SIGINT ignored, which its jobs
                              # would inherit (submitit cancels them with SIGINT)
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    deadline, pids = time.time() + 60, []
    while len(pids) < 2 and time.time() < deadline and runner.poll() is None:
        time.sleep(0.5)
        pids = sorted({int(p.name.split("_")[0]) for p in tmp_path.glob("*_log.out")})
    assert len(pids) == 2 and all(map(_alive, pids)), runner.stderr.read() if runner.poll() else pids
    runner.terminate()
    assert runner.wait(timeout=30) != 0
    deadline = time.time() + 20
    while any(map(_alive, pids)) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(map(_alive, pids)), "the jobs outlived the runner"
    assert "stopped by SIGTERM" in runner.stderr.read()


# 9 ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_killed_kernel_names_the_chapter_and_leaves_no_temporary_notebook(tmp_path, monkeypatch):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    cells = [{"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "preset = 'cpu'\n"
              "out_dir = None", "outputs": [], "execution_count": None, "id": "params"},
             {"cell_type": "code", "metadata": {}, "source": "import os, signal\n"
              "os.kill(os.getpid(), signal.SIGKILL)", "outputs": [], "execution_count": None, "id": "kill"}]
    (notebooks / "99_killed.ipynb").write_text(json.dumps({
        "cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                    "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5}))
    monkeypatch.setattr(book, "NOTEBOOKS", notebooks)
    monkeypatch.setattr(stamps, "NOTEBOOKS", notebooks)
    book_dir = copy_book(tmp_path / "book")
    with pytest.raises(book.NotebookFailed, match="99_killed failed .*kernel died"):
        book.run_notebook("99_killed", "smoke", book_dir, tmp_path / "R")
    out = tmp_path / "R" / "smoke" / "99_killed"
    assert sorted(p.name for p in out.iterdir()) == ["failed.ipynb"]


# 14 -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["book_dir is a file", "book_dir has no _toc.yml",
                                  "runs_dir is not UTF-8", "runs_dir is empty"])
def test_bad_folders_stop_in_one_line_naming_the_flag(tmp_path, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    book_dir, runs = copy_book(tmp_path / "book"), tmp_path / "R"
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "empty").mkdir()
    book_dir, flag = {"book_dir is a file": (tmp_path / "a_file", "--book-dir"),
                      "book_dir has no _toc.yml": (tmp_path / "empty", "--book-dir")}.get(
        case, (book_dir, "--runs-dir"))
    runs = {"runs_dir is not UTF-8": str(tmp_path / os.fsdecode(b"r\xffuns")),
            "runs_dir is empty": ""}.get(case, runs)
    with pytest.raises(ConfigError) as err:
        book.build_book("smoke", book_dir, runs, only=[CH3], html=False)
    message = str(err.value)
    assert message.startswith(f"{flag} ") and "is not allowed" in message and "\n" not in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "book", "empty"]  # nothing made
