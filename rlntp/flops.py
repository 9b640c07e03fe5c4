"""FLOP counts of our GPT (the benchmarks and the paper-shape cost table use them).

A training step (forward + backward) of :class:`rlntp.models.gpt.GPT` on B sequences of T
forwarded tokens costs, by the usual count (Kaplan et al. 2020; PaLM's appendix B)::

    6 * N * B * T  +  12 * n_layer * n_embd * B * T^2

- ``N``: parameters without the token and position embeddings (table look-ups, no FLOPs); the
  output head, biases and LayerNorms included. Each weight does a multiply-add (2 FLOPs) per
  token forward and two backward (input and weight gradients): 6 per token.
- attention: ``Q K^T`` and ``A V`` are 2 * T^2 * n_embd FLOPs each per layer forward, times 3 for
  forward + backward. The full T x T square is counted (causal masking could skip half).
- not counted: softmax, GELU, LayerNorm arithmetic, the loss, gradient clipping and the AdamW
  update (about 10 N FLOPs per step, far below 6 N B T).

T is what the model was *given*: ``tokens[:, :-1]`` in :func:`rlntp.train.ntp_loss`, and with
``group_by_length`` each group's own cut width (so the count is taken from the forward calls,
:class:`ForwardShapes`, never from the padded batch).
"""

from __future__ import annotations

from typing import Any

import torch

from rlntp.models.gpt import GPT

FLOP_FORMULA = ("6 * N * B * T + 12 * n_layer * n_embd * B * T^2 per forward+backward, N = parameters "
                "without token/position embeddings, T = tokens forwarded per sequence; optimizer, "
                "softmax, LayerNorm and GELU arithmetic not counted")
EMBEDDINGS = ("tok_emb.weight", "pos_emb.weight")


def nonembedding_params(model: GPT) -> int:
    """Parameters of ``model`` but its token and position embeddings."""
    return sum(p.numel() for name, p in model.named_parameters() if name not in EMBEDDINGS)


def train_flops(n_params: int, n_layer: int, n_embd: int, batch: int, seq: int) -> int:
    """FLOPs of forward + backward on ``batch`` sequences of ``seq`` tokens (the formula above)."""
    return 6 * n_params * batch * seq + 12 * n_layer * n_embd * batch * seq**2


class ForwardShapes:
    """Records the (B, T) of every call of ``model.forward`` while active (a forward pre-hook),
    so a step's FLOPs are counted from what the model really processed."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.shapes: list[tuple[int, int]] = []

    def __enter__(self) -> ForwardShapes:
        self._handle = self.model.register_forward_pre_hook(self._record)
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.remove()

    def _record(self, module: torch.nn.Module, args: tuple) -> None:
        b, t = args[0].shape
        self.shapes.append((int(b), int(t)))

    def train_flops(self) -> int:
        """Forward + backward FLOPs of the recorded calls (each call is backpropagated once)."""
        n, cfg = nonembedding_params(self.model), self.model.cfg
        return sum(train_flops(n, cfg.n_layer, cfg.n_embd, b, t) for b, t in self.shapes)


class _Zeros(torch.nn.Module):
    """Stands in for the GPT in :func:`rlntp.train.ntp_loss`: zero logits, no compute (only the
    shapes it is given count)."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size

    def forward(self, idx: torch.Tensor) -> tuple[torch.Tensor, None]:
        return torch.zeros(*idx.shape, self.vocab_size), None


def mean_step_flops(cfg: Any, task: Any, model: GPT, samples: int = 16) -> float:
    """Mean FLOPs of a pre-training step of ``cfg`` (its batch size and ``group_by_length``) with
    ``model``'s shape: :data:`FLOP_FORMULA` over the widths ntp_loss really forwards, over
    ``samples`` batches drawn on the CPU."""
    from rlntp.train import ntp_loss

    fake, gen = _Zeros(task.vocab_size), torch.Generator().manual_seed(12345)
    with ForwardShapes(fake) as rec:
        for _ in range(samples):
            b = task.sample_batch(cfg.pretrain_batch_size, gen)
            ntp_loss(fake, b.tokens, b.target_mask, b.is_long if cfg.group_by_length else None)
    n, mc = nonembedding_params(model), model.cfg
    return sum(train_flops(n, mc.n_layer, mc.n_embd, B, T) for B, T in rec.shapes) / samples


def rl_iter_flops_full_width(cfg: Any, task: Any, model: GPT) -> float:
    """FLOPs of a GRPO iteration whose responses all run to ``max_new_tokens``: generation priced
    as one forward over prompt + response (a third of the training formula, attention over the full
    square), plus ``num_iterations`` forward + backward passes of the update."""
    n, mc = nonembedding_params(model), model.cfg
    t = task.prompt_len + task.max_new_tokens - 1
    step = train_flops(n, mc.n_layer, mc.n_embd, cfg.prompts_per_iter * cfg.num_generations, t)
    return step / 3 + cfg.num_iterations * step
