"""Every criterion on a run where its effect is absent (it must not say "reproduced") and on one
where it is present (it must). The runs are tidy metric rows written here, shaped like a
chapter's ``metrics.csv``: RL with learning rate 0 (nothing changes), a model that answers at
random, a run cut before the chain is learned."""

from __future__ import annotations

import pandas as pd
import pytest

from rlntp.experiments import linear_theory as lt
from rlntp.experiments import multiplication as mu
from rlntp.experiments import parity_pretrain as pp
from rlntp.experiments import parity_rl as prl
from rlntp.params import resolve
from rlntp.rl.star import star_recursion

CH1 = resolve(pp.ParityPretrainConfig, preset="cpu")  # eval_size 640
CH2 = resolve(prl.ParityRLConfig, preset="cpu", seeds=[0, 1])  # d 16, branches 150, 300, 600
CH4 = resolve(mu.MultiplicationConfig, preset="cpu", seeds=[0])


def rows(experiment: str, phase: str, metrics: dict[str, float], **keys: object) -> list[dict]:
    return [dict(experiment=experiment, phase=phase, **keys, metric=m, value=v) for m, v in metrics.items()]


def ch1(points: dict[float, dict[str, float]], experiment: str = pp.EXPERIMENT) -> pd.DataFrame:
    """Chapter 1's final evaluation: per p_cot the metrics of every seed (0, 1, 2), at step 1000
    (step 500 is there too, with other values, so that only the last step counts)."""
    out = []
    for p, m in points.items():
        for seed in range(3):
            out += rows(experiment, "pretrain", m, p_cot=p, seed=seed, step=1000)
            out += rows(experiment, "pretrain", {k: 0.0 for k in m}, p_cot=p, seed=seed, step=500)
    return pd.DataFrame(out)


KNOWN = dict(acc_sample_long=0.99, len_median_greedy=1.0)
RANDOM = dict(acc_greedy=0.5, acc_sample_long=0.5, len_median_greedy=1.0)  # learned nothing


@pytest.mark.parametrize("measure,present,absent", [
    (pp.ntp_at_chance_below_third, {0.1: dict(KNOWN, acc_greedy=0.5), 0.25: dict(KNOWN, acc_greedy=0.51)},
     {0.1: dict(KNOWN, acc_greedy=0.5), 0.25: dict(KNOWN, acc_greedy=0.63)}),
    (pp.ntp_learns_above_third, {0.4: dict(KNOWN, acc_greedy=1.0)}, {0.4: dict(KNOWN, acc_greedy=0.9)}),
    (pp.chain_learned_below_third, {0.1: dict(KNOWN, acc_greedy=0.5)}, {0.1: RANDOM}),
    (pp.length_calibrated, {0.1: dict(frac_long_sample=0.1), 0.25: dict(frac_long_sample=0.26)},
     {0.1: dict(frac_long_sample=0.1), 0.25: dict(frac_long_sample=0.32)}),
])
def test_chapter1_criteria(measure, present, absent):
    assert measure(ch1(present), CH1).holds is True
    assert measure(ch1(absent), CH1).holds is False


def test_at_chance_needs_the_chain_a_random_model_is_inconclusive():
    r = pp.ntp_at_chance_below_third(ch1({0.1: RANDOM, 0.25: RANDOM}), CH1)
    assert r.holds is None and r.measured and "learned nothing" in r.why  # inconclusive, not reproduced
    mixed = pp.ntp_at_chance_below_third(ch1({0.1: RANDOM, 0.25: dict(KNOWN, acc_greedy=0.5)}), CH1)
    assert mixed.holds is True and "p_cot = 0.1: 0.50 [0.48, 0.52] (chain not known)" in mixed.measured


def test_leap2_needs_the_leap_chain():
    leap = f"{pp.EXPERIMENT}_leap2"
    assert pp.leap_lowers_threshold(ch1({0.25: dict(KNOWN, acc_greedy=1.0)}, leap), CH1).holds is True
    assert pp.leap_lowers_threshold(ch1({0.25: dict(KNOWN, acc_greedy=0.5)}, leap), CH1).holds is False
    cut = pp.leap_lowers_threshold(ch1({0.25: RANDOM}, leap), CH1)  # cut before the chain
    assert cut.holds is None and cut.measured


