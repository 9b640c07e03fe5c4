"""Time the book build per chapter at a preset (default cpu) into a scratch folder.

    .venv/bin/python benchmarks/book_time.py [--preset cpu] [--only NAME ...] [--keep DIR]

Prints one line per chapter and the total, and writes them to
``runs/benchmarks/book_time-<preset>.json`` (with the date and commit). Nothing is reused: every
chapter is executed afresh (a scratch runs folder, or ``--keep DIR``, which must not hold runs
yet and is kept afterwards, e.g. to read the scorecard of that build), so the numbers are what a
first `make book` costs on this machine. ``benchmarks/run.py`` reads the latest result (:func:`latest`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from rlntp.book import REPO, build_html, chapters, run_notebook
from rlntp.pages import write_pages
from rlntp.results import atomic_write_text, git_commit


def result_path(preset: str) -> Path:
    return REPO / "runs" / "benchmarks" / f"book_time-{preset}.json"


def time_book(preset: str = "cpu", only: list[str] | None = None, keep: Path | None = None
              ) -> dict[str, Any]:
    """Execute every chapter (or ``only`` these) afresh, build the HTML; write and return the
    times. The book and its runs go to ``keep`` (kept) or to a scratch folder (deleted)."""
    if keep is not None and (Path(keep) / "runs").exists():
        raise SystemExit(f"--keep {keep}: holds runs already; give a new folder (nothing is reused)")
    scratch = Path(keep) if keep is not None else Path(tempfile.mkdtemp(prefix="rlntp-bench-"))
    book_dir = scratch / "book"
    shutil.copytree(REPO / "book", book_dir, ignore=shutil.ignore_patterns("_build", "*.ipynb", ".*.stamp"))
    times: dict[str, float] = {}
    for name in chapters(book_dir):
        if only and name not in only:
            continue
        t0 = time.time()
        run_notebook(name, preset, book_dir, scratch / "runs", force=True)
        times[name] = round(time.time() - t0, 1)
        print(f"{name:<28} {times[name]:8.1f} s", flush=True)
    t0 = time.time()
    write_pages(book_dir, chapters(book_dir), scratch / "runs", preset)
    build_html(book_dir)
    times["html build"] = round(time.time() - t0, 1)
    total = round(sum(times.values()), 1)
    print(f"{'html build':<28} {times['html build']:8.1f} s\n{'total':<28} {total:8.1f} s")
    result = {"preset": preset, "seconds": times, "total_s": total, "cpus": os.cpu_count(),
              "machine": platform.platform(), "processor": platform.processor(),
              "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "commit": git_commit()}
    atomic_write_text(result_path(preset), json.dumps(result, indent=2) + "\n")
    if keep is None:
        shutil.rmtree(scratch, ignore_errors=True)
    return result


def latest(preset: str = "cpu") -> dict[str, Any] | None:
    """The last stored result of ``preset`` (None if there is none); ``date`` from the file's
    modification time where the result predates the field."""
    path = result_path(preset)
    if not path.exists():
        return None
    result = json.loads(path.read_text())
    result.setdefault("date", time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(path.stat().st_mtime)))
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--only", nargs="+")
    ap.add_argument("--keep", type=Path, help="build and keep the book and its runs here")
    args = ap.parse_args(argv)
    time_book(args.preset, args.only, args.keep)


if __name__ == "__main__":
    main()
