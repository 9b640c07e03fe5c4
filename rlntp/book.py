"""Execute every chapter notebook with papermill at a preset, then build the Jupyter Book.

    python -m rlntp.book                       # cpu preset, the default book
    python -m rlntp.book --preset smoke --book-dir /tmp/book --runs-dir /tmp/runs
    python -m rlntp.book --only 01_parity_pretraining -p device cuda --preset paper

The chapters are the ``chapters/NAME`` entries of ``BOOK_DIR/_toc.yml``; each is executed from
``notebooks/NAME.ipynb`` into ``BOOK_DIR/chapters/NAME.ipynb`` with ``preset``, ``out_dir``
(``RUNS_DIR/PRESET/NAME``) and any ``-p`` parameters. A chapter whose inputs (notebook,
parameters, rlntp sources) have not changed since its last successful run is skipped. A failing
notebook stops everything with its error; earlier executed chapters stay as they were, and the
failed notebook is kept in ``RUNS_DIR/PRESET/NAME/failed.ipynb`` for inspection. The book is
built with notebook execution off (papermill already ran them).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from rlntp.config import PRESET_NAMES, REPO, ConfigError, parse_param
from rlntp.results import atomic_write_text, source_hash

NOTEBOOKS = REPO / "notebooks"
CONFIG = REPO / "_config.yml"


class NotebookFailed(RuntimeError):
    """A chapter notebook raised; the message carries its error."""


def chapters(book_dir: Path) -> list[str]:
    """Chapter names in table-of-contents order (entries ``chapters/NAME``)."""
    toc = (book_dir / "_toc.yml").read_text()
    return re.findall(r"file:\s*chapters/([\w-]+)", toc)


def _stamp(name: str, preset: str, params: dict[str, Any]) -> str:
    h = hashlib.sha1((NOTEBOOKS / f"{name}.ipynb").read_bytes())
    h.update(json.dumps({"preset": preset, "params": params}, sort_keys=True).encode())
    h.update(source_hash().encode())
    return h.hexdigest()


def run_notebook(name: str, preset: str, book_dir: Path, runs_dir: Path,
                 params: dict[str, Any] | None = None, force: bool = False) -> str:
    """Execute one chapter; return "ran" or "skipped" (inputs unchanged)."""
    import papermill as pm

    params = dict(params or {})
    out_nb = book_dir / "chapters" / f"{name}.ipynb"
    stamp_file = book_dir / "chapters" / f".{name}.stamp"
    stamp = _stamp(name, preset, params)
    if not force and out_nb.exists() and stamp_file.exists() and stamp_file.read_text() == stamp:
        return "skipped"
    out_dir = runs_dir / preset / name
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp_nb = out_dir / "executing.ipynb"
    try:
        pm.execute_notebook(
            str(NOTEBOOKS / f"{name}.ipynb"), str(tmp_nb),
            parameters={"preset": preset, "out_dir": str(out_dir), **params},
            kernel_name="python3", cwd=str(REPO), progress_bar=False,
        )
    except pm.PapermillExecutionError as e:
        os.replace(tmp_nb, out_dir / "failed.ipynb")
        raise NotebookFailed(f"{name} failed ({out_dir / 'failed.ipynb'}): {e.ename}: {e.evalue}") from e
    out_nb.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp_nb, out_nb)
    atomic_write_text(stamp_file, stamp)
    return "ran"


def build_html(book_dir: Path) -> Path:
    """Build the HTML book from the executed notebooks; return index.html."""
    exe = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(book_dir),
           "--config", str(CONFIG), "--toc", str(book_dir / "_toc.yml"), "--path-output", str(book_dir)]
    subprocess.run(cmd, check=True)
    return book_dir / "_build" / "html" / "index.html"


def build_book(preset: str = "cpu", book_dir: Path = REPO / "book", runs_dir: Path = REPO / "runs",
               only: list[str] | None = None, params: dict[str, Any] | None = None,
               force: bool = False, html: bool = True) -> Path | None:
    """Execute the chapters (all, or ``only``) at ``preset`` and build the book."""
    if preset not in PRESET_NAMES:
        raise SystemExit(f"--preset {preset!r} is not allowed: one of {PRESET_NAMES}")
    book_dir, runs_dir = Path(book_dir).resolve(), Path(runs_dir).resolve()
    names = chapters(book_dir)
    unknown = sorted(set(only or []) - set(names))
    if unknown:
        raise SystemExit(f"--only {unknown} not in the book; chapters: {names}")
    todo = [n for n in names if not only or n in only]
    bar = tqdm(todo, desc=f"notebooks ({preset})", unit="nb")
    for name in bar:
        bar.set_postfix_str(name)
        t0 = time.time()
        status = run_notebook(name, preset, book_dir, runs_dir, params, force)
        tqdm.write(f"{name}: {status} in {time.time() - t0:.0f} s")
    return build_html(book_dir) if html else None


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m rlntp.book", description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="cpu", choices=PRESET_NAMES)
    ap.add_argument("--book-dir", type=Path, default=REPO / "book",
                    help="book sources (_toc.yml, pages); executed chapters go to BOOK_DIR/chapters")
    ap.add_argument("--runs-dir", type=Path, default=REPO / "runs",
                    help="metrics, figures, checkpoints: RUNS_DIR/PRESET/CHAPTER")
    ap.add_argument("--only", nargs="+", metavar="CHAPTER", help="execute only these chapters")
    ap.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                    help="notebook parameter (JSON value), e.g. -p device=cuda -p 'seeds=[0]'")
    ap.add_argument("--force", action="store_true", help="re-execute even unchanged chapters")
    ap.add_argument("--no-html", action="store_true", help="execute notebooks, skip the HTML build")
    args = ap.parse_args(argv)
    try:
        params = dict(parse_param(p) for p in args.param)
    except ConfigError as e:
        ap.error(str(e))
    t0 = time.time()
    try:
        index = build_book(args.preset, args.book_dir, args.runs_dir, args.only, params,
                           args.force, not args.no_html)
    except NotebookFailed as e:
        raise SystemExit(f"error: {e}") from None
    print(f"done in {time.time() - t0:.0f} s" + (f": open {index}" if index else ""))


if __name__ == "__main__":
    main()
