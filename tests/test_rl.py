"""RL package: rewards, rollout, GRPO (against TRL's own loss), REINFORCE, STaR, the config."""

from __future__ import annotations

import collections
import dataclasses
import types

import pytest
import torch

from rlntp.config import ConfigError, ModelPart, NTPPart, OptimizerPart, RLLoopPart
from rlntp.data.parity import EOS, VOCAB_SIZE, ParityTask
from rlntp.experiments.parity_pretrain import ParityPretrainConfig
from rlntp.experiments.parity_rl import ParityRLConfig, low_jobs, rl_jobs, stages
from rlntp.experiments.runs import RLRun, pretrain_dir
from rlntp.models.gpt import GPT, GPTConfig, generate
from rlntp.params import resolve
from rlntp.rl import grpo, reinforce, star
from rlntp.rl.grpo import group_advantages, grpo_loss
from rlntp.rl.rollout import chosen_mask, response_logprobs, rollout
from rlntp.rl.star import star_recursion
from rlntp.train import make_optimizer

TASK = ParityTask(3, 0.5)
E = EOS


def _responses(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """EOS-padded responses (width long_len + 1 = 4) and their lengths, from token lists."""
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
    assert (prompts.sum(-1) % 2).tolist() == [0] * 8
    assert TASK.reward(prompts, resp, lengths, "e2e").tolist() == [1, 1, 1, 0, 0, 0, 1, 0]
    assert TASK.reward(prompts, resp, lengths, "cot").tolist() == [1, 0, 1, 0, 0, 0, 0, 0]
    with pytest.raises(ValueError, match="reward"):
        TASK.reward(prompts, resp, lengths, "length")


def _model(task: ParityTask = TASK, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(VOCAB_SIZE, task.seq_len, n_layer=1, n_head=2, n_embd=16))


def test_rollout_shapes_and_logprobs_match_a_step_by_step_pass() -> None:
    model, g = _model(), torch.Generator().manual_seed(0)
    prompts = TASK.sample_prompts(5, g)
    ro = rollout(model, TASK, prompts, 3, 1.5, "cot", g)
    W = TASK.long_len + 1
    assert W == TASK.max_new_tokens
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


def test_rollout_logprobs_equal_the_update_s_one_pass() -> None:
    """The speed trick (log-probs recorded while sampling) against the plain second pass."""
    model, g = _model(seed=3), torch.Generator().manual_seed(1)
    ro = rollout(model, TASK, TASK.sample_prompts(16, g), 4, 1.0, "e2e", g)
    with torch.no_grad():
        plain = response_logprobs(model, ro.prompts, ro.responses, 1.0)
    assert torch.allclose(plain[ro.mask], ro.logprobs[ro.mask], atol=1e-5)
    with pytest.raises(ValueError, match="temperature > 0"):
        generate(model, ro.prompts, 3, 0.0, EOS, with_logprobs=True)


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
    opt = make_optimizer(model, 1e-2, OptimizerPart())
    prompts = TASK.sample_prompts(16, g)
    ro = rollout(model, TASK, prompts, 4, 1.0, "e2e", g)
    assert 0 < ro.reward.mean() < 1  # some signal
    reuse = method == "grpo_reuse"
    cfg = RLLoopPart(num_generations=4, num_iterations=3 if reuse else 1, epsilon=0.2,
                     beta=0.1 if reuse else 0.0, star_epochs=1, star_batch_size=8)
    if method.startswith("grpo"):
        out = grpo.update(model, opt, ro, cfg, 1.0, _model(), g)
    elif method == "reinforce":
        out = reinforce.update(model, opt, ro, cfg, 1.0, None, g)
    else:
        out = star.update(model, opt, ro, cfg, 1.0, None, g)
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
    ("num_generations", 1, "num_generations"),
    ("p_cot", 0.0, "p_cot"),
    ("grid_n_seeds", -1, "grid_n_seeds"),
    ("low_p_cot", 0.5, "low_p_cot"),  # must be rarer than p_cot (smoke: 0.25)
    ("learning_rate", -1.0, "learning_rate"),
    ("star_learning_rate", 0.0, "star_learning_rate"),
    ("pretrain_learning_rate", -1.0, "pretrain_learning_rate"),
    ("epsilon", 0.0, "epsilon"),
    ("num_iterations", 0, "num_iterations"),
])
def test_config_errors_name_the_parameter(name: str, value: object, match: str) -> None:
    with pytest.raises(ConfigError, match=f"parameter {match}="):
        resolve(ParityRLConfig, preset="smoke", **{name: value})


def test_pretrain_config_and_jobs(tmp_path) -> None:
    cfg = resolve(ParityRLConfig, preset="smoke", out_dir=str(tmp_path))
    # the chapter pre-trains on its own p_cot and d, with its own pre-training fields: the same
    # run (the same folder) as chapter 1's config with those values
    task = cfg.task(cfg.p_cot)
    assert task == ParityTask(cfg.d, cfg.p_cot)
    assert isinstance(cfg, NTPPart) and isinstance(cfg, ModelPart)
    names = cfg.field_names(ModelPart, NTPPart, OptimizerPart)
    assert "pretrain_iters" in names and "pretrain_learning_rate" in names
    p = dataclasses.replace(resolve(ParityPretrainConfig, preset="smoke", out_dir=str(tmp_path)),
                            d=cfg.d, p_cot_values=(cfg.p_cot,),
                            **{n: getattr(cfg, n) for n in names})
    assert p.pretrain_iters == cfg.pretrain_iters and p.task(cfg.p_cot) == task
    assert all(pretrain_dir(p, task, s) == pretrain_dir(cfg, task, s) for s in cfg.seeds)
    assert all(b % cfg.ckpt_every == 0 for b in cfg.branch_steps)
    runs = rl_jobs(cfg)
    assert len(runs) == len(set(runs))
    assert {r.branch_step for r in runs if r.method == "grpo"} == set(cfg.branch_steps)
    grid = {(r.method, r.reward, r.temperature) for r in runs if r.branch_step == cfg.rl_branch}
    assert len(grid) == len(cfg.methods) * len(cfg.rewards) * len(cfg.temperatures)
    # the low_p_cot side experiment: its own pre-training per seed and GRPO from every branch
    pre, rl = stages(cfg)
    assert [t.p_cot for _, t, _ in pre.jobs] == [cfg.p_cot, cfg.low_p_cot]
    low = [r for _, t, r in rl.jobs if t.p_cot == cfg.low_p_cot]
    assert low == [RLRun("grpo", "e2e", cfg.temperature, b, 0) for b in cfg.branch_steps]
    off = dataclasses.replace(cfg, low_p_cot=0.0)
    assert len(stages(off)[0].jobs) == 1 and low_jobs(off) == []


def test_carry_forward_extends_stopped_runs() -> None:
    import pandas as pd

    from rlntp.experiments.runs import carry_forward

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
