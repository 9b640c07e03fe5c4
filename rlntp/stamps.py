"""What the book runner records of each chapter run, and the check that its outputs are still those.

A *stamp* (``BOOK_DIR/chapters/.NAME.PRESET.stamp``, JSON) holds a hash of everything a chapter's
outputs depend on (notebook, preset, parameters, output folder, the data files it reads, the
rlntp sources, the installed packages), a hash of the outputs it left (``metrics.csv``,
``config.json``) and of the executed notebook, and the output folder and parameters of the run.
The runner skips a chapter whose stamp is current (:func:`is_current`); the generated pages read a
chapter's outputs only while its stamp is current (:func:`run_state`), and say "stale: rerun"
otherwise: a number the run did not produce is never quoted.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import sys
from pathlib import Path
from typing import Any

from rlntp.config import REPO, ConfigError
from rlntp.results import atomic_write_text, source_hash

NOTEBOOKS = REPO / "notebooks"
OUTPUTS = ("metrics.csv", "config.json")  # every chapter writes these to its out_dir
CURRENT, STALE, NOT_RUN = "current", "stale", "not run"


def environment() -> dict[str, Any]:
    """What a result may depend on besides the inputs: Python, the installed packages (name and
    version, torch's build included), and whether a GPU is there (device 'auto')."""
    import torch

    packages = sorted({f"{d.metadata['Name']}=={d.version}".lower()
                       for d in importlib.metadata.distributions() if d.metadata["Name"]})
    return {"python": sys.version, "machine": platform.machine(), "packages": packages,
            "cuda": torch.cuda.is_available()}


def data_hash(name: str, preset: str, params: dict[str, Any]) -> str | None:
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


def inputs_hash(name: str, preset: str, params: dict[str, Any], out_dir: Path) -> str:
    """A hash of everything a chapter's outputs depend on."""
    h = hashlib.sha1((NOTEBOOKS / f"{name}.ipynb").read_bytes())
    h.update(json.dumps({"preset": preset, "params": params, "out_dir": str(out_dir),
                         "data": data_hash(name, preset, params), "environment": environment()},
                        sort_keys=True, default=str).encode())
    h.update(source_hash().encode())
    return h.hexdigest()


def _file_hash(path: Path) -> str | None:
    return hashlib.sha1(path.read_bytes()).hexdigest() if path.is_file() else None


def outputs_hash(out_dir: Path) -> str | None:
    """A hash of the chapter's outputs in ``out_dir``; None if one is missing."""
    h = hashlib.sha1()
    for name in OUTPUTS:
        path = out_dir / name
        if not path.is_file():
            return None
        h.update(name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def stamp_file(book_dir: Path, name: str, preset: str) -> Path:
    return Path(book_dir) / "chapters" / f".{name}.{preset}.stamp"


def read_stamp(book_dir: Path, name: str, preset: str) -> dict[str, Any] | None:
    """The stamp of chapter ``name`` at ``preset``; None if there is none or it is unreadable."""
    try:
        stamp = json.loads(stamp_file(book_dir, name, preset).read_text())
    except (OSError, ValueError):
        return None
    keys = {"inputs", "outputs", "notebook", "out_dir", "params"}
    return stamp if isinstance(stamp, dict) and keys <= set(stamp) else None


def record(book_dir: Path, name: str, preset: str, params: dict[str, Any], out_dir: Path,
           inputs: str) -> None:
    """Stamp the run just made (none if it left no outputs: it is never skipped)."""
    outputs = outputs_hash(out_dir)
    path = stamp_file(book_dir, name, preset)
    if outputs is None:
        path.unlink(missing_ok=True)
        return
    notebook = _file_hash(Path(book_dir) / "chapters" / f"{name}.ipynb")
    atomic_write_text(path, json.dumps({"inputs": inputs, "outputs": outputs, "notebook": notebook,
                                        "out_dir": str(out_dir), "params": params}, default=str) + "\n")


def _matches(stamp: dict[str, Any], out_dir: Path, inputs: str) -> bool:
    outputs = outputs_hash(out_dir)
    return stamp["inputs"] == inputs and outputs is not None and stamp["outputs"] == outputs


def is_current(book_dir: Path, name: str, preset: str, inputs: str, out_dir: Path) -> bool:
    """The last run had these inputs and this output folder, and its outputs and executed
    notebook are there, as it left them."""
    stamp = read_stamp(book_dir, name, preset)
    page = _file_hash(Path(book_dir) / "chapters" / f"{name}.ipynb")
    return (stamp is not None and stamp["out_dir"] == str(out_dir) and page is not None
            and stamp["notebook"] == page and _matches(stamp, out_dir, inputs))


def run_state(book_dir: Path, name: str, preset: str, runs_dir: Path, page: bool = True
              ) -> tuple[str, Path]:
    """(state, output folder) of chapter ``name`` at ``preset`` in this book: CURRENT (its stamp
    matches today's inputs and the outputs it left, wherever they lie; with ``page`` the book's
    executed chapter is that run's too), STALE (outputs are there, but not those: edited,
    deleted, or made from other inputs) or NOT_RUN."""
    stamp = read_stamp(book_dir, name, preset)
    if stamp is None:
        out_dir = Path(runs_dir) / preset / name
        return (STALE if any((out_dir / f).exists() for f in OUTPUTS) else NOT_RUN), out_dir
    out_dir = Path(stamp["out_dir"])
    params = stamp["params"] if isinstance(stamp["params"], dict) else {}
    ok = (_matches(stamp, out_dir, inputs_hash(name, preset, params, out_dir)) and
          (not page or _file_hash(Path(book_dir) / "chapters" / f"{name}.ipynb") == stamp["notebook"]))
    return (CURRENT if ok else STALE), out_dir
