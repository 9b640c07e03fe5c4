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
CH3 = resolve(lt.LinearTheoryConfig, preset="cpu")  # rl_rounds 20, d_values 8, 16


def ch3_cost(costs: dict[str, dict[int, float | None]]) -> pd.DataFrame:
    """Experiment 3 on seeds 0-2: per schedule and d the measured cost (None: the search hit the cap
    of 2^19 sequences, a lower bound)."""
    out = []
    for name, by_d in costs.items():
        for d, c in by_d.items():
            m = (dict(total_cost=c, censored=0.0, cost_low=c, cost_high=c) if c is not None else
                 dict(total_cost=2**19, censored=1.0, cost_low=2**19, cost_high=float("inf")))
            out += [r for s in range(3) for r in rows(f"cost p_cot={name}", "rl", m, d=d, seed=s,
                                                      p_cot=lt.SCHEDULES[name](d))]
    return pd.DataFrame(out)


def test_chapter3_threshold_and_recursion():
    cfg = resolve(lt.LinearTheoryConfig, preset="smoke")
    good = pd.DataFrame(rows("threshold", "pretrain", {"threshold_estimate": 0.34}, d=16)
                        + rows("rl", "rl", {"star_max_dev_rounds_1_3": 0.02}, method="star", d=16))
    assert lt.linear_threshold(good, cfg).holds is True
    assert lt.linear_star_recursion(good, cfg).holds is True
    bad = pd.DataFrame(rows("threshold", "pretrain", {"threshold_estimate": 0.55}, d=16)  # no jump at 1/3
                       + rows("rl", "rl", {"star_max_dev_rounds_1_3": 0.3}, method="star", d=16))  # no 2x
    assert lt.linear_threshold(bad, cfg).holds is False
    assert lt.linear_star_recursion(bad, cfg).holds is False


POLY = {d: 1e3 * d**3 for d in (8, 16)}         # degree 3
EXP = {d: 2.0**d for d in (8, 16)}              # degree 8 over 8 -> 16


def test_polynomial_cost_passes_a_polynomial_and_fails_an_exponential():
    assert lt.linear_polynomial_cost(ch3_cost({"1/d": POLY, "1/d^2": POLY}), CH3).holds is True
    r = lt.linear_polynomial_cost(ch3_cost({"1/d": POLY, "1/d^2": EXP}), CH3)
    assert r.holds is False and "8->16: 8.0" in r.measured
    cut = lt.linear_polynomial_cost(ch3_cost({"1/d": POLY, "1/d^2": {8: 1e5, 16: None}}), CH3)
    assert cut.holds is None and "1/d^2" in cut.why  # censored at 16: its bound 2^19 says degree >= 2.4


def test_exponential_cost_needs_a_lower_bound_above_the_degree():
    assert lt.linear_exponential_cost(ch3_cost({"2^-d": EXP}), CH3).holds is True
    assert lt.linear_exponential_cost(ch3_cost({"2^-d": {8: 1e3, 16: None}}), CH3).holds is True  # >= 9
    assert lt.linear_exponential_cost(ch3_cost({"2^-d": POLY}), CH3).holds is False
    cap_too_low = lt.linear_exponential_cost(ch3_cost({"2^-d": {8: 1e5, 16: None}}), CH3)  # >= 2.4 only
    assert cap_too_low.holds is None and cap_too_low.measured


@pytest.mark.parametrize("costs", [
    {8: 1e3},                                    # one d: no doubling
    {4: 1e3, 8: 8e3},                            # d = 4 has 2 held-out prompts: does not count
    {8: None, 16: None},                         # censored at both
])
def test_too_few_uncensored_d_is_inconclusive(costs):
    r = lt.linear_polynomial_cost(ch3_cost({"1/d": costs, "1/d^2": costs}), CH3)
    assert r.holds is None and r.measured and r.why


def ch3_rounds(rounds: dict[float, int | None]) -> pd.DataFrame:
    """Experiment 2, STaR on seeds 0-2: greedy accuracy 0.5 until the given round, then 1.0
    (None: never, over all rl_rounds)."""
    out = []
    for p, k in rounds.items():
        for step in range(CH3.rl_rounds + 1 if k is None else k + 1):
            acc = 1.0 if step == k else 0.5
            out += [r for s in range(3) for r in
                    rows("rl", "rl", {"acc_greedy": acc}, method="star", p_cot=p, seed=s, step=step)]
    return pd.DataFrame(out)


PS = (0.2, 0.1, 0.03, 0.01, 0.003)


def test_log_rounds_passes_the_recursion_and_fails_rounds_like_1_over_p():
    recursion = {p: int(lt.predicted_rounds(p)) + 2 for p in PS}  # 2 to 9 rounds
    assert lt.linear_star_log_rounds(ch3_rounds(recursion), CH3).holds is True
    like_reinforce = {p: round(0.4 / p) for p in PS}              # 2, 4, 13, then never in 20
    r = lt.linear_star_log_rounds(ch3_rounds({p: None if k > 20 else k for p, k in like_reinforce.items()}),
                                  CH3)
    assert r.holds is False
    fast_then_slow = {0.2: 1, 0.1: 2, 0.03: 5, 0.01: 12, 0.003: 19}  # within 3 + 2x, but slope 2.6
    assert lt.linear_star_log_rounds(ch3_rounds(fast_then_slow), CH3).holds is False
    assert lt.linear_star_log_rounds(ch3_rounds(dict.fromkeys(PS)), CH3).holds is False  # learning rate 0


def test_log_rounds_with_too_few_p_cot_is_inconclusive():
    r = lt.linear_star_log_rounds(ch3_rounds({0.2: 2, 0.1: 3}), CH3)
    assert r.holds is None and r.measured
    late = lt.linear_star_log_rounds(ch3_rounds({0.2: 2, 0.1: 3, 0.03: 5, 0.002: None}), CH3)  # 20 < 20.9
    assert late.holds is None and "every p_cot" in late.why


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


def test_chapter4_decides_calibration_and_grpo_s_gain_by_intervals():
    """P(long) 0.30 on 512 prompts is within 0.05 of p_cot = 0.25 but its interval [0.26, 0.34]
    excludes it; a gain of 0.5 measured on 4 prompts (0.75 against 0.25) is no evidence."""
    learned = dict(acc_greedy=1.0, len_mean_greedy=CH4.task.long_len)
    long_ish = ch4({**SHORT_KNOWN, "frac_long_sample": 0.30}, learned, alone=0.05)
    assert mu.mult_ntp_short(long_ish, CH4).holds is False
    tiny = resolve(mu.MultiplicationConfig, preset="cpu", seeds=[0], eval_size=4)
    half = ch4(SHORT_KNOWN, dict(acc_greedy=0.75, len_mean_greedy=CH4.task.long_len), alone=0.25)
    assert mu.mult_grpo_learns(half, tiny).holds is False
    assert mu.mult_grpo_learns(half, CH4).holds is True  # the same gain on 512 prompts
