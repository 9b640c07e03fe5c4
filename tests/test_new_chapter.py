"""The chapter scaffold (``python -m rlntp.new_chapter``), run into a copy of the repository: it
refuses bad names, writes nothing on failure, and writes a chapter that is found, runs and passes."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rlntp.new_chapter import BadName, new_chapter

REPO = Path(__file__).resolve().parent.parent


def _copy(dst: Path) -> Path:
    """The parts of the repository a chapter touches: the package, notebooks, book, tests."""
    skip = shutil.ignore_patterns("__pycache__", "_build", "_generated", "*.ipynb_checkpoints")
    shutil.copytree(REPO / "rlntp", dst / "rlntp", ignore=skip)
    shutil.copytree(REPO / "notebooks", dst / "notebooks", ignore=skip)
    shutil.copytree(REPO / "book", dst / "book", ignore=shutil.ignore_patterns("_build", "chapters"))
    shutil.copytree(REPO / "tests", dst / "tests", ignore=shutil.ignore_patterns("__pycache__", "artifacts"))
    shutil.copy(REPO / "pyproject.toml", dst)
    return dst


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _python(repo: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize(("name", "why"), [("6_x", "not a chapter name"), ("06_Digits", "not a chapter name"),
                                           ("06_class", "not a chapter name"),
                                           ("05_foo", "taken by 05_pretrained_lm"),
                                           ("98_parity", "a task named 'parity'"),
                                           ("98_runs", "rlntp/experiments/runs.py exists")])
def test_a_bad_name_is_refused_in_one_line_before_anything_is_written(tmp_path, name, why):
    repo = _copy(tmp_path)
    before = _files(repo)
    with pytest.raises(BadName, match=why):
        new_chapter(name, repo)
    assert _files(repo) == before
    out = _python(repo, "-m", "rlntp.new_chapter", name)
    assert out.returncode != 0 and out.stderr.count("\n") == 1 and why in out.stderr


def test_a_failure_while_writing_removes_what_was_written(tmp_path):
    repo = _copy(tmp_path)
    before = _files(repo)
    with pytest.raises(ModuleNotFoundError):  # this process imports rlntp from REPO, not the copy
        new_chapter("99_scaffold_probe", repo)
    assert _files(repo) == before


@pytest.mark.slow
def test_the_new_chapter_is_found_runs_at_smoke_and_passes_its_test(tmp_path):
    repo, runs = _copy(tmp_path / "repo"), tmp_path / "runs"
    out = _python(repo, "-m", "rlntp.new_chapter", "99_scaffold_probe")
    assert out.returncode == 0, out.stderr
    check = ("from pathlib import Path\n"
             "from rlntp.book import chapters as toc, run_notebook\n"
             "from rlntp.data import TASKS\n"
             "from rlntp.experiments import chapters\n"
             "assert '99_scaffold_probe' in chapters() and 'scaffold_probe' in TASKS\n"
             "assert '99_scaffold_probe' in toc(Path('book'))\n"
             f"print(run_notebook('99_scaffold_probe', 'smoke', Path('book'), Path({str(runs)!r})))\n")
    out = _python(repo, "-c", check)
    assert out.returncode == 0 and out.stdout.strip().endswith("ran"), out.stderr[-3000:]
    assert (runs / "smoke" / "99_scaffold_probe" / "accuracy.svg").exists()
    written = ["rlntp/data/scaffold_probe.py", "rlntp/experiments/scaffold_probe.py",
               "tests/test_scaffold_probe.py"]
    out = _python(repo, "-m", "pytest", "-q", "-p", "no:cacheprovider", written[-1])
    assert out.returncode == 0, out.stdout[-3000:]
    out = _python(repo, "-m", "ruff", "check", *written)
    assert out.returncode == 0 or "No module named ruff" in out.stderr, out.stdout
