"""Execute every chapter notebook with papermill at a preset, then build the Jupyter Book.

    python -m rlntp.book                       # cpu preset, the default book
    python -m rlntp.book --preset smoke --book-dir /tmp/book --runs-dir /tmp/runs
    python -m rlntp.book --only 01_parity_pretraining -p device cuda --preset paper

The chapters are the ``chapters/NAME`` entries of ``BOOK_DIR/_toc.yml``; each is executed from
``notebooks/NAME.ipynb`` into ``BOOK_DIR/chapters/NAME.ipynb`` with ``preset``, ``out_dir``
(``RUNS_DIR/PRESET/NAME``) and any ``-p`` parameters. A chapter is skipped when its inputs
(notebook, parameters, output folder, rlntp sources, the data files it reads, the installed
packages) have not changed since its last successful run and its outputs (``metrics.csv``,
``config.json``) are still there, unchanged. A failing
notebook stops everything with its error; earlier executed chapters stay as they were, and the
failed notebook is kept in ``RUNS_DIR/PRESET/NAME/failed.ipynb`` for inspection. The book is
built with notebook execution off (papermill already ran them).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from rlntp.config import PRESET_NAMES, REPO, ConfigError, display_path, writable_dir
from rlntp.launch import LAUNCHERS, Resources
from rlntp.pages import write_pages
from rlntp.params import parse_param
from rlntp.results import atomic_write_text, source_hash

NOTEBOOKS = REPO / "notebooks"
CONFIG = REPO / "_config.yml"
OUTPUTS = ("metrics.csv", "config.json")  # every chapter writes these to its out_dir


class NotebookFailed(RuntimeError):
    """A chapter notebook raised; the message carries its error."""


def chapters(book_dir: Path) -> list[str]:
    """Chapter names in table-of-contents order (entries ``chapters/NAME``)."""
    toc = (book_dir / "_toc.yml").read_text()
    return re.findall(r"file:\s*chapters/([\w-]+)", toc)


def environment() -> dict[str, Any]:
    """What a result may depend on besides the inputs: Python, the installed packages (name and
    version, torch's build included), and whether a GPU is there (device 'auto')."""
    import torch

    packages = sorted({f"{d.metadata['Name']}=={d.version}".lower()
                       for d in importlib.metadata.distributions() if d.metadata["Name"]})
    return {"python": sys.version, "machine": platform.machine(), "packages": packages,
            "cuda": torch.cuda.is_available()}


def _data(name: str, preset: str, params: dict[str, Any]) -> str | None:
    """The hash of the contents of the data files chapter ``name`` reads at these parameters
    (None: it reads none, or it is not a chapter of the package)."""
    from rlntp.experiments import chapters
    from rlntp.params import resolve

    chapter = chapters().get(name)
    if chapter is None:
        return None
    try:
        names = chapter.config.field_names()
        cfg = resolve(chapter.config, preset=preset, **{k: v for k, v in params.items() if k in names})
        return chapter.data(cfg)
    except (ConfigError, TypeError, FileNotFoundError):
        return "unresolved"  # the notebook will fail with the error


def _stamp(name: str, preset: str, params: dict[str, Any], out_dir: Path | None = None) -> str:
    """A hash of everything a chapter's outputs depend on."""
    h = hashlib.sha1((NOTEBOOKS / f"{name}.ipynb").read_bytes())
    data = _data(name, preset, params)
    h.update(json.dumps({"preset": preset, "params": params, "out_dir": str(out_dir),
                         "data": data, "environment": environment()},
                        sort_keys=True, default=str).encode())
    h.update(source_hash().encode())
    return h.hexdigest()


def _outputs_hash(out_dir: Path) -> str | None:
    """A hash of the chapter's outputs in ``out_dir``; None if one is missing."""
    h = hashlib.sha1()
    for name in OUTPUTS:
        path = out_dir / name
        if not path.is_file():
            return None
        h.update(name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _is_current(stamp_file: Path, stamp: str, out_dir: Path) -> bool:
    """The last run had these inputs, and its outputs are there, as it left them."""
    try:
        recorded = json.loads(stamp_file.read_text())
    except (OSError, ValueError):
        return False
    outputs = _outputs_hash(out_dir)
    return (isinstance(recorded, dict) and recorded.get("inputs") == stamp
            and outputs is not None and recorded.get("outputs") == outputs)


def launch_runs(name: str, preset: str, out_dir: Path, params: dict[str, Any], launcher: str,
                resources: Any) -> None:
    """Run chapter ``name``'s independent runs as submitit jobs (:mod:`rlntp.launch`), so that
    its notebook finds them done. A chapter the package does not know has none."""
    from rlntp.experiments import chapters
    from rlntp.launch import launch
    from rlntp.params import resolve

    chapter = chapters().get(name)
    if chapter is None:
        return
    cfg = resolve(chapter.config, preset=preset, **{**params, "out_dir": str(out_dir)})
    launch(chapter.stages(cfg), launcher, out_dir / "jobs", resources)


def _hide_parameters(path: Path) -> None:
    """Collapse the parameters papermill injected into an executed notebook (a toggle shows it)."""
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags and "hide-input" not in tags:
            cell["metadata"]["tags"] = [*tags, "hide-input"]
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def run_notebook(name: str, preset: str, book_dir: Path, runs_dir: Path,
                 params: dict[str, Any] | None = None, force: bool = False,
                 launcher: str | None = None, resources: Any = None) -> str:
    """Execute one chapter; return "ran" or "skipped" (inputs unchanged, outputs there)."""
    import papermill as pm

    params = dict(params or {})
    out_nb = book_dir / "chapters" / f"{name}.ipynb"
    stamp_file = book_dir / "chapters" / f".{name}.stamp"
    out_dir = runs_dir / preset / name
    stamp = _stamp(name, preset, params, out_dir)
    if not force and out_nb.exists() and _is_current(stamp_file, stamp, out_dir):
        return "skipped"
    writable_dir(out_dir, f"--runs-dir {str(runs_dir)!r}")
    if launcher:
        launch_runs(name, preset, out_dir, params, launcher, resources)
    tmp_nb = out_dir / "executing.ipynb"
    try:
        pm.execute_notebook(
            str(NOTEBOOKS / f"{name}.ipynb"), str(tmp_nb),
            parameters={"preset": preset, "out_dir": display_path(out_dir), **params},
            kernel_name="python3", cwd=str(REPO), progress_bar=False,
        )
    except pm.PapermillExecutionError as e:
        os.replace(tmp_nb, out_dir / "failed.ipynb")
        raise NotebookFailed(f"{name} failed ({out_dir / 'failed.ipynb'}): {e.ename}: {e.evalue}") from e
    _hide_parameters(tmp_nb)
    out_nb.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp_nb, out_nb)
    outputs = _outputs_hash(out_dir)
    if outputs is not None:  # else: never skipped (a chapter that wrote no metrics.csv)
        atomic_write_text(stamp_file, json.dumps({"inputs": stamp, "outputs": outputs}) + "\n")
    else:
        stamp_file.unlink(missing_ok=True)
    return "ran"


def build_html(book_dir: Path, strict: bool = False) -> Path:
    """Build the HTML book from the executed notebooks; return index.html. ``strict``: every
    Sphinx warning is an error (all of them reported first: ``-W --keep-going``)."""
    exe = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(book_dir),
           "--config", str(CONFIG), "--toc", str(book_dir / "_toc.yml"), "--path-output", str(book_dir)]
    subprocess.run(cmd + (["-W", "--keep-going"] if strict else []), check=True)
    return book_dir / "_build" / "html" / "index.html"


