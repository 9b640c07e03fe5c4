"""What a run writes to ``out_dir``: tidy metrics, the resolved config, cached sub-runs.

Everything is written atomically (to a temporary file in the same folder, then renamed), so an
interrupted run never leaves a half-written file behind, and :func:`cached` lets a notebook
skip every sub-run (one seed, one p_cot, ...) that already finished.

``metrics.csv`` is in tidy long form, one row per measurement, with the columns
:data:`METRIC_COLUMNS` (empty where a column does not apply).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import os
import pickle
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

METRIC_COLUMNS = (
    "experiment", "phase", "method", "reward", "temperature", "p_cot", "d", "seed",
    "branch_step", "step", "sequences_seen", "metric", "value",
)
PHASES = ("pretrain", "sft", "rl")
PACKAGE_DIR = Path(__file__).resolve().parent


def current_umask() -> int:
    """The process's umask (read from /proc where possible: setting it is not thread-safe)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    The file gets the permissions ``open`` would give it (0o666 less the umask), not the 0o600
    of the temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def metric_rows(metrics: dict[str, float], **keys: Any) -> list[dict[str, Any]]:
    """One tidy row per metric, sharing the identifying ``keys`` (columns of METRIC_COLUMNS)."""
    unknown = set(keys) - set(METRIC_COLUMNS)
    if unknown:
        raise KeyError(f"not metric columns: {sorted(unknown)}; allowed: {METRIC_COLUMNS}")
    if keys.get("phase") not in (None, *PHASES):
        raise ValueError(f"phase={keys['phase']!r}; allowed: {PHASES}")
    return [{**keys, "metric": name, "value": float(v)} for name, v in metrics.items()]


