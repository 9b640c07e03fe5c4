"""The scorecard's criteria: verdicts, one measure against a hand count, figure labels."""

import json
from pathlib import Path

import pandas as pd
import pytest

from rlntp.claims import Result, assess, sentence, verdict
from rlntp.experiments import chapters
from rlntp.experiments.parity_pretrain import ParityPretrainConfig, ntp_at_chance_below_third
from rlntp.params import resolve
from rlntp.scorecard import every_claim

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


def test_too_early_counts_a_run_whose_length_rose_at_any_evaluation():
    from rlntp.experiments.parity_rl import EXPERIMENT, ParityRLConfig, too_early_parity

    cfg = resolve(ParityRLConfig, preset="smoke")  # branch steps 10, 20, 30; one seed
    pre = [dict(experiment=EXPERIMENT, phase="pretrain", seed=0, step=b, metric="acc_sample_long",
                value=0.5 if b == 10 else 0.95) for b in cfg.branch_steps]
    rl = []
    for b in cfg.branch_steps:  # length 16 at iteration 10 only, accuracy 0.5 throughout
        rl += [dict(experiment=EXPERIMENT, phase="rl", method="grpo", reward="e2e", temperature=1.0,
                    branch_step=b, seed=0, step=k, metric=m, value=v)
               for k in (0, 10, 20) for m, v in (("len_median_greedy", 16.0 if k == 10 else 1.0),
                                                 ("acc_greedy", 0.5))]
    df = pd.DataFrame(pre + rl)
    r = too_early_parity(df, cfg)  # steps 20, 30 know the chain: not "too early"
    assert r.holds is True and r.measured.startswith("1 of 3 GRPO runs: step 10, seed 0")
    assert "at RL iteration 10 length 16, accuracy 0.50 (1 of 3 evaluations)" in r.measured
    df.loc[df.metric == "len_median_greedy", "value"] = 1.0
    assert too_early_parity(df, cfg).holds is False