# --- chapter 2 --------------------------------------------------------------------------------------
def rl_run(method: str, reward: str, tau: float, branch: int, seed: int,
           curve: list[dict[str, float]], experiment: str = prl.EXPERIMENT) -> list[dict]:
    """An RL run: evaluation k of ``curve`` at step 10 k (STaR: round k)."""
    out = []
    for k, m in enumerate(curve):
        out += rows(experiment, "rl", m, method=method, reward=reward, temperature=tau, branch_step=branch,
                    seed=seed, step=k if method == "star" else 10 * k)
    return out


D = CH2.d
START = dict(acc_greedy=0.5, len_median_greedy=1.0, frac_long_sample=0.1)
LEARNS = [START, dict(acc_greedy=0.8, len_median_greedy=D), dict(acc_greedy=1.0, len_median_greedy=D)]
FLAT = [START, START, START]  # RL with learning rate 0


def ch2(curves: dict[tuple[str, str, float, int], list[dict]], pretrain: dict[int, float] | None = None
        ) -> pd.DataFrame:
    out = [r for (m, rw, tau, b), c in curves.items() for s in CH2.seeds for r in rl_run(m, rw, tau, b, s, c)]
    for step, acc in (pretrain or {}).items():
        out += [r for s in CH2.seeds
                for r in rows(prl.EXPERIMENT, "pretrain", {"acc_greedy": acc}, seed=s, step=step)]
    return pd.DataFrame(out)


@pytest.mark.parametrize("method,reward", [("grpo", "e2e"), ("reinforce", "e2e"), ("star", "cot")])
def test_rl_learns_on_every_seed(method, reward):
    key = (method, reward, 1.0, CH2.rl_branch)
    measure = prl._rl_learns(method, reward)
    assert measure(ch2({key: LEARNS}), CH2).holds is True
    assert measure(ch2({key: FLAT}), CH2).holds is False


def test_headline_compares_with_pretraining_alone_at_equal_sequences():
    key = ("grpo", "e2e", 1.0, CH2.rl_branch)
    alone = {600: 0.5, 650: 0.5, 700: 0.5}  # 2 x 64 sequences per 10 iterations: step 650 covers it
    assert prl.beats_ntp_alone(ch2({key: LEARNS}, alone), CH2).holds is True
    assert prl.beats_ntp_alone(ch2({key: FLAT}, alone), CH2).holds is False
    too_short = prl.beats_ntp_alone(ch2({key: LEARNS}, {600: 0.5}), CH2)
    assert too_short.holds is None and "no equal-cost control" in too_short.why


def test_star_recursion_asks_for_doubling_odds():
    key = ("star", "cot", 1.0, CH2.rl_branch)
    doubling = [dict(START, frac_long_sample=p) for p in star_recursion(0.1, 3)]
    assert prl.star_recursion_transformer(ch2({key: doubling}), CH2).holds is True
    assert prl.star_recursion_transformer(ch2({key: FLAT + [START]}), CH2).holds is False


def test_too_early_is_judged_at_the_end_of_runs_against_a_later_branch():
    long_wrong = [START, dict(acc_greedy=0.5, len_median_greedy=D)]
    early = {("grpo", "e2e", 1.0, 150): long_wrong, ("grpo", "e2e", 1.0, 600): LEARNS}
    assert prl.too_early_parity(ch2(early), CH2).holds is True
    transient = [START, dict(acc_greedy=0.5, len_median_greedy=D), START]  # back to short: not counted
    assert prl.too_early_parity(ch2({**early, ("grpo", "e2e", 1.0, 150): transient}), CH2).holds is False
    assert prl.too_early_parity(ch2({("grpo", "e2e", 1.0, 150): FLAT, ("grpo", "e2e", 1.0, 600): FLAT}),
                                CH2).holds is False


