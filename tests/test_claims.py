"""The scorecard's criteria: verdicts, one measure against a hand count, figure labels."""

import json
from pathlib import Path

import pandas as pd
import pytest

from rlntp.claims import Result, assess, overridden, sentence, verdict, wilson
from rlntp.experiments import chapters
from rlntp.experiments.parity_pretrain import ParityPretrainConfig
from rlntp.params import resolve
from rlntp.scorecard import every_claim

REPO = Path(__file__).resolve().parent.parent


def test_verdict_depends_on_the_outcome_the_preset_and_every_scale_parameter():
    paper = resolve(ParityPretrainConfig, preset="paper", device="cpu")
    cpu = resolve(ParityPretrainConfig, preset="cpu")
    assert verdict(Result("x", True), paper) == "reproduced"
    assert verdict(Result("x", True), cpu) == "reproduced qualitatively, at a smaller scale"
    assert verdict(Result("x", False), paper) == "not reproduced"
    assert verdict(Result("x", None, "precondition failed"), cpu) == "inconclusive"  # it measured
    assert verdict(Result("", None, "why"), cpu) == "not run"  # these parameters do not measure it
    # the case: the paper preset shrunk to nothing is not "reproduced"
    shrunk = resolve(ParityPretrainConfig, preset="paper", device="cpu", d=8, pretrain_iters=60,
                     seeds=[0], n_embd=16)
    assert overridden(shrunk) == ["seeds", "n_embd", "pretrain_iters", "d"]
    assert verdict(Result("x", True), shrunk) == "reproduced qualitatively, at a smaller scale"
    same = resolve(ParityPretrainConfig, preset="paper", device="cpu", out_dir="/x", workers=1)
    assert overridden(same) == []


def test_wilson_interval_matches_the_formula():
    lo, hi = wilson(50, 100)
    assert abs(lo - 0.4038) < 1e-3 and abs(hi - 0.5962) < 1e-3  # textbook value
    assert abs(wilson(100, 100)[1] - 1) < 1e-12 and abs(wilson(0, 100)[0]) < 1e-12
    assert abs(wilson(100, 100)[0] - 0.9630) < 1e-3 and wilson(0, 0) == (0.0, 1.0)


def test_sentence_follows_the_verdicts():
    table = pd.DataFrame({"claim": ["A holds", "B fails", "C absent"],
                          "verdict": ["reproduced qualitatively, at a smaller scale", "not reproduced",
                                      "not run"],
                          "why": ["", "", "not in methods"]}, index=["a", "b", "c"])
    text = sentence(table)
    assert "Reproduced qualitatively, at this smaller scale: a holds." in text
    assert "Not reproduced at this preset: b fails." in text and "c absent (not in methods)" in text
    assert sentence(table.iloc[:1]) == "Reproduced qualitatively, at this smaller scale: a holds."
    table.loc["a", "claim"] = "GRPO learns"
    assert sentence(table.iloc[:1]) == "Reproduced qualitatively, at this smaller scale: GRPO learns."


def test_every_claim_has_a_unique_key_and_a_figure_of_its_chapter():
    claims = every_claim()
    assert len(claims) == len({c.key for _, c in claims}) >= 15
    for chapter, c in claims:
        cells = json.loads((REPO / "notebooks" / f"{chapter}.ipynb").read_text())["cells"]
        names = {cell["metadata"].get("mystnb", {}).get("figure", {}).get("name") for cell in cells}
        assert c.figure in names, (c.key, c.figure)


def test_a_chapter_without_claims_is_assessed_as_an_empty_table():
    cfg = resolve(ParityPretrainConfig, preset="smoke")
    table = assess((), pd.DataFrame(), cfg)
    assert table.empty and "verdict" in table
    assert sentence(table) == "This chapter decides no claim of the paper."


@pytest.mark.parametrize("chapter", sorted(chapters()))
def test_every_chapter_quotes_its_claims(chapter):
    cells = json.loads((REPO / "notebooks" / f"{chapter}.ipynb").read_text())["cells"]
    text = "".join("".join(c["source"]) for c in cells)
    assert "show_claims(" in text and "{glue:text}`claims_sentence`" in text


def _rl_end(experiment: str, branch: int, seed: int, length: float, acc: float) -> list[dict]:
    """The rows of a GRPO run (e2e, tau = 1) that ends at ``length`` and ``acc``."""
    return [dict(experiment=experiment, phase="rl", method="grpo", reward="e2e", temperature=1.0,
                 branch_step=branch, seed=seed, step=step, metric=m, value=v if step == 10 else 1.0)
            for step in (0, 10) for m, v in (("len_median_greedy", length), ("acc_greedy", acc))]


def test_grpo_at_001_counts_runs_of_the_low_experiment_only():
    from rlntp.experiments.parity_rl import EXPERIMENT, LOW, ParityRLConfig, grpo_length_rises_at_001

    cfg = resolve(ParityRLConfig, preset="smoke")  # branch steps 10, 20, 30; one seed
    assert cfg.low_p_cot == 0.01
    low = [_rl_end(LOW, b, 0, length, 0.5) for b, length in ((10, 1.0), (20, 6.0), (30, 16.0))]
    main = [_rl_end(EXPERIMENT, b, 0, 16.0, 1.0) for b in cfg.branch_steps]  # must not count
    df = pd.DataFrame([r for rows in low + main for r in rows])
    r = grpo_length_rises_at_001(df, cfg)
    assert r.holds is False and "median greedy length rose above 1 in 2 of 3" in r.measured
    first = (df.experiment == LOW) & (df.branch_step == 10) & (df.metric == "len_median_greedy")
    df.loc[first, "value"] = 3.0
    assert grpo_length_rises_at_001(df, cfg).holds is True
    skip = grpo_length_rises_at_001(df, resolve(ParityRLConfig, preset="smoke", low_p_cot=0.02))
    assert skip.holds is None and "-p low_p_cot 0.01" in skip.why
