"""The scorecard: every chapter's claims decided on the runs a build made (or committed ones).

The chapters come from :func:`rlntp.experiments.chapters`; each claim is decided by
:func:`rlntp.claims.assess` on its chapter's ``metrics.csv`` and the config rebuilt from its
``config.json``, the same functions the chapter's own page uses.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from rlntp.claims import STALE_VERDICT, Claim, Result, assess, claim_table
from rlntp.experiments import chapters
from rlntp.params import resolve


def every_claim() -> list[tuple[str, Claim]]:
    """(chapter name, claim) for every chapter's claims, in book order."""
    return [(name, c) for name, ch in chapters().items() for c in ch.claims]


def load_run(name: str, out_dir: Path) -> tuple[pd.DataFrame, Any] | None:
    """A finished run of chapter ``name``: its metrics and its config, rebuilt from ``config.json``
    (device 'auto': the reader's machine may lack the run's GPU); None if either file is missing."""
    if not (out_dir / "metrics.csv").is_file() or not (out_dir / "config.json").is_file():
        return None
    info = json.loads((out_dir / "config.json").read_text())
    cls = chapters()[name].config
    params = {k: v for k, v in info["config"].items() if k in cls.field_names()}
    params.update(device="auto", out_dir=str(out_dir))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a paper run read on a CPU machine
        cfg = resolve(cls, **params)
    return pd.read_csv(out_dir / "metrics.csv"), cfg


def scorecard(runs: dict[str, Path], stale: Iterable[str] = ()) -> pd.DataFrame:
    """Every claim decided on the runs in ``runs`` (chapter -> its output folder); a chapter
    in ``stale`` gives "stale: rerun" (its outputs are never read), one without a finished run
    "not run". Column ``chapter`` names each claim's chapter."""
    frames = []
    for name, ch in chapters().items():
        loaded = load_run(name, runs[name]) if name in runs and name not in stale else None
        if name in stale:
            why = ("its outputs are not those its last run made from today's inputs (edited, "
                   "deleted or older): rerun the chapter")
            card = claim_table(ch.claims, lambda c, why=why: (Result("", None, why), STALE_VERDICT))
        elif loaded is None:
            card = claim_table(ch.claims, lambda c: (Result("", None, "the chapter was not run"), "not run"))
        else:
            card = assess(ch.claims, *loaded)
        frames.append(card.assign(chapter=name))
    return pd.concat(frames)