def test_star_hot_needs_its_controls():
    hot = max(CH2.temperatures)
    present = {("star", "e2e", hot, CH2.rl_branch): FLAT, ("star", "cot", hot, CH2.rl_branch): LEARNS,
               ("star", "e2e", 1.0, CH2.rl_branch): LEARNS}
    assert prl.star_hot_fails(ch2(present), CH2).holds is True
    learns = {**present, ("star", "e2e", hot, CH2.rl_branch): LEARNS}
    assert prl.star_hot_fails(ch2(learns), CH2).holds is False
    no_control = prl.star_hot_fails(ch2({**present, ("star", "cot", hot, CH2.rl_branch): FLAT}), CH2)
    assert no_control.holds is None and "control" in no_control.why


# --- chapter 3 --------------------------------------------------------------------------------------
def ch3(estimate: float, dev: float, slopes: dict[str, float], censored_at_largest: float) -> pd.DataFrame:
    out = rows("threshold", "pretrain", {"threshold_estimate": estimate}, d=16)
    out += rows("rl", "rl", {"star_max_dev_rounds_1_3": dev}, method="star", d=16)
    out += [r for name, s in slopes.items()
            for r in rows(f"cost p_cot={name}", "rl", {"cost_loglog_slope": s})]
    out += [r for name in lt.SCHEDULES for d in (4, 8) for r in
            rows(f"cost p_cot={name}", "rl", {"censored": censored_at_largest if (d == 8 and name == "2^-d")
                                              else 0.0}, d=d, seed=0)]
    return pd.DataFrame(out)


def test_chapter3_criteria():
    cfg = resolve(lt.LinearTheoryConfig, preset="smoke")
    good = ch3(0.34, 0.02, {"1/d": 1.0, "1/d^2": 1.4}, 1.0)
    assert lt.linear_threshold(good, cfg).holds is True
    assert lt.linear_star_recursion(good, cfg).holds is True
    assert lt.linear_polynomial_cost(good, cfg).holds is True
    bad = ch3(0.55, 0.3, {"1/d": 1.0, "1/d^2": 6.0}, 0.0)  # no jump at 1/3, no doubling, no separation
    assert lt.linear_threshold(bad, cfg).holds is False
    assert lt.linear_star_recursion(bad, cfg).holds is False
    assert lt.linear_polynomial_cost(bad, cfg).holds is False


# --- chapter 4 --------------------------------------------------------------------------------------
def ch4(ckpt: dict[str, float], rl_end: dict[str, float], alone: float) -> pd.DataFrame:
    """Pre-training evaluated at every branch step and after, GRPO from every branch."""
    task, n = CH4.task, CH4.pretrain_batch_size
    out = []
    for step in (*CH4.branch_steps, CH4.pretrain_iters):
        m = {**ckpt, "acc_greedy": alone if step == CH4.pretrain_iters else ckpt["acc_greedy"]}
        out += rows(mu.EXPERIMENT, "pretrain", m, seed=0, step=step, sequences_seen=step * n)
    for b in CH4.branch_steps:
        start = dict(acc_greedy=ckpt["acc_greedy"], len_mean_greedy=task.short_len,
                     acc_sample_long=ckpt["acc_sample_long"])
        for k, m in ((0, start), (10, rl_end)):
            out += rows(mu.EXPERIMENT, "rl", m, method="grpo", branch_step=b, seed=0, step=k,
                        sequences_seen=b * n + k * CH4.rl_batch)
    return pd.DataFrame(out)


SHORT_KNOWN = dict(frac_long_sample=0.25, len_median_greedy=CH4.task.short_len, acc_greedy=0.05,
                   acc_sample_short=0.05, acc_sample_long=0.99)


