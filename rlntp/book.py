"""Execute every chapter notebook with papermill at a preset, then build the Jupyter Book.

    python -m rlntp.book                       # cpu preset, the default book
    python -m rlntp.book --preset smoke --book-dir /tmp/book --runs-dir /tmp/runs
    python -m rlntp.book --only 01_parity_pretraining -p device cuda --preset paper

The chapters are the ``chapters/NAME`` entries of ``BOOK_DIR/_toc.yml``; each is executed from
``notebooks/NAME.ipynb`` into ``BOOK_DIR/chapters/NAME.ipynb`` with ``preset``, ``out_dir``
(``RUNS_DIR/PRESET/NAME``, or ``-p out_dir=X`` with one chapter) and any ``-p`` parameters, which
every chapter run must take (checked before anything runs). A chapter is skipped when its inputs
(notebook, parameters, output folder, rlntp sources, the data files it reads, the installed
packages) have not changed since its last successful run and its outputs (``metrics.csv``,
``config.json``) and executed notebook are still there, unchanged (:mod:`rlntp.stamps`); the
generated pages quote only such outputs, of every chapter, and say "stale: rerun" for the others.
A failing notebook (or a killed kernel) stops everything with one line naming the chapter;
earlier executed chapters stay as they were, and the failed notebook is kept in
``OUT_DIR/failed.ipynb`` for inspection. SIGTERM stops the runner, the jobs it submitted and its
kernel. The book is built with notebook execution off (papermill already ran them).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from rlntp import stamps
from rlntp.config import PRESET_NAMES, REPO, ConfigError, display_path, writable_dir
from rlntp.launch import LAUNCHERS, Resources
from rlntp.pages import write_pages
from rlntp.params import parse_param
from rlntp.stamps import NOTEBOOKS

CONFIG = REPO / "_config.yml"


class NotebookFailed(RuntimeError):
    """A chapter notebook raised, or its kernel died; the message names the chapter and the error."""


def chapters(book_dir: Path) -> list[str]:
    """Chapter names in table-of-contents order (entries ``chapters/NAME``)."""
    toc = (book_dir / "_toc.yml").read_text()
    return re.findall(r"file:\s*chapters/([\w-]+)", toc)


def out_dir_of(name: str, preset: str, runs_dir: Path, params: dict[str, Any]) -> Path:
    """Where chapter ``name`` writes: ``-p out_dir`` (relative to the current folder), else
    ``RUNS_DIR/PRESET/NAME``."""
    given = params.get("out_dir")
    return Path(given).resolve() if given else Path(runs_dir) / preset / name


def check_params(names: list[str], preset: str, params: dict[str, Any]) -> None:
    """Every chapter of ``names`` the package knows takes ``params`` at ``preset``; else a
    ConfigError naming the chapter, before anything runs."""
    from rlntp.experiments import chapters as known
    from rlntp.params import resolve

    for name in names:
        if name in known():
            try:
                resolve(known()[name].config, preset=preset, **params)
            except ConfigError as e:
                raise ConfigError(f"chapter {name}: {e}") from None


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
    from nbclient.exceptions import DeadKernelError

    params = dict(params or {})
    out_nb = book_dir / "chapters" / f"{name}.ipynb"
    out_dir = out_dir_of(name, preset, runs_dir, params)
    inputs = stamps.inputs_hash(name, preset, params, out_dir)
    if not force and stamps.is_current(book_dir, name, preset, inputs, out_dir):
        return "skipped"
    writable_dir(out_dir, f"-p out_dir={params['out_dir']!r}" if params.get("out_dir") else
                 f"--runs-dir {str(runs_dir)!r}")
    if launcher:
        launch_runs(name, preset, out_dir, params, launcher, resources)
    fd, tmp = tempfile.mkstemp(prefix=".executing-", suffix=".ipynb", dir=out_dir)  # one per run
    os.close(fd)
    tmp_nb = Path(tmp)
    try:
        pm.execute_notebook(
            str(NOTEBOOKS / f"{name}.ipynb"), str(tmp_nb),
            parameters={"preset": preset, **params, "out_dir": display_path(out_dir)},
            kernel_name="python3", cwd=str(REPO), progress_bar=False,
        )
    except (pm.PapermillExecutionError, DeadKernelError) as e:
        failed = out_dir / "failed.ipynb"
        os.replace(tmp_nb, failed)
        why = (f"{e.ename}: {e.evalue}" if isinstance(e, pm.PapermillExecutionError) else
               "its kernel died (killed by a signal, e.g. the out-of-memory killer)")
        raise NotebookFailed(f"{name} failed ({failed}): {why}") from None
    except BaseException:  # interrupted (Ctrl-C, SIGTERM): no half-executed notebook left behind
        tmp_nb.unlink(missing_ok=True)
        raise
    _hide_parameters(tmp_nb)
    out_nb.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp_nb, out_nb)
    stamps.record(book_dir, name, preset, params, out_dir, inputs)
    return "ran"


def build_html(book_dir: Path, strict: bool = False) -> Path:
    """Build the HTML book from the executed notebooks; return index.html. ``strict``: every
    Sphinx warning is an error (all of them reported first: ``-W --keep-going``)."""
    exe = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(book_dir),
           "--config", str(CONFIG), "--toc", str(book_dir / "_toc.yml"), "--path-output", str(book_dir)]
    subprocess.run(cmd + (["-W", "--keep-going"] if strict else []), check=True)
    return book_dir / "_build" / "html" / "index.html"


def _folder(path: str | Path, flag: str) -> Path:
    """``path`` as an absolute folder name, or a ConfigError naming ``flag`` (an empty name, one
    that is not valid UTF-8: notebooks store paths as UTF-8 text)."""
    text = str(path)
    if not text:
        raise ConfigError(f"{flag} '' is not allowed: give a folder name")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"{flag} {text!r} is not allowed: the name is not valid UTF-8") from None
    return Path(text).resolve()


def build_book(preset: str = "cpu", book_dir: str | Path = REPO / "book",
               runs_dir: str | Path = REPO / "runs", only: list[str] | None = None,
               params: dict[str, Any] | None = None, force: bool = False, html: bool = True,
               launcher: str | None = None, resources: Any = None, strict: bool = False
               ) -> Path | None:
    """Execute the chapters (all, or ``only``) at ``preset`` and build the book. With a
    ``launcher`` ("local" or "slurm") each chapter's runs go out as jobs first."""
    if preset not in PRESET_NAMES:
        raise SystemExit(f"--preset {preset!r} is not allowed: one of {PRESET_NAMES}")
    params = dict(params or {})
    book_dir, runs_dir = _folder(book_dir, "--book-dir"), _folder(runs_dir, "--runs-dir")
    if not (book_dir / "_toc.yml").is_file():
        raise ConfigError(f"--book-dir {str(book_dir)!r} is not allowed: a folder holding the "
                          "book's _toc.yml (e.g. the repository's book/)")
    names = chapters(book_dir)
    unknown = sorted(set(only or []) - set(names))
    if unknown:
        raise SystemExit(f"--only {unknown} not in the book; chapters: {names}")
    todo = [n for n in names if not only or n in only]
    if params.get("out_dir") is not None and len(todo) > 1:
        raise ConfigError(f"-p out_dir={params['out_dir']!r} is not allowed with {len(todo)} "
                          "chapters (each writes its metrics.csv there): add --only CHAPTER")
    check_params(todo, preset, params)
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


def stop_on_signals() -> None:
    """SIGTERM and SIGHUP stop the runner as Ctrl-C does: the jobs it submitted are cancelled
    and the notebook kernel it started is shut down (``finally`` blocks run) before it exits."""
    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(f"error: stopped by {signal.Signals(signum).name}; the jobs and the "
                         "kernel it started are stopped")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)
    # started in the background (`nohup ... &`), a process inherits SIGINT ignored, and so would
    # the jobs it starts, which submitit cancels with SIGINT: they would outlive the runner
    signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m rlntp.book", description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="cpu", choices=PRESET_NAMES)
    ap.add_argument("--book-dir", default=REPO / "book",
                    help="book sources (_toc.yml, pages); executed chapters go to BOOK_DIR/chapters")
    ap.add_argument("--runs-dir", default=REPO / "runs",
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
    stop_on_signals()
    try:
        index = build_book(args.preset, args.book_dir, args.runs_dir, args.only, params,
                           args.force, not args.no_html, args.launcher, resources, args.strict)
    except (NotebookFailed, ConfigError) as e:
        raise SystemExit(f"error: {e}") from None
    print(f"done in {time.time() - t0:.0f} s" + (f": open {index}" if index else ""))


if __name__ == "__main__":
    main()
