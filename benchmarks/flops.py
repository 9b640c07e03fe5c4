"""FLOP counts of our GPT and the CPU's fp32 matrix-multiply peak (the physical reference).

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

import time

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

    def __init__(self, model: GPT) -> None:
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


def gemm_gflops(threads: int, n: int, min_s: float = 0.5) -> float:
    """fp32 GFLOP/s of ``n x n @ n x n`` (2 n^3 FLOPs) on ``threads`` torch threads: the best of
    repeated timings over about ``min_s`` seconds. The thread count is restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, n), torch.randn(n, n)
        out = torch.empty(n, n)
        torch.mm(a, b, out=out)  # warm-up
        best, start = float("inf"), time.perf_counter()
        while time.perf_counter() - start < min_s:
            t0 = time.perf_counter()
            torch.mm(a, b, out=out)
            best = min(best, time.perf_counter() - t0)
        return 2 * n**3 / best / 1e9
    finally:
        torch.set_num_threads(before)


def gemm_peak_gflops(threads: int, sizes: tuple[int, ...] = (512, 1024, 2048), min_s: float = 0.5
                     ) -> tuple[float, dict[int, float]]:
    """The best fp32 matmul GFLOP/s over square ``sizes`` (and each size's) on ``threads``."""
    per_size = {n: round(gemm_gflops(threads, n, min_s), 1) for n in sizes}
    return max(per_size.values()), per_size