def test_chapter4_criteria():
    learned = dict(acc_greedy=1.0, len_mean_greedy=CH4.task.long_len)
    present = ch4(SHORT_KNOWN, learned, alone=0.05)
    assert mu.mult_ntp_short(present, CH4).holds is True
    assert mu.mult_grpo_learns(present, CH4).holds is True
    unknown = ch4({**SHORT_KNOWN, "acc_sample_long": 0.2}, learned, alone=0.05)  # cut before the chain
    assert mu.mult_ntp_short(unknown, CH4).holds is False
    flat = ch4(SHORT_KNOWN, dict(acc_greedy=0.05, len_mean_greedy=CH4.task.short_len), alone=0.05)
    assert mu.mult_grpo_learns(flat, CH4).holds is False  # RL with learning rate 0
    assert mu.mult_too_early(flat, CH4).holds is False
    early = ch4(SHORT_KNOWN, dict(acc_greedy=0.05, len_mean_greedy=CH4.task.long_len), alone=0.05)
    assert mu.mult_too_early(early, CH4).holds is True


@pytest.mark.parametrize("claim", prl.CHAPTER.claims, ids=lambda c: c.key)
def test_a_chapter2_criterion_on_a_run_without_its_method_is_not_run(claim):
    """A subset of methods x rewards x temperatures leaves a criterion without rows: it says why."""
    only_grpo = ch2({("grpo", "e2e", 1.0, CH2.rl_branch): LEARNS})
    r = claim.measure(only_grpo[only_grpo.method == "reinforce"], CH2)
    assert r.holds is None and r.why


def test_the_greedy_length_jumps_at_a_third():
    short, long = dict(KNOWN, frac_len_d_greedy=0.05), dict(KNOWN, frac_len_d_greedy=0.97)
    assert pp.greedy_length_jumps(ch1({0.1: short, 0.4: long}), CH1).holds is True
    assert pp.greedy_length_jumps(ch1({0.1: short, 0.4: short}), CH1).holds is False  # no jump
    random = pp.greedy_length_jumps(ch1({0.1: dict(RANDOM, frac_len_d_greedy=0.0), 0.4: long}), CH1)
    assert random.holds is None and random.measured


def test_the_grid_learns_but_the_failure_case():
    hot = max(CH2.temperatures)
    grid = {(m, r, t, CH2.rl_branch): LEARNS for m, r in (("grpo", "e2e"), ("star", "cot"))
            for t in CH2.temperatures}
    present = {**grid, ("star", "e2e", hot, CH2.rl_branch): FLAT}  # the failure case is left out
    assert prl.every_configuration_learns(ch2(present), CH2).holds is True
    absent = {**present, ("grpo", "e2e", 0.75, CH2.rl_branch): FLAT}
    r = prl.every_configuration_learns(ch2(absent), CH2)
    assert r.holds is False and "grpo e2e tau = 0.75" in r.measured


def test_sampled_lengths_move_from_short_to_long():
    key = ("grpo", "e2e", 1.0, CH2.rl_branch)
    grows = [START, dict(START, frac_long_sample=0.5), dict(START, frac_long_sample=0.98)]
    assert prl.lengths_move_to_d(ch2({key: grows}), CH2).holds is True
    assert prl.lengths_move_to_d(ch2({key: FLAT}), CH2).holds is False


def test_grpo_from_several_known_checkpoints():
    chain = {(s, b): 0.99 for s in CH2.seeds for b in CH2.branch_steps}
    pre = [r for (s, b), v in chain.items()
           for r in rows(prl.EXPERIMENT, "pretrain", {"acc_sample_long": v}, seed=s, step=b)]
    runs = {("grpo", "e2e", 1.0, b): LEARNS for b in CH2.branch_steps}
    assert prl.grpo_from_known_checkpoints(pd.concat([ch2(runs), pd.DataFrame(pre)]), CH2).holds is True
    flat = {**runs, ("grpo", "e2e", 1.0, 300): FLAT}
    assert prl.grpo_from_known_checkpoints(pd.concat([ch2(flat), pd.DataFrame(pre)]), CH2).holds is False
    unknown = prl.grpo_from_known_checkpoints(ch2(runs), CH2)  # no checkpoint knows the chain
    assert unknown.holds is None
