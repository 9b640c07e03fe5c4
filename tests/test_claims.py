"""The scorecard's criteria: verdicts, one measure against a hand count, figure labels."""

import json
from pathlib import Path

import pandas as pd
import pytest

from rlntp.claims import CLAIMS, Result, ntp_at_chance_below_third, sentence, verdict
from rlntp.config import resolve
from rlntp.experiments import CHAPTERS
from rlntp.experiments.parity_pretrain import ParityPretrainConfig

REPO = Path(__file__).resolve().parent.parent


def test_verdict_depends_on_the_outcome_and_the_preset():
    assert verdict(Result("x", True), "paper") == "reproduced"
    assert verdict(Result("x", True), "cpu") == "reproduced at a smaller scale"
    assert verdict(Result("x", False), "paper") == "not reproduced"
    assert verdict(Result("", None, "why"), "cpu") == "not run"


def _final_rows(acc: dict[tuple[float, int], float]) -> pd.DataFrame:
    return pd.DataFrame([dict(experiment="parity_pretrain", phase="pretrain", p_cot=p, seed=s, step=step,
                              metric="acc_greedy", value=v if step == 100 else 0.9)
                         for (p, s), v in acc.items() for step in (50, 100)])


def test_chance_below_a_third_is_the_median_over_seeds_at_the_last_step():
    cfg = resolve(ParityPretrainConfig, preset="smoke")
    # p = 0.1: seeds 0.5, 0.55, 0.9 -> median 0.55 <= 0.6; p = 0.25: 0.5, 0.7, 0.7 -> median 0.7
    df = _final_rows({(0.1, 0): 0.5, (0.1, 1): 0.55, (0.1, 2): 0.9,
                      (0.25, 0): 0.5, (0.25, 1): 0.7, (0.25, 2): 0.7, (0.5, 0): 1.0})
    r = ntp_at_chance_below_third(df, cfg)
    assert r.holds is False and "0.55 (p_cot = 0.1), 0.70 (p_cot = 0.25)" in r.measured
    r = ntp_at_chance_below_third(df[df.p_cot != 0.25], cfg)
    assert r.holds is True
    r = ntp_at_chance_below_third(df[df.p_cot == 0.5], cfg)
    assert r.holds is None and "no p_cot below 1/3" in r.why


def test_sentence_follows_the_verdicts():
    table = pd.DataFrame({"claim": ["A holds", "B fails", "C absent"],
                          "verdict": ["reproduced at a smaller scale", "not reproduced", "not run"],
                          "why": ["", "", "not in methods"]}, index=["a", "b", "c"])
    text = sentence(table)
    assert "Reproduced here: a holds." in text and "Not reproduced at this preset: b fails." in text
    assert "c absent (not in methods)" in text
    assert sentence(table.iloc[:1]) == "Reproduced here: a holds."
    table.loc["a", "claim"] = "GRPO learns"
    assert sentence(table.iloc[:1]) == "Reproduced here: GRPO learns."


def test_every_claim_names_a_chapter_and_a_figure_of_that_chapter():
    assert len(CLAIMS) == len({c.key for c in CLAIMS}) >= 15
    for c in CLAIMS:
        assert c.chapter in CHAPTERS
        cells = json.loads((REPO / "notebooks" / f"{c.chapter}.ipynb").read_text())["cells"]
        names = {cell["metadata"].get("mystnb", {}).get("figure", {}).get("name") for cell in cells}
        assert c.figure in names, (c.key, c.figure)


@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
def test_every_chapter_quotes_its_claims(chapter):
    cells = json.loads((REPO / "notebooks" / f"{chapter}.ipynb").read_text())["cells"]
    text = "".join("".join(c["source"]) for c in cells)
    assert "show_claims(" in text and "{glue:text}`claims_sentence`" in text
