"""A small GPT-2-style decoder (after nanoGPT): pre-LayerNorm blocks, learned positions,
``scaled_dot_product_attention``, and KV-cache generation (greedy or at any temperature).

With ``bf16_matmuls`` the blocks' matrix products run in bfloat16 (autocast) while the weights,
the residual stream, the logits and the optimizer stay float32; on a CPU the attention itself
stays float32 too (its bf16 backward is an order of magnitude slower there). :func:`native_bf16`
says where that is faster than float32.

>>> model = GPT(GPTConfig(vocab_size=3, block_size=33, n_layer=2, n_head=2, n_embd=64))
>>> out = generate(model, prompts, max_new_tokens=17, temperature=1.0, eos=2)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

KVCache = list[tuple[torch.Tensor, torch.Tensor]]


@dataclasses.dataclass(frozen=True)
class GPTConfig:
    vocab_size: int
    block_size: int  # longest sequence (prompt + response)
    n_layer: int = 2
    n_head: int = 2
    n_embd: int = 64
    dropout: float = 0.0
    bf16_matmuls: bool = False  # the blocks' matrix products in bfloat16 (see the module doc)

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}")


class SelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_head, self.dropout = cfg.n_head, cfg.dropout
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)

    def forward(self, x: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, C // self.n_head).permute(2, 0, 3, 1, 4)
        cpu = x.device.type == "cpu"
        if cpu:  # float32 attention (see the module doc); a no-op without bf16
            q, k, v = q.float(), k.float(), v.float()
        if cache is not None:  # decoding: the new queries attend to everything cached
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
        with torch.autocast("cpu", enabled=False) if cpu else contextlib.nullcontext():
            y = F.scaled_dot_product_attention(
                q, k, v, is_causal=cache is None and T > 1,
                dropout_p=self.dropout if self.training else 0.0,
            )
        return self.proj(y.transpose(1, 2).reshape(B, T, C)), (k, v)


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.n_embd), nn.LayerNorm(cfg.n_embd)
        self.attn = SelfAttention(cfg)
        self.mlp = nn.Sequential(nn.Linear(cfg.n_embd, 4 * cfg.n_embd), nn.GELU(),
                                 nn.Linear(4 * cfg.n_embd, cfg.n_embd), nn.Dropout(cfg.dropout))

    def forward(self, x: torch.Tensor, cache=None):
        a, cache = self.attn(self.ln1(x), cache)
        x = x + a
        return x + self.mlp(self.ln2(x)), cache


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.pos_emb = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2's scaled init of residual projections
            if name.endswith(("proj.weight", "mlp.2.weight")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None
                ) -> tuple[torch.Tensor, KVCache]:
        """Logits (B, T, vocab) for tokens ``idx`` (B, T) following the ``cache``d prefix."""
        start = 0 if cache is None else cache[0][0].shape[2]
        if start + idx.shape[1] > self.cfg.block_size:
            raise ValueError(f"sequence of {start + idx.shape[1]} > block_size {self.cfg.block_size}")
        pos = torch.arange(start, start + idx.shape[1], device=idx.device)
        x = self.tok_emb(idx) + self.pos_emb(pos)
        new_cache = []
        with torch.autocast(idx.device.type, torch.bfloat16, enabled=self.cfg.bf16_matmuls):
            for i, block in enumerate(self.blocks):  # the residual stream x stays float32
                x, c = block(x, None if cache is None else cache[i])
                new_cache.append(c)
        return self.head(self.ln_f(x)), new_cache


def native_bf16(device: str) -> bool:
    """Whether ``device`` has bfloat16 matrix units, where ``bf16_matmuls`` is faster than float32:
    a GPU that supports bf16, or a CPU with AMX tiles (measured on a 2-core Xeon: chapter 4's
    2-layer training step 1.4x faster). AVX-512-BF16 alone is not counted (not measured here)."""
    if device.startswith("cuda"):
        return torch.cuda.is_bf16_supported()
    is_amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(is_amx and is_amx())


@torch.no_grad()
def generate(model: GPT, prompts: torch.Tensor, max_new_tokens: int, temperature: float,
             eos: int, generator: torch.Generator | None = None, with_logprobs: bool = False
             ) -> tuple[torch.Tensor, ...]:
    """Continue equal-length ``prompts`` (B, P) until EOS or ``max_new_tokens``.

    ``temperature == 0`` is greedy decoding. Returns the responses (B, max_new_tokens), filled
    with ``eos`` after the first EOS, and the response lengths (B,) = tokens before the first
    EOS (``max_new_tokens`` when none was produced). With ``with_logprobs`` (temperature > 0)
    also the log-probability (B, max_new_tokens) of each sampled token under
    softmax(logits / temperature), read off the distribution it was drawn from: equal, up to
    float rounding, to one full forward pass over the responses (tested), at no extra cost.
    """
    if with_logprobs and temperature == 0:
        raise ValueError("with_logprobs needs temperature > 0 (greedy decoding samples nothing)")
    was_training = model.training
    model.eval()
    B = prompts.shape[0]
    out = torch.full((B, max_new_tokens), eos, dtype=torch.long, device=prompts.device)
    done = torch.zeros(B, dtype=torch.bool, device=prompts.device)
    logp = torch.zeros(out.shape, device=prompts.device) if with_logprobs else None
    logits, cache = model(prompts)
    for t in range(max_new_tokens):
        last = logits[:, -1, :].float()
        if temperature == 0:
            nxt = last.argmax(-1)
        else:
            probs = torch.softmax(last / temperature, dim=-1)
            nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)
            if logp is not None:
                logp[:, t] = probs.gather(1, nxt[:, None]).squeeze(1).log()
        nxt = torch.where(done, eos, nxt)
        out[:, t] = nxt
        done |= nxt == eos
        if bool(done.all()) or t == max_new_tokens - 1:
            break
        logits, cache = model(nxt[:, None], cache)
    model.train(was_training)
    is_eos = out == eos
    lengths = torch.where(is_eos.any(1), is_eos.float().argmax(1), max_new_tokens)
    return (out, lengths) if logp is None else (out, lengths, logp)
