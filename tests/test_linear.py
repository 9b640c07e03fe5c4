"""Autoregressive linear models (rlntp.models.linear) and the chapter-03 experiment code."""

import math

import pytest
import torch

from rlntp.config import ConfigError
from rlntp.data.parity import EOS, ParityTask
from rlntp.experiments.linear_theory import (
    MAX_SAMPLES_PER_ROUND,
    LinearTheoryConfig,
    budget_steps,
    cost_search,
    post_train,
    predicted_rounds,
    pretrain_steps,
    rl_samples_per_round,
    threshold_estimate,
)
from rlntp.models.linear import (
    Rollouts,
    features,
    generate,
    init_weights,
    linear_ntp_loss,
    logits,
    n_features,
    sample_mixture,
    sample_prompts_batch,
    sgd_step,
    token_nll,
)
from rlntp.params import resolve
from rlntp.rl.star import star_recursion

torch.set_num_threads(1)


def rollouts(d: int = 5, p: float = 0.5, n: int = 64, seed: int = 0) -> Rollouts:
    return sample_mixture(torch.tensor([p, 1 - p]), n, d, torch.Generator().manual_seed(seed))


def test_feature_map_shapes_and_values():
    ro = rollouts(d=5)
    phi = features(ro.x, ro.prev)
    assert phi.shape == (2, 64, 6, n_features(5)) == (2, 64, 6, 11)
    s = 1 - 2 * ro.x[0, 0].float()
    assert torch.equal(phi[0, 0, 0], torch.cat([torch.ones(1), s, s * s[-1]]))  # prev = x_d
    r1 = 1 - 2 * ro.resp[0, 0, 0].float()
    assert torch.equal(phi[0, 0, 1, 6:], r1 * s)


def test_factored_logits_equal_weights_times_features():
    ro = rollouts(d=5)
    W = torch.randn(2, 6, 3, 11)
    expect = torch.einsum("btkf,bntf->bntk", W, features(ro.x, ro.prev))
    assert torch.allclose(logits(W, ro.x, ro.prev), expect, atol=1e-5)
    at2 = logits(W, ro.x, ro.prev[..., 2:3], slice(2, 3))   # prev holds the chosen positions
    assert torch.allclose(at2, expect[:, :, 2:3], atol=1e-5)


def test_sample_mixture_matches_parity_data_layout():
    d = 6
    ro = sample_mixture(torch.tensor([1.0, 0.0]), 32, d, torch.Generator().manual_seed(1))
    task = ParityTask(d, 1.0)
    ref = task.sample_batch(32, torch.Generator().manual_seed(2))
    assert ro.resp.shape[-1] == ref.tokens.shape[1] - d          # d response tokens + EOS
    assert (ro.length[0] == d).all() and (ro.length[1] == 1).all()
    assert ro.correct.all()                                      # every demonstration is right
    assert (ro.resp[1, :, 1:] == EOS).all()


def test_hand_set_weights_implement_one_chain_step():
    """Logit of token 0 (value +1) = c * r s_t, of token 1 = -c * r s_t: y_t = y_{t-1} xor x_t."""
    d, t, c = 6, 3, 20.0
    W = torch.zeros(1, d + 1, 3, n_features(d))
    W[0, t, 0, 1 + d + t] = c         # feature r * s_{t+1} (0-based bit t at response pos t)
    W[0, t, 1, 1 + d + t] = -c
    W[0, t, 2, 0] = -c                # never EOS
    ro = sample_mixture(torch.tensor([1.0]), 200, d, torch.Generator().manual_seed(0))
    pred = logits(W, ro.x, ro.prev)[0, :, t].argmax(-1)
    assert torch.equal(pred, ro.resp[0, :, t])
    nll = token_nll(W, ro)[0, :, t]
    assert (nll < 1e-6).all()


def test_ntp_loss_against_independent_formula():
    ro = rollouts(d=4, n=16)
    W = torch.randn(2, 5, 3, n_features(4))
    phi = features(ro.x, ro.prev)
    expect = torch.zeros(2)
    for b in range(2):
        for t in range(5):
            terms = []
            for n in range(16):
                if t <= int(ro.length[b, n]):
                    z = W[b, t] @ phi[b, n, t]
                    terms.append(-torch.log_softmax(z, 0)[ro.resp[b, n, t]])
            if terms:
                expect[b] += torch.stack(terms).mean()
    assert torch.allclose(linear_ntp_loss(W, ro), expect, atol=1e-4)


def test_one_sgd_step_changes_parameters_and_lowers_loss():
    ro = rollouts(d=4)
    W = init_weights(2, 4)
    before = linear_ntp_loss(W, ro).detach()
    sgd_step(W, linear_ntp_loss(W, ro), 0.5)
    assert W.abs().sum() > 0
    assert (linear_ntp_loss(W, ro) < before).all()


