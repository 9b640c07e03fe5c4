"""What every chapter notebook does at its start and end, and how it shows a table.

    cfg = resolve_notebook(CHAPTER.config, globals())
    start(cfg)                          # the config table; every value glued as cfg_NAME
    run = CHAPTER.run(cfg)              # rlntp.chapter: every run, metrics.csv
    show_claims(run.metrics, cfg)       # the chapter's claims decided on this run's metrics
    finish(cfg, t_start)                # config.json; wall_time and provenance glued

A figure cell is one call plus its caption (in the cell's metadata)::

    show_figure(plot_threshold(df), cfg.path, "fig2_threshold")     # rlntp.plotting
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
from myst_nb import glue

from rlntp.claims import assess, sentence
from rlntp.config import display_value
from rlntp.results import provenance, write_run_info


def start(cfg: Any) -> Any:
    """Check the device and create the output folder (:meth:`ExperimentConfig.prepare`), glue
    every resolved value as ``cfg_NAME`` (so the text quotes values, not names) and return the
    headline of the config (preset, device, seeds, the chapter's own knobs) as a table;
    ``cfg.table()`` has every parameter."""
    cfg.prepare()
    for name, value in cfg.to_dict().items():
        glue(f"cfg_{name}", display_value(value).strip("'"), display=False)
    return show_table(cfg.table(headline=True))


def glue_values(values: dict[str, Any]) -> None:
    """Glue each value under its name for the text (no output), e.g. a chapter function's numbers;
    numpy scalars become Python numbers (their repr, ``np.float64(0.32)``, cannot be formatted)."""
    for name, value in values.items():
        glue(name, value.item() if isinstance(value, np.generic) else value, display=False)


def _label(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def show_table(frame: pd.DataFrame, digits: int = 3) -> Any:
    """``frame`` for the reader: ``digits`` decimals, a dash where there is no value (never NaN),
    index and column labels as short numbers (0.1, not 0.100000), text never cut."""
    return (frame.style.format(precision=digits, na_rep="–")
            .format_index(_label, axis=0).format_index(_label, axis=1))


def show_claims(df: pd.DataFrame, cfg: Any) -> Any:
    """Decide the chapter's claims (its ``CHAPTER.claims``, the scorecard's criteria) on its
    metrics; glue ``claims_sentence`` and, per claim, ``verdict_KEY`` (its verdict, with why when
    not run) for the text, and return the table."""
    from rlntp.experiments import chapters

    card = assess(chapters()[cfg.CHAPTER].claims, df, cfg)
    glue("claims_sentence", sentence(card), display=False)
    for key, row in card.iterrows():
        glue(f"verdict_{key}", row.verdict + (f" ({row.why})" if row.why else ""), display=False)
    return show_table(card[["claim", "measured", "criterion", "verdict"]].set_index("claim"))


def finish(cfg: Any, t_start: float, **extra: Any) -> str:
    """Write ``config.json`` (with the wall time since ``t_start``); glue ``wall_time`` and the
    ``provenance`` line of the chapter's footer, and return that line."""
    wall = time.time() - t_start
    line = provenance(write_run_info(cfg, cfg.path, wall, **extra))
    glue("wall_time", wall, display=False)
    glue("provenance", line, display=False)
    return line