def build_book(preset: str = "cpu", book_dir: Path = REPO / "book", runs_dir: Path = REPO / "runs",
               only: list[str] | None = None, params: dict[str, Any] | None = None,
               force: bool = False, html: bool = True, launcher: str | None = None,
               resources: Any = None, strict: bool = False) -> Path | None:
    """Execute the chapters (all, or ``only``) at ``preset`` and build the book. With a
    ``launcher`` ("local" or "slurm") each chapter's runs go out as jobs first."""
    if preset not in PRESET_NAMES:
        raise SystemExit(f"--preset {preset!r} is not allowed: one of {PRESET_NAMES}")
    book_dir, runs_dir = Path(book_dir).resolve(), Path(runs_dir).resolve()
    names = chapters(book_dir)
    unknown = sorted(set(only or []) - set(names))
    if unknown:
        raise SystemExit(f"--only {unknown} not in the book; chapters: {names}")
    todo = [n for n in names if not only or n in only]
    writable_dir(runs_dir / preset, f"--runs-dir {str(runs_dir)!r}")  # one line, before any work
    writable_dir(book_dir / "chapters", f"--book-dir {str(book_dir)!r}")
    bar = tqdm(todo, desc=f"notebooks ({preset})", unit="nb")
    for name in bar:
        bar.set_postfix_str(name)
        t0 = time.time()
        status = run_notebook(name, preset, book_dir, runs_dir, params, force, launcher, resources)
        tqdm.write(f"{name}: {status} in {time.time() - t0:.0f} s")
    write_pages(book_dir, names, runs_dir, preset)
    return build_html(book_dir, strict) if html else None


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
    ap.add_argument("--strict", action="store_true", help="treat every Sphinx warning as an error")
    cluster = ap.add_argument_group("cluster jobs (submitit; see rlntp.launch)")
    cluster.add_argument("--launcher", choices=LAUNCHERS,
                         help="run each chapter's runs as jobs first: submitit's local executor or SLURM")
    cluster.add_argument("--resources", type=Path, metavar="FILE.yaml",
                         help="job resources as YAML (the fields below); flags override it")
    for f in dataclasses.fields(Resources):
        cluster.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name,
                             metavar="NAME" if f.name == "partition" else "N",
                             type=str if f.name == "partition" else int, help=f.metadata["help"])
    args = ap.parse_args(argv)
    try:
        params = dict(parse_param(p) for p in args.param)
        flags = {f.name: getattr(args, f.name) for f in dataclasses.fields(Resources)}
        resources = (Resources.from_yaml(args.resources, **flags) if args.resources else
                     Resources(**{k: v for k, v in flags.items() if v is not None}))
    except ConfigError as e:
        ap.error(str(e))
    if not args.launcher and (args.resources or any(v is not None for v in flags.values())):
        ap.error("job resources (--gpus, --partition, ...) need --launcher local or slurm")
    t0 = time.time()
    try:
        index = build_book(args.preset, args.book_dir, args.runs_dir, args.only, params,
                           args.force, not args.no_html, args.launcher, resources, args.strict)
    except (NotebookFailed, ConfigError) as e:
        raise SystemExit(f"error: {e}") from None
    print(f"done in {time.time() - t0:.0f} s" + (f": open {index}" if index else ""))


if __name__ == "__main__":
    main()