def test_generate_stops_at_eos_and_greedy_is_deterministic():
    d = 5
    W = torch.randn(2, d + 1, 3, n_features(d))
    x = sample_prompts_batch(2, 50, d, torch.Generator().manual_seed(0))
    a = generate(W, x, 0.0, torch.Generator().manual_seed(1))
    b = generate(W, x, 0.0, torch.Generator().manual_seed(2))
    assert torch.equal(a.resp, b.resp)
    after = torch.arange(d + 1) > a.length[..., None]
    assert (a.resp[after] == EOS).all()


def calibrated_model(d: int, p: float) -> torch.Tensor:
    """Hand-set weights of the calibrated pre-trained model of paper.md section 2."""
    c = 30.0
    W = torch.zeros(1, d + 1, 3, n_features(d))
    a, L = 0.5 * math.log((1 + p) / (1 - p)), math.log((1 - p) / (2 * p))
    W[0, 0, 0, 1], W[0, 0, 1, 1], W[0, 0, 2, 0] = a, -a, -c     # y_1 = x_1 w.p. (1+p)/2
    W[0, 1, 2, 0], W[0, 1, 2, 1 + d] = 2 * c + L / 2, L / 2 - c  # EOS odds (1-p)/2p if y_1 = x_1
    for t in range(1, d):                                         # the chain, then EOS
        W[0, t, 0, 1 + d + t], W[0, t, 1, 1 + d + t] = c, -c
    W[0, d, 2, 0] = c
    return W


def test_calibrated_model_has_paper_statistics():
    d, p = 8, 0.2
    W = calibrated_model(d, p)
    x = sample_prompts_batch(1, 20000, d, torch.Generator().manual_seed(0))
    ro = generate(W, x, 1.0, torch.Generator().manual_seed(1))
    assert abs((ro.length == d).float().mean() - p) < 0.015
    assert abs(ro.correct.float().mean() - (1 + p) / 2) < 0.015
    assert generate(W, x, 0.0, torch.Generator()).correct.float().mean() < 0.55     # greedy stops: p < 1/3


def test_star_round_moves_long_fraction_as_recursion():
    d, p = 6, 0.15
    cfg = resolve(LinearTheoryConfig, preset="smoke", rl_rounds=1, samples_per_round=4000,
                  star_steps=200, eval_size=100, rl_method=["star"])
    rounds = post_train(calibrated_model(d, p), cfg, d, "star", torch.Generator().manual_seed(0))
    assert abs(float(rounds[0]["frac_long_sample"][0]) - p) < 0.02
    assert abs(float(rounds[1]["frac_long_sample"][0]) - star_recursion(p, 1)[1]) < 0.04


def test_star_prediction_and_rounds():
    assert star_recursion(0.2, 2) == pytest.approx([0.2, 0.4 / 1.2, 2 * (1 / 3) / (4 / 3)])
    assert predicted_rounds(1 / 3) == pytest.approx(0.0)
    assert threshold_estimate([0.3, 0.32, 0.34], [0.5, 0.6, 0.9]) == pytest.approx(0.33)


def test_pretraining_and_rl_sample_rules():
    cfg = resolve(LinearTheoryConfig, preset="cpu")
    assert pretrain_steps(cfg, 0.5, 8) == cfg.sgd_steps_per_bit * 8          # the step floor
    long_rule = math.ceil(cfg.long_demos_per_bit * 32 * 32**2 / cfg.batch_size)
    assert pretrain_steps(cfg, 1 / 32**2, 32) == long_rule                   # enough long demos
    assert pretrain_steps(cfg, 2.0**-32, 32) == cfg.pretrain_budget // cfg.batch_size
    assert rl_samples_per_round(cfg, 0.25) == cfg.samples_per_round
    assert rl_samples_per_round(cfg, 2.0**-32) == MAX_SAMPLES_PER_ROUND


@pytest.mark.parametrize("name,value", [
    ("p_cot_values", [0.3, 1.0]), ("p_cot_values", [0.0]), ("rl_p_cot_values", [-0.1]),
    ("d", 2), ("d", 1), ("d_values", [4, 2]), ("rl_method", ["grpo"]), ("lr", 0.0),
])
def test_config_errors_name_the_parameter(name, value):
    with pytest.raises(ConfigError, match=name):
        resolve(LinearTheoryConfig, preset="smoke", **{name: value})


def test_cost_search_tries_budgets_from_zero_to_the_cap_and_reports_bounds():
    cfg = resolve(LinearTheoryConfig, preset="cpu")
    assert budget_steps(cfg) == [0] + [2**k // cfg.batch_size for k in range(11, 20)]  # 2^11 ... 2^19
    small = resolve(LinearTheoryConfig, preset="smoke", rl_method=["star"])
    runs = [cost_search(small, 5, p, torch.Generator().manual_seed(0)) for p in (0.5, 0.01)]
    assert [r["censored"] for r in runs] == [0.0, 1.0]   # above 1/3 within the cap; far below not
    for r in runs:
        if r["censored"]:
            assert r["cost_low"] == r["total_cost"] == small.cost_cap and r["cost_high"] == math.inf
        else:
            assert r["cost_low"] == r["cost_high"] == r["total_cost"]
            rl = r["rl_rounds_to_success"] * small.samples_per_round
            assert r["total_cost"] == r["pretrain_sequences"] + rl
