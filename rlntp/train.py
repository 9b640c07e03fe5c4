"""Next-token prediction: the masked loss and a resumable online training loop.

The loop draws a fresh batch from the task every step, evaluates every ``pretrain_eval_every``
steps, saves the model weights every ``ckpt_every`` steps (``ckpt_XXXXXX.pt``, kept for RL to
branch from) together with a resume state (optimizer, data generator, metrics so far). Started
again in the same folder, it continues from the last saved state and produces the same numbers
as an uninterrupted run. Every file is written atomically (temporary file, then rename); a resume
state damaged anyway (a disk error, ``truncate``) is moved to ``state.pt.corrupt`` with a warning
naming it, and the run starts again from step 0 (same numbers, since every draw is seeded). One
that holds more than tensors and plain data is refused (:class:`rlntp.results.UnsafeCheckpoint`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from rlntp.config import NTPPart, OptimizerPart
from rlntp.results import atomic_torch_save, resume
from rlntp.seeds import generator
from rlntp.task import Task

History = list[tuple[int, dict[str, Any]]]  # (step, metrics)
STATE_KEYS = ("model", "opt", "sched", "gen", "history", "step")  # of the resume state, state.pt


def _ce_sum(model: torch.nn.Module, tokens: torch.Tensor, target_mask: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed cross-entropy of the targets ``tokens[:, 1:]`` where ``target_mask`` is set, and
    their count."""
    logits, _ = model(tokens[:, :-1])
    ce = F.cross_entropy(logits.flatten(0, 1).float(), tokens[:, 1:].flatten(), reduction="none")
    mask = target_mask.flatten().float()
    return (ce * mask).sum(), mask.sum()


def ntp_loss(model: torch.nn.Module, tokens: torch.Tensor, target_mask: torch.Tensor,
             groups: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy of predicting ``tokens[:, 1:]`` where ``target_mask`` (B, T-1) is set.

    With ``groups`` (B,) bool (e.g. long vs short demonstrations), each group's rows go through
    the model on their own, cut after the group's last target. A speed trick, not another loss:
    causal attention makes the kept logits the same, so the loss equals the plain one up to
    float rounding (tested), for fewer FLOPs when short rows carry long padding.
    """
    if groups is None:
        total, count = _ce_sum(model, tokens, target_mask)
        return total / count.clamp_min(1.0)
    total = count = torch.zeros((), device=tokens.device)
    for rows in (groups, ~groups):
        if rows.any():
            mask = target_mask[rows]
            width = int(mask.any(0).nonzero().max()) + 1  # target columns up to the last one
            s, c = _ce_sum(model, tokens[rows, :width + 1], mask[:, :width])
            total, count = total + s, count + c
    return total / count.clamp_min(1.0)


def make_optimizer(model: torch.nn.Module, lr: float, cfg: OptimizerPart) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not on biases, LayerNorms)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr,
                             betas=(cfg.adam_beta1, cfg.adam_beta2))


def optimizer_step(model: torch.nn.Module, opt: torch.optim.Optimizer, loss: torch.Tensor,
                   max_grad_norm: float) -> None:
    """One gradient step on ``loss`` with gradient-norm clipping (every training loop uses this)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    opt.step()


def lr_factor(step: int, iters: int, warmup: int, min_frac: float) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay from 1 to ``min_frac`` at ``iters``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, iters - warmup))
    return min_frac + (1 - min_frac) * 0.5 * (1 + math.cos(math.pi * progress))


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / f"ckpt_{step:06d}.pt"


def train_ntp(model: torch.nn.Module, task: Task, cfg: NTPPart, *, seed: int,
              run_dir: str | Path, evaluate: Callable[[torch.nn.Module, int], dict[str, Any]],
              desc: str = "pretrain") -> History:
    """Train ``model`` on ``task`` for ``cfg.pretrain_iters`` steps; return ``[(step, metrics)]``
    (step 0 included).

    Batches are drawn with the ``train_data`` stream of ``seed``; ``evaluate(model, step)``
    returns metrics. The learning rate warms up linearly for ``warmup_steps``, then follows a
    cosine down to ``min_lr_frac`` of the peak at the last step (the low final rate makes the
    model's length probabilities settle, which greedy decoding near the threshold is sensitive to).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = next(model.parameters()).device
    iters = cfg.pretrain_iters
    initial = {k: v.clone() for k, v in model.state_dict().items()}

    def fresh() -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR, torch.Generator]:
        model.load_state_dict(initial)
        opt = make_optimizer(model, cfg.pretrain_learning_rate, cfg)
        return (opt, torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: lr_factor(s, iters, cfg.warmup_steps, cfg.min_lr_frac)),
            generator("train_data", seed))

    opt, sched, gen = fresh()

    def restore(st: dict[str, Any]) -> None:
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        sched.load_state_dict(st["sched"])
        gen.set_state(st["gen"])

    st = resume(run_dir / "state.pt", STATE_KEYS, restore)
    if st is None:
        opt, sched, gen = fresh()  # nothing to resume, or a damaged state set aside
    history: History = list(st["history"]) if st else []
    start = int(st["step"]) if st else 0
    if start == 0:
        history.append((0, evaluate(model, 0)))
    model.train()
    for step in tqdm(range(start + 1, iters + 1), desc=desc, initial=start, total=iters,
                     leave=False, mininterval=2.0):
        batch = task.sample_batch(cfg.pretrain_batch_size, gen, device)
        loss = ntp_loss(model, batch.tokens, batch.target_mask,
                        batch.is_long if cfg.group_by_length else None)
        optimizer_step(model, opt, loss, cfg.max_grad_norm)
        sched.step()
        if step % cfg.pretrain_eval_every == 0 or step == iters:
            history.append((step, {"loss": loss.item(), **evaluate(model, step)}))
            model.train()
        if step % cfg.ckpt_every == 0 or step == iters:
            atomic_torch_save(model.state_dict(), checkpoint_path(run_dir, step))
            state: dict[str, Any] = {"model": model.state_dict(), "opt": opt.state_dict(),
                                     "sched": sched.state_dict(), "gen": gen.get_state(),
                                     "history": history, "step": step}
            atomic_torch_save(state, run_dir / "state.pt")
    return history
