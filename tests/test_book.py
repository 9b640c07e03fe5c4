"""End to end: every chapter at the smoke preset through papermill, then the HTML book."""

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import papermill as pm
import pytest

from rlntp.book import NotebookFailed, chapters, run_notebook
from rlntp.results import METRIC_COLUMNS

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

# smoke_book: the session fixture in conftest.py (one build shared with test_browser.py)


def test_book_has_intro_and_every_chapter_with_its_figures(smoke_book):
    book_dir, runs, index = smoke_book
    assert index.exists()
    assert "reproducible study" in (index.parent / "intro.html").read_text()
    names = chapters(book_dir)
    assert "01_parity_pretraining" in names
    for name in names:
        page = book_dir / "_build" / "html" / "chapters" / f"{name}.html"
        assert page.exists(), name
        html = page.read_text()
        figures = sorted((runs / name).glob("*.png"))
        assert figures, f"{name} saved no figure"
        assert len(re.findall(r"<img ", html)) >= len(figures), f"{name}: figures missing from page"
        assert "Traceback" not in html


def test_every_chapter_writes_tidy_metrics_and_its_config(smoke_book):
    book_dir, runs, _ = smoke_book
    for name in chapters(book_dir):
        with open(runs / name / "metrics.csv") as f:
            reader = csv.DictReader(f)
            assert tuple(reader.fieldnames) == METRIC_COLUMNS, name
            rows = list(reader)
        assert rows, name
        assert all(r["phase"] in ("pretrain", "sft", "rl") for r in rows), name
        info = json.loads((runs / name / "config.json").read_text())
        assert info["config"]["preset"] == "smoke" and info["wall_time_s"] > 0


def test_scorecard_has_a_verdict_and_a_figure_link_for_every_claim(smoke_book):
    from rlntp.claims import VERDICTS
    from rlntp.scorecard import every_claim

    book_dir, _, index = smoke_book
    rows = (book_dir / "_generated" / "scorecard.md").read_text().splitlines()[2:]
    claims = every_claim()
    assert len(rows) == len(claims)
    for (_, claim), row in zip(claims, rows, strict=True):
        assert any(f"**{v}**" in row for v in VERDICTS), row
        assert f"<{claim.figure}>`" in row
    html = (index.parent / "scorecard.html").read_text()
    for chapter, claim in claims:  # each figure link resolved to its chapter page
        assert f'href="chapters/{chapter}.html#{claim.figure}"' in html, claim.key
    assert "stale: rerun" not in (book_dir / "_generated" / "summary.md").read_text()


def test_unchanged_chapter_is_skipped(smoke_book):
    book_dir, runs, _ = smoke_book
    name = chapters(book_dir)[0]
    assert run_notebook(name, "smoke", book_dir, runs.parent) == "skipped"


def test_failed_notebook_stops_with_its_error_and_keeps_earlier_results(smoke_book):
    book_dir, runs, _ = smoke_book
    executed = book_dir / "chapters" / "01_parity_pretraining.ipynb"
    before = executed.read_bytes()
    with pytest.raises(NotebookFailed, match="ConfigError: parameter d=1"):
        run_notebook("01_parity_pretraining", "smoke", book_dir, runs.parent, params={"d": 1})
    assert executed.read_bytes() == before
    assert (runs / "01_parity_pretraining" / "failed.ipynb").exists()


@pytest.mark.parametrize(("params", "needle"), [({"d": 1}, "d=1"), ({"preset": "huge"}, "preset='huge'"),
                                                ({"p_cot_values": [0.2, 2.0]}, "p_cot_values")])
def test_bad_papermill_parameter_fails_with_a_clear_message(tmp_path, params, needle):
    with pytest.raises(pm.PapermillExecutionError) as err:
        pm.execute_notebook(str(REPO / "notebooks" / "01_parity_pretraining.ipynb"),
                            str(tmp_path / "out.ipynb"),
                            parameters={"preset": "smoke", "out_dir": str(tmp_path), **params},
                            kernel_name="python3", progress_bar=False, cwd=str(REPO))
    assert err.value.ename == "ConfigError"
    assert needle in err.value.evalue


def test_runner_rejects_an_unknown_chapter(tmp_path):
    out = subprocess.run([sys.executable, "-m", "rlntp.book", "--preset", "smoke", "--only", "nope",
                          "--runs-dir", str(tmp_path)], capture_output=True, text=True, cwd=REPO)
    assert out.returncode != 0 and "nope" in out.stderr


def test_repeated_inline_scripts_are_dropped_whatever_their_priority():
    from sphinx.builders.html._assets import _JavaScript

    from rlntp.sphinxext import dedupe_scripts

    scripts = [_JavaScript(None, priority=500, body="const A = 1;"), _JavaScript("x.js", priority=500),
               _JavaScript("", priority=200, body="const A = 1;"), _JavaScript("x.js", priority=800)]
    context = {"script_files": scripts}
    dedupe_scripts(None, "p", "page.html", context, None)
    assert context["script_files"] == scripts[:2]
