"""Chapter 5's gate and criteria on runs where the effect is present, absent, or not decidable."""

import random

import pandas as pd
import pytest

from rlntp.experiments.pretrained_lm import (
    CHAPTER,
    PretrainedLMConfig,
    advantage,
    gate,
    length_rises,
    wilson,
)
from rlntp.params import resolve

CFG = resolve(PretrainedLMConfig, preset="cpu")
N = CFG.test_size


def _rows(long=(0.7, 60), short=(0.1, 140), greedy_long=0.1, grpo=(0.6, 0.9), control=(0.2, 0.1),
          seeds=(0,)) -> pd.DataFrame:
    """Chapter 5 rows: the gated checkpoint (sampled long/short accuracy and count, greedy long
    fraction, greedy accuracy 0.15) and both branches from it, ending at (accuracy, long fraction)."""
    e, end = CFG.gated_epoch, CFG.rl_iters
    rows = []
    for seed in seeds:
        star = dict(acc_sample_long=long[0], n_sample_long=long[1], acc_sample_short=short[0],
                    n_sample_short=short[1], frac_long_greedy=greedy_long, acc_greedy=0.15,
                    len_mean_greedy=6.0)
        rows += [dict(experiment="words", phase="sft", method=None, seed=seed, step=e, metric=m,
                      value=v) for m, v in star.items()]
        for method, (acc, frac) in (("grpo", grpo), ("control", control)):
            for step, a, f in ((0, 0.15, greedy_long), (end, acc, frac)):
                rows += [dict(experiment="words", phase="rl" if method == "grpo" else "sft",
                              method=method, seed=seed, branch_step=e, step=step, metric=m, value=v)
                         for m, v in (("acc_greedy", a), ("frac_long_greedy", f),
                                      ("len_mean_greedy", 6.0 + 30 * f))]
    return pd.DataFrame(rows)


def test_wilson_interval():
    lo, hi = wilson(50, 200)
    assert lo == pytest.approx(0.1950, abs=1e-3) and hi == pytest.approx(0.3143, abs=1e-3)
    assert wilson(0, 10)[0] == 0 and wilson(10, 10)[1] == pytest.approx(1)


def test_effect_present_holds():
    df = _rows()
    assert gate(df, CFG, "words")[0]
    r = advantage("words")(df, CFG)
    assert r.holds is True and "after GRPO 0.60 [0.53, 0.67]" in r.measured
    assert length_rises("words")(df, CFG).holds is True


def test_a_model_answering_at_random_does_not_hold():
    """GRPO and the control answer right at the same rate, by chance draws (e.g. GRPO at learning
    rate 0): no draw beats the control; greedy answers that stay short fail the length claim."""
    rng = random.Random(0)
    for _ in range(50):
        g, c = (sum(rng.random() < 0.3 for _ in range(N)) / N for _ in range(2))
        r = advantage("words")(_rows(grpo=(g, 0.1), control=(c, 0.1)), CFG)
        assert r.holds is False, r.measured
    assert length_rises("words")(_rows(grpo=(0.6, 0.2)), CFG).holds is False
    assert advantage("words")(_rows(grpo=(0.25, 0.9), control=(0.2, 0.1)), CFG).holds is False


@pytest.mark.parametrize("broken", [dict(long=(0.3, 60), short=(0.25, 140)),  # formats alike
                                    dict(greedy_long=0.6),  # greedy mostly long already
                                    dict(long=(0.9, 10), short=(0.1, 190))])  # too few long
def test_a_failed_gate_is_inconclusive_with_its_numbers(broken):
    df = _rows(**broken)
    for measure in (advantage("words"), length_rises("words")):
        r = measure(df, CFG)
        assert r.holds is None and r.why.startswith("inconclusive: the gate failed")
        assert "sampled long answers right" in r.why


def test_gsm8k_and_math_say_how_to_run_them():
    card = {c.key: c.measure(_rows(), CFG) for c in CHAPTER.claims}
    for key in ("gsm8k", "math"):
        assert card[key].holds is None and "not run at this preset" in card[key].why
        assert "--preset paper" in card[key].why
    assert card["words_grpo"].holds is True and card["words_length"].holds is True
