"""Autoregressive linear models (Malach, 2023) for the parity mixture, many models at once.

Response position t = 0..d has its own linear next-token predictor: a softmax over
{0, 1, EOS} of ``W[t] @ phi``, where ``phi`` is a fixed feature map of the prefix::

    phi = [1, s_1, ..., s_d, r s_1, ..., r s_d]          (F = 2d + 1 features)

with s_i = 1 - 2 x_i the prompt bits as +-1 (so xor becomes a product) and r = +-1 the token
just before the one being predicted (x_d at t = 0, else the previous response token). Then

* one chain step y_t = y_{t-1} xor x_t is linear: in +-1 form it is the feature r s_t;
* "EOS or continue" after the first token is linear: it depends on r s_1 (was y_1 = x_1?);
* the d-bit parity s_1 ... s_d is not linear at the first position for d >= 3 (there r = s_d,
  so the features are 1, s_i and s_i s_d, all orthogonal to the product of d signs), so the
  first token can not learn the short answer: the model is stuck at a coin flip in short mode.

A *batch of models* is one tensor ``W`` of shape (B, d+1, 3, F): B independent models (for
example one per p_cot value) trained in lock step. Sequences are ``Rollouts``: prompts
(B, N, d) and responses (B, N, d+1) in the token layout of :mod:`rlntp.data.parity`
(response tokens, then EOS padding), one set of N sequences per model.
"""

from __future__ import annotations

import dataclasses

import torch

from rlntp.data.parity import EOS, VOCAB_SIZE, ParityTask, prefix_parities


def n_features(d: int) -> int:
    return 2 * d + 1


def init_weights(n_models: int, d: int) -> torch.Tensor:
    """Zero weights (uniform predictions) for ``n_models`` models: (B, d+1, 3, 2d+1)."""
    return torch.zeros(n_models, d + 1, VOCAB_SIZE, n_features(d), requires_grad=True)


def pm1(tokens: torch.Tensor) -> torch.Tensor:
    """Bits 0/1 as +1/-1 (so that xor is a product); EOS (2) maps to -3 and is never used."""
    return 1.0 - 2.0 * tokens.float()


