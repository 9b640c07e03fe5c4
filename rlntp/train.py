"""Next-token prediction: the masked loss and a resumable online training loop.

The loop draws a fresh batch every step from ``sample(generator)``, evaluates every
``eval_every`` steps, saves the model weights every ``ckpt_every`` steps (``ckpt_XXXXXX.pt``,
kept for RL to branch from) together with a resume state (optimizer, data generator, metrics so
far). Started again in the same folder, it continues from the last saved state and produces the
same numbers as an uninterrupted run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from rlntp.results import atomic_torch_save


def ntp_loss(model: torch.nn.Module, tokens: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of predicting ``tokens[:, 1:]`` where ``target_mask`` (B, T-1) is set."""
    logits, _ = model(tokens[:, :-1])
    ce = F.cross_entropy(logits.flatten(0, 1).float(), tokens[:, 1:].flatten(), reduction="none")
    mask = target_mask.flatten().float()
    return (ce * mask).sum() / mask.sum().clamp_min(1.0)


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float = 0.1
                   ) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not on biases, LayerNorms)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.95))


def lr_factor(step: int, iters: int, warmup: int, min_frac: float) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay from 1 to ``min_frac`` at ``iters``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, iters - warmup))
    return min_frac + (1 - min_frac) * 0.5 * (1 + math.cos(math.pi * progress))


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / f"ckpt_{step:06d}.pt"


def train_ntp(model: torch.nn.Module, sample: Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]],
              *, iters: int, lr: float, seed: int, run_dir: str | Path,
              evaluate: Callable[[torch.nn.Module, int], dict[str, float]],
              eval_every: int, ckpt_every: int, warmup: int = 100, min_lr_frac: float = 0.1,
              desc: str = "pretrain") -> list[tuple[int, dict[str, float]]]:
    """Train ``model`` for ``iters`` steps; return ``[(step, metrics), ...]`` (step 0 included).

    ``sample(g)`` returns ``(tokens, target_mask)`` drawn with generator ``g``; ``evaluate(model,
    step)`` returns metrics. The learning rate warms up linearly for ``warmup`` steps, then
    follows a cosine down to ``min_lr_frac * lr`` at ``iters`` (the low final rate makes the
    model's length probabilities settle, which greedy decoding near the threshold is sensitive to).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    opt = make_optimizer(model, lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, iters, warmup, min_lr_frac))
    gen = torch.Generator().manual_seed(seed)
    history: list[tuple[int, dict[str, float]]] = []
    start = 0
    state_file = run_dir / "state.pt"
    if state_file.exists():  # resume
        st = torch.load(state_file, weights_only=False)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        sched.load_state_dict(st["sched"])
        gen.set_state(st["gen"])
        history, start = st["history"], st["step"]
    if start == 0:
        history.append((0, evaluate(model, 0)))
    model.train()
    for step in tqdm(range(start + 1, iters + 1), desc=desc, initial=start, total=iters,
                     leave=False, mininterval=2.0):
        tokens, mask = sample(gen)
        loss = ntp_loss(model, tokens, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % eval_every == 0 or step == iters:
            history.append((step, {"loss": loss.item(), **evaluate(model, step)}))
            model.train()
        if step % ckpt_every == 0 or step == iters:
            atomic_torch_save(model.state_dict(), checkpoint_path(run_dir, step))
            state: dict[str, Any] = {"model": model.state_dict(), "opt": opt.state_dict(),
                                     "sched": sched.state_dict(), "gen": gen.get_state(),
                                     "history": history, "step": step}
            atomic_torch_save(state, state_file)
    return history