def write_metrics(rows: Iterable[dict[str, Any]], path: str | Path) -> Path:
    """Write tidy rows as CSV with exactly the METRIC_COLUMNS, in that order."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, restval="", extrasaction="raise")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return atomic_write_text(path, buf.getvalue())


@functools.cache
def source_hash() -> str:
    """Hash of the rlntp sources: results cached under another code version are not reused.

    Computed once per process, so it names the code this process actually imported, and every
    run folder of one process agrees even if files are edited while it runs.
    """
    h = hashlib.sha1()
    for p in sorted(PACKAGE_DIR.rglob("*.py")):
        h.update(p.relative_to(PACKAGE_DIR).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


def _git(*args: str) -> str | None:
    """The output of ``git ARGS`` in the package's checkout; None where git or the checkout is missing."""
    try:
        out = subprocess.run(["git", *args], cwd=PACKAGE_DIR, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_commit() -> str | None:
    return _git("rev-parse", "HEAD") or None


def git_modified() -> bool | None:
    """Whether the checkout has changes not committed (None: not a git checkout)."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return None if status is None else bool(status)


def cpu_model(default: str = "unknown") -> str:
    """The ``model name`` of the first CPU in ``/proc/cpuinfo`` (``default`` elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")),
                        default)
    except OSError:
        return default


def device_name(device: str) -> str:
    """The hardware behind a torch device string: the GPU's name, or the CPU model and cores."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"{cpu_model('CPU')}, {len(os.sched_getaffinity(0))} cores"


def write_run_info(cfg: Any, out_dir: str | Path, wall_time_s: float, **extra: Any) -> Path:
    """Write ``config.json``: resolved config, versions, commit, device and wall time."""
    from rlntp import __version__

    config = cfg.to_dict()
    info = {
        "config": config,
        # values this machine resolved ('auto' precision), as the cache keys see them
        "resolved": {k: v for k, v in cfg.key_values().items() if v != config[k]},
        "config_class": type(cfg).__name__,
        "rlntp_version": __version__,
        "source_hash": source_hash(),
        "git_commit": git_commit(),
        "git_modified": git_modified(),
        "torch_version": torch.__version__,
        "device": cfg.torch_device,
        "device_name": device_name(cfg.torch_device),
        "wall_time_s": round(wall_time_s, 2),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **extra,
    }
    return atomic_write_text(Path(out_dir) / "config.json", json.dumps(info, indent=2) + "\n")


def provenance(config_json: str | Path) -> str:
    """One line for a chapter's footer, from its ``config.json``: preset, seeds, rlntp version,
    commit, device and wall time."""
    info = json.loads(Path(config_json).read_text())
    commit = (info.get("git_commit") or "unknown")[:10]
    if info.get("git_modified"):
        commit += " with local changes"
    seeds = ", ".join(map(str, info["config"].get("seeds", []))) or "none"
    return (f"preset {info['config']['preset']} · seeds {seeds} · rlntp {info['rlntp_version']} · "
            f"commit {commit} · device {info['device']} ({info.get('device_name', 'unknown')}) · "
            + "".join(f"{k} {v} · " for k, v in info.get("resolved", {}).items())
            + f"wall time {info['wall_time_s']:.0f} s · finished {info['finished_at']}")


class CheckpointError(RuntimeError):
    """A saved file cannot be loaded safely; the message names it."""


class UnsafeCheckpoint(CheckpointError):
    """A saved file holds objects other than tensors and plain data (it could run code)."""


def load_checkpoint_file(path: str | Path, map_location: str | torch.device | None = None) -> Any:
    """``torch.load`` with ``weights_only=True``: tensors and plain Python data only.

    A file holding anything else (a pickle that could run code) raises :class:`UnsafeCheckpoint`;
    a truncated or corrupt one :class:`CheckpointError`; both name the file.
    """
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise UnsafeCheckpoint(f"{path}: refused to load: it holds objects other than tensors "
                               f"and plain data ({str(e).splitlines()[0]}). Delete it if you did "
                               "not make it.") from None
    except (RuntimeError, EOFError, OSError) as e:
        raise CheckpointError(f"{path}: cannot be read ({str(e).splitlines()[0]}): the file is "
                              "corrupt or truncated; delete it to recompute.") from None


def resume(state_file: Path, keys: tuple[str, ...], restore: Callable[[dict[str, Any]], None],
           map_location: str | torch.device | None = None) -> dict[str, Any] | None:
    """The resume state saved at ``state_file``, after ``restore(state)`` put it into the run's
    objects; None when there is none. A state that cannot be loaded or restored (a damaged disk,
    a foreign file, a missing key of ``keys``) is moved to ``NAME.corrupt`` with a warning and
    None is returned: the caller starts the run over from fresh objects, which gives the same
    numbers (every draw is seeded). A file that could run code is refused, never moved."""
    if not state_file.exists():
        return None
    try:
        state = load_checkpoint_file(state_file, map_location)
        missing = set(keys) - set(state) if isinstance(state, dict) else set(keys)
        if missing:
            raise CheckpointError(f"{state_file}: not a resume state (no {sorted(missing)})")
        restore(state)
        return state
    except UnsafeCheckpoint:
        raise  # never run it, never delete it: the user must look at it
    except (CheckpointError, RuntimeError, KeyError, TypeError, ValueError) as e:
        aside = state_file.with_name(state_file.name + ".corrupt")
        os.replace(state_file, aside)
        warnings.warn(f"{state_file}: cannot resume from it ({str(e).splitlines()[0]}); moved to "
                      f"{aside.name}, running from the start again", RuntimeWarning, stacklevel=2)
        return None


def cached(path: str | Path, compute: Callable[[], Any]) -> Any:
    """Return the object saved at ``path``, or compute it, save it atomically and return it.

    A corrupt cache file is recomputed; an unsafe one is refused (:class:`UnsafeCheckpoint`).
    """
    path = Path(path)
    if path.exists():
        try:
            return load_checkpoint_file(path)
        except UnsafeCheckpoint:
            raise
        except CheckpointError as e:
            print(f"warning: {e} Recomputing it.")
    result = compute()
    atomic_torch_save(result, path)
    return result