def features(x: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
    """The feature map phi: prompts x (..., d) and previous tokens prev (..., T) -> (..., T, F)."""
    s = pm1(x)[..., None, :].expand(*prev.shape, x.shape[-1])
    r = pm1(prev)[..., None]
    return torch.cat([torch.ones_like(r), s, r * s], dim=-1)


def logits(W: torch.Tensor, x: torch.Tensor, prev: torch.Tensor,
           positions: slice = slice(None)) -> torch.Tensor:
    """``W[b, t] @ features(x, prev)[b, n, t]`` for the given positions: (B, N, T', 3).

    Computed in factored form (bias + s @ W_s + r * (s @ W_rs)) without building the features.
    """
    (B, N, d), Wp = x.shape, W[:, positions]             # Wp: (B, T', 3, F)
    T = Wp.shape[1]
    # memory layout (B, N, 3, T): each class's logits contiguous, for the elementwise softmax
    Ws = Wp[..., 1:].reshape(B, T, 3, 2, d).permute(0, 4, 3, 2, 1).reshape(B, d, 2 * 3 * T)
    lin, prod = torch.bmm(pm1(x), Ws).view(B, N, 2, 3, T).unbind(2)   # s @ W_s, s @ W_rs
    out = Wp[..., 0].transpose(1, 2)[:, None] + lin + pm1(prev)[:, :, None] * prod
    return out.transpose(-1, -2)


@dataclasses.dataclass
class Rollouts:
    """N prompts and responses for each of B models."""

    x: torch.Tensor     # (B, N, d) int64 bits
    resp: torch.Tensor  # (B, N, d+1) int64: response tokens, then EOS padding

    @property
    def length(self) -> torch.Tensor:
        """Tokens before the first EOS (d + 1 if there is none): (B, N)."""
        return (self.resp != EOS).long().cumprod(-1).sum(-1)

    @property
    def target_mask(self) -> torch.Tensor:
        """Which response positions are trained: the tokens and the first EOS: (B, N, d+1)."""
        t = torch.arange(self.resp.shape[-1])
        return t <= self.length[..., None]

    @property
    def prev(self) -> torch.Tensor:
        """The token before each response position: x_d, y_1, ..., y_d: (B, N, d+1)."""
        return torch.cat([self.x[..., -1:], self.resp[..., :-1]], dim=-1)

    @property
    def answer(self) -> torch.Tensor:
        """The last token before EOS (-1 for an empty response): (B, N)."""
        last = self.resp.gather(-1, (self.length - 1).clamp(min=0)[..., None])[..., 0]
        return torch.where(self.length > 0, last, -1)

    @property
    def correct(self) -> torch.Tensor:
        return self.answer == self.x.sum(-1) % 2

    def select(self, idx: torch.Tensor) -> Rollouts:
        """Sequences ``idx`` (B, M) of each model."""
        return Rollouts(self.x.gather(1, idx[..., None].expand(-1, -1, self.x.shape[-1])),
                        self.resp.gather(1, idx[..., None].expand(-1, -1, self.resp.shape[-1])))


def sample_prompts_batch(n_models: int, n: int, d: int, gen: torch.Generator, split: str = "train"
                         ) -> torch.Tensor:
    """Fresh uniform prompts (B, n, d) of ``split`` (:meth:`rlntp.task.MixtureTask.sample_prompts`:
    training never sees a test prompt)."""
    return ParityTask(d, 1.0).sample_prompts(n_models * n, gen, split=split).view(n_models, n, d)


def sample_mixture(p_cot: torch.Tensor, n: int, d: int, gen: torch.Generator) -> Rollouts:
    """n fresh sequences from D(p_cot[b]) for each model b: long chain or short answer."""
    x = sample_prompts_batch(len(p_cot), n, d, gen)
    is_long = torch.rand(len(p_cot), n, generator=gen) < p_cot[:, None]
    chain = prefix_parities(x)
    short = torch.full_like(chain, EOS)
    short[..., 0] = chain[..., -1]
    resp = torch.full((*x.shape[:2], d + 1), EOS)
    resp[..., :d] = torch.where(is_long[..., None], chain, short)
    return Rollouts(x, resp)


def token_nll(W: torch.Tensor, ro: Rollouts, pos: slice = slice(None)) -> torch.Tensor:
    """Next-token negative log-likelihood at response positions ``pos``, 0 where masked."""
    lg = logits(W, ro.x, ro.prev[..., pos], pos)
    m = lg.detach().amax(-1)
    lse = m + sum(torch.exp(lk - m) for lk in lg.unbind(-1)).log()   # small-vocab logsumexp
    nll = lse - lg.gather(-1, ro.resp[..., pos, None])[..., 0]
    return nll * ro.target_mask[..., pos]


def linear_ntp_loss(W: torch.Tensor, ro: Rollouts) -> torch.Tensor:
    """Per-model NTP loss (B,): each position's loss averaged over the sequences that reach it.

    Every position's predictor is thus trained on its own stream of examples, as each class H_t
    is learned separately in the theory; summed over positions. Positions 0 and 1 are computed
    for every sequence, later ones only for the sequences that get there (few when p_cot is small).
    """
    mask = ro.target_mask
    head = token_nll(W, ro, slice(0, 2))                           # (B, N, 2)
    reach = mask[..., 2]                                           # sequences with length >= 2
    k = max(int(reach.sum(1).max()), 1)
    sub = ro.select(torch.argsort(reach.int(), dim=1, descending=True, stable=True)[:, :k])
    tail = token_nll(W, sub, slice(2, None))                       # (B, k, T - 2), masked
    counts = mask.sum(1).clamp(min=1)                              # (B, T)
    return (torch.cat([head.sum(1), tail.sum(1)], -1) / counts).sum(-1)


def sgd_step(W: torch.Tensor, loss: torch.Tensor, lr: torch.Tensor | float) -> None:
    """One plain SGD step on ``loss.sum()``; ``lr`` a number or one rate per model (B,)."""
    grad, = torch.autograd.grad(loss.sum(), W)
    lr = torch.as_tensor(lr, dtype=W.dtype).reshape(-1, 1, 1, 1)
    with torch.no_grad():
        W -= lr * grad


@torch.no_grad()
def generate(W: torch.Tensor, x: torch.Tensor, temperature: float,
             gen: torch.Generator) -> Rollouts:
    """Decode up to d+1 tokens for prompts x (B, N, d): greedy at temperature 0, else sampled.

    Each step computes only the sequences still running (padded to the most of any model).
    """
    B, N, d = x.shape
    resp = torch.full((B, N, d + 1), EOS, dtype=torch.long)
    prev = x[..., -1].clone()
    alive = torch.ones(B, N, dtype=torch.bool)
    for t in range(d + 1):
        k = int(alive.sum(1).max())
        if k == 0:
            break
        idx = torch.argsort(alive.int(), dim=1, descending=True, stable=True)[:, :k]  # (B, k)
        xs = x.gather(1, idx[..., None].expand(-1, -1, d))
        lg = logits(W, xs, prev.gather(1, idx)[..., None], slice(t, t + 1))[:, :, 0]
        if temperature == 0:
            tok = lg.argmax(-1)
        else:
            cdf = torch.softmax(lg / temperature, -1).cumsum(-1)
            tok = (torch.rand(B, k, 1, generator=gen) > cdf[..., :-1]).sum(-1)
        run = alive.gather(1, idx)
        tok = torch.where(run, tok, EOS)
        resp[..., t] = resp[..., t].scatter(1, idx, tok)
        prev = prev.scatter(1, idx, torch.where(run, tok, prev.gather(1, idx)))
        alive = alive.scatter(1, idx, run & (tok != EOS))
    return Rollouts(x, resp)
