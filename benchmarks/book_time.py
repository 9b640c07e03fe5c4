"""Time the book build per chapter at a preset (default cpu) into a scratch folder.

    .venv/bin/python benchmarks/book_time.py [--preset cpu] [--only NAME ...]

Prints one line per chapter and the total, and writes them to
``runs/benchmarks/book_time-<preset>.json``. Nothing is reused: every chapter is executed afresh
(a scratch runs folder), so the numbers are what a first `make book` costs on this machine.
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

from rlntp.book import REPO, build_html, chapters, run_notebook
from rlntp.results import atomic_write_text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--only", nargs="+")
    args = ap.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="rlntp-bench-"))
    book_dir = scratch / "book"
    shutil.copytree(REPO / "book", book_dir, ignore=shutil.ignore_patterns("_build", "*.ipynb", ".*.stamp"))
    times: dict[str, float] = {}
    for name in chapters(book_dir):
        if args.only and name not in args.only:
            continue
        t0 = time.time()
        run_notebook(name, args.preset, book_dir, scratch / "runs", force=True)
        times[name] = round(time.time() - t0, 1)
        print(f"{name:<28} {times[name]:8.1f} s", flush=True)
    t0 = time.time()
    build_html(book_dir)
    times["html build"] = round(time.time() - t0, 1)
    total = round(sum(times.values()), 1)
    print(f"{'html build':<28} {times['html build']:8.1f} s\n{'total':<28} {total:8.1f} s")
    result = {"preset": args.preset, "seconds": times, "total_s": total, "cpus": os.cpu_count(),
              "machine": platform.platform(), "processor": platform.processor()}
    atomic_write_text(REPO / "runs" / "benchmarks" / f"book_time-{args.preset}.json",
                      json.dumps(result, indent=2) + "\n")
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
