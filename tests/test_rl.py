"""RL package: rewards, rollout, GRPO (against TRL's own loss), REINFORCE, STaR, the config."""

from __future__ import annotations

import collections
import types

import pytest
import torch

from rlntp.config import ConfigError, resolve
from rlntp.data.parity import EOS, VOCAB_SIZE, ParityTask, sample_prompts
from rlntp.experiments.parity_rl import ParityRLConfig, rl_jobs
from rlntp.models.gpt import GPT, GPTConfig
from rlntp.rl.grpo import group_advantages, grpo_loss, grpo_step
from rlntp.rl.reinforce import reinforce_step
from rlntp.rl.rewards import cot_reward, e2e_reward, reward
from rlntp.rl.rollout import chosen_mask, rollout
from rlntp.rl.star import star_recursion, star_step
from rlntp.train import make_optimizer

TASK = ParityTask(3, 0.5)
E = EOS


def _responses(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """EOS-padded responses (width chain_len + 1 = 4) and their lengths, from token lists."""
    resp = torch.tensor([r + [E] * (4 - len(r)) for r in rows])
    is_eos = resp == E
    lengths = torch.where(is_eos.any(1), is_eos.float().argmax(1), 4)
    return resp, lengths


def test_rewards_on_hand_made_responses() -> None:
    prompts = torch.tensor([[1, 1, 0]] * 8)  # chain 1 0 0, parity 0
    resp, lengths = _responses([
        [1, 0, 0],      # the chain: both rewards
        [0, 1, 0],      # right answer, wrong chain: e2e only
        [0],            # right short answer: both
        [1],            # wrong short answer: neither
        [],             # empty: neither
        [1, 0, 0, 0],   # truncated (no EOS), last token right: neither
        [1, 0],         # too short for the chain, last token right: e2e only
        [1, 0, 1],      # wrong answer: neither
    ])
    parity = torch.zeros(8, dtype=torch.long)
    assert e2e_reward(resp, lengths, parity).tolist() == [1, 1, 1, 0, 0, 0, 1, 0]
    assert cot_reward(TASK, prompts, resp, lengths).tolist() == [1, 0, 1, 0, 0, 0, 0, 0]
    assert reward("e2e", TASK, prompts, resp, lengths).tolist() == [1, 1, 1, 0, 0, 0, 1, 0]
    with pytest.raises(ValueError, match="reward"):
        reward("length", TASK, prompts, resp, lengths)


def _model(task: ParityTask = TASK, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(VOCAB_SIZE, task.seq_len, n_layer=1, n_head=2, n_embd=16))


def test_rollout_shapes_and_logprobs_match_a_step_by_step_pass() -> None:
    model, g = _model(), torch.Generator().manual_seed(0)
    prompts, _ = sample_prompts(TASK, 5, g)
    ro = rollout(model, TASK, prompts, 3, 1.5, "cot", g)
    W = TASK.chain_len + 1
    assert ro.prompts.shape == (15, 3) and ro.responses.shape == (15, W)
    assert ro.lengths.shape == ro.reward.shape == (15,)
    assert ro.mask.shape == ro.logprobs.shape == (15, W)
    assert torch.equal(ro.prompts[:3], prompts[:1].expand(3, -1))  # groups are consecutive
    assert torch.equal(ro.mask.sum(1), torch.clamp(ro.lengths + 1, max=W))
    # log-probs, recomputed one position at a time from the whole prefix (no cache)
    with torch.no_grad():
        for i in range(15):
            seq = ro.tokens[i]
            for t in range(int(ro.mask[i].sum())):
                logits, _ = model(seq[None, : 3 + t])
                lp = torch.log_softmax(logits[0, -1] / 1.5, -1)[seq[3 + t]]
                assert torch.isclose(lp, ro.logprobs[i, t], atol=1e-5)


def test_chosen_mask_includes_the_first_eos() -> None:
    assert chosen_mask(torch.tensor([0, 2, 4]), 4).int().tolist() == [
        [1, 0, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]]


def test_group_advantages_on_a_fixed_group() -> None:
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    adv = group_advantages(r, 4)
    std = torch.tensor([1.0, 0.0, 0.0, 1.0]).std()  # unbiased, as in TRL
    torch.testing.assert_close(adv[:4], torch.tensor([0.5, -0.5, -0.5, 0.5]) / (std + 1e-4))
    assert torch.equal(adv[4:], torch.zeros(4))  # equal rewards: no signal


def _trl_grpo_loss(logp: torch.Tensor, old: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
                   epsilon: float, beta: float, ref: torch.Tensor | None) -> torch.Tensor:
    """TRL's own GRPOTrainer._compute_loss on fixed tensors, with a minimal stand-in ``self``."""
    from trl.trainer.grpo_trainer import GRPOTrainer

    accel = types.SimpleNamespace(
        reduce=lambda t, reduction="sum": t, gather=lambda t: t, gather_for_metrics=lambda t: t)
    stub = types.SimpleNamespace(
        _get_per_token_logps_and_entropies=lambda *a, **k: (logp, torch.zeros_like(logp), None),
        top_entropy_quantile=1.0, off_policy_mask_threshold=None, importance_sampling_level="token",
        beta=beta, loss_type="grpo", epsilon_low=epsilon, epsilon_high=epsilon, use_vllm=False,
        vllm_importance_sampling_correction=False, model=types.SimpleNamespace(training=True),
        current_gradient_accumulation_steps=1, _entropy_bonus_enabled=False,
        aux_loss_enabled=False,
        _metrics=collections.defaultdict(lambda: collections.defaultdict(list)),
        accelerator=accel, args=types.SimpleNamespace(use_bias_correction_kl=False, delta=None))
    n, w = mask.shape
    inputs = {"prompt_ids": torch.zeros(n, 2, dtype=torch.long), "prompt_mask": torch.ones(n, 2),
              "completion_ids": torch.zeros(n, w, dtype=torch.long),
              "completion_mask": mask.float(), "advantages": adv, "old_per_token_logps": old}
    if ref is not None:
        inputs["ref_per_token_logps"] = ref
    return GRPOTrainer._compute_loss(stub, None, inputs)


@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_grpo_loss_matches_trl(beta: float) -> None:
    g = torch.Generator().manual_seed(0)
    n, w = 12, 6
    logp = (-torch.rand(n, w, generator=g) * 2).requires_grad_()
    old = logp.detach() + 0.3 * torch.randn(n, w, generator=g)  # ratios inside and outside the clip
    ref = logp.detach() + 0.2 * torch.randn(n, w, generator=g)
    adv = torch.randn(n, generator=g)
    mask = chosen_mask(torch.randint(0, w, (n,), generator=g), w)
    ours = grpo_loss(logp, old, adv, mask, epsilon=0.2, beta=beta, ref_logprobs=ref)
    theirs = _trl_grpo_loss(logp, old, adv, mask, 0.2, beta, ref if beta else None)
    assert abs(ours.item() - theirs.item()) < 1e-6
    (g_ours,) = torch.autograd.grad(ours, logp)
    (g_theirs,) = torch.autograd.grad(theirs, logp)
    torch.testing.assert_close(g_ours, g_theirs, atol=1e-6, rtol=0)


def _changed(model: torch.nn.Module, before: dict[str, torch.Tensor]) -> bool:
    return any(not torch.equal(p, before[k]) for k, p in model.state_dict().items())


@pytest.mark.parametrize("method", ["grpo", "grpo_reuse", "reinforce", "star"])
def test_parameters_change_after_a_step(method: str) -> None:
    model, g = _model(), torch.Generator().manual_seed(1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = make_optimizer(model, 1e-2)
    prompts, _ = sample_prompts(TASK, 16, g)
    ro = rollout(model, TASK, prompts, 4, 1.0, "e2e", g)
    assert 0 < ro.reward.mean() < 1  # some signal
    if method.startswith("grpo"):
        out = grpo_step(model, opt, ro, 4, 1.0, updates=3 if method == "grpo_reuse" else 1,
                        beta=0.1 if method == "grpo_reuse" else 0.0, ref_model=_model())
    elif method == "reinforce":
        out = reinforce_step(model, opt, ro, 1.0)
    else:
        out = star_step(model, opt, ro, epochs=1, batch_size=8, generator=g)
        assert out["kept_frac"] == ro.reward.mean().item()
    assert torch.isfinite(torch.tensor(out["loss"]))
    assert _changed(model, before)


def test_star_recursion_doubles_the_odds() -> None:
    ps = star_recursion(0.1, 3)
    odds = [p / (1 - p) for p in ps]
    assert ps[0] == 0.1 and all(abs(b / a - 2) < 1e-9 for a, b in zip(odds, odds[1:], strict=False))


@pytest.mark.parametrize("name,value,match", [
    ("methods", ["grpo", "ppo"], "methods"),
    ("rewards", ["length"], "rewards"),
    ("temperatures", [0.0], "temperatures"),
    ("branch_steps", [7], "branch_steps"),
    ("rl_branch", 100, "rl_branch"),
    ("group_size", 1, "group_size"),
    ("p_cot", 0.0, "p_cot"),
    ("grid_seeds", [9], "grid_seeds"),
    ("lr", -1.0, "lr"),
])
def test_config_errors_name_the_parameter(name: str, value: object, match: str) -> None:
    with pytest.raises(ConfigError, match=f"parameter {match}="):
        resolve(ParityRLConfig, preset="smoke", **{name: value})


def test_pretrain_config_and_jobs() -> None:
    cfg = resolve(ParityRLConfig, preset="smoke", out_dir="/tmp/unused")
    p = cfg.pretrain_config()
    assert p.p_cot_values == (cfg.p_cot,) and p.iters == cfg.pretrain_iters and p.d == cfg.d
    assert all(b % p.ckpt_every == 0 for b in cfg.branch_steps)
    runs = rl_jobs(cfg)
    assert len(runs) == len(set(runs))
    assert {r.branch_step for r in runs if r.method == "grpo"} == set(cfg.branch_steps)
    grid = {(r.method, r.reward, r.temperature) for r in runs if r.branch_step == cfg.rl_branch}
    assert len(grid) == len(cfg.methods) * len(cfg.rewards) * len(cfg.temperatures)


def test_carry_forward_extends_stopped_runs() -> None:
    import pandas as pd

    from rlntp.experiments.parity_rl import carry_forward

    key = dict(method="grpo", reward="e2e", temperature=1.0, branch_step=10, metric="acc_greedy")
    rows = [dict(key, seed=0, step=s, sequences_seen=100 + 64 * s, value=v)
            for s, v in [(0, 0.5), (10, 0.9), (20, 1.0)]]
    rows += [dict(key, seed=1, step=s, sequences_seen=100 + 64 * s, value=v)
             for s, v in [(0, 0.5), (10, 0.96)]]  # stopped at step 10
    out = carry_forward(pd.DataFrame(rows))
    added = out[out.filled]
    assert len(added) == 1 and added.iloc[0].to_dict() == {
        **key, "seed": 1, "step": 20, "sequences_seen": 100 + 64 * 20, "value": 0.96,
        "filled": True}
