"""The parity mixture D(p_cot): rare long chain-of-thought demonstrations, mostly short answers.

A prompt is d uniform random bits x_1..x_d. The response is, with probability p_cot, the
*long* chain of prefix parities y_i = x_1 xor ... xor x_i (every ``chain_step``-th one, always
ending with y_d), and with probability 1 - p_cot the *short* answer y_d alone. Either way it ends
with EOS, and the last token before EOS is the parity. Nothing marks long from short before the
first response token. Worked example, d = 5, x = 1 0 1 1 0 (parity 1)::

    long   (chain_step=1):  1 0 1 1 0 | 1 1 0 1 1 <eos>
    long   (chain_step=2):  1 0 1 1 0 | 1 1 1 <eos>        (y_2, y_4, then y_5)
    short:                  1 0 1 1 0 | 1 <eos>

Token layout of a batch (:func:`rlntp.task.assemble_batch`; vocabulary {0, 1, EOS=2};
T = d + chain_len + 1)::

    position   0 .. d-1 | d .. d+L-1 | d+L | d+L+1 .. T-1
    token      x_1..x_d | response   | EOS | EOS padding (masked)

``target_mask[:, t]`` says whether the model is trained to predict ``tokens[:, t + 1]``: only
response tokens and the first EOS count (the prompt and the padding are masked).
"""

from __future__ import annotations

import dataclasses

import torch

from rlntp.task import P_COT, MixtureTask, Param, TaskEntry, check_p_cot, final_token

EOS = 2
VOCAB_SIZE = 3


def prefix_parities(x: torch.Tensor) -> torch.Tensor:
    """Running parities y_i = x_1 xor ... xor x_i of 0/1 bits ``x`` (shape (..., d))."""
    return torch.cumsum(x, dim=-1) % 2


@dataclasses.dataclass(frozen=True)
class ParityTask(MixtureTask):
    """d-bit parity with long-demonstration fraction ``p_cot`` and a leap-``chain_step`` chain.

    Implements :class:`rlntp.task.Task`.
    """

    d: int
    p_cot: float
    chain_step: int = 1

    vocab_size = VOCAB_SIZE
    eos = EOS
    pad = EOS
    short_len = 1

    def __post_init__(self) -> None:
        if self.d < 2:
            raise ValueError(f"d={self.d}: need d >= 2")
        check_p_cot(self.p_cot)
        if not 1 <= self.chain_step <= self.d:
            raise ValueError(f"chain_step={self.chain_step}: need 1 <= chain_step <= d")

    @property
    def chain_positions(self) -> list[int]:
        """0-based prefix indices in the long response: every chain_step-th, always the last."""
        pos = list(range(self.chain_step - 1, self.d, self.chain_step))
        return pos if pos[-1] == self.d - 1 else [*pos, self.d - 1]

    @property
    def long_len(self) -> int:
        """Length of a long response (tokens before EOS); d for the plain chain."""
        return len(self.chain_positions)

    @property
    def prompt_len(self) -> int:
        return self.d

    @property
    def size(self) -> int:
        """The metrics' ``d`` column: the input bits d."""
        return self.d

    @property
    def label(self) -> str:
        return f"d{self.d}-p{self.p_cot:g}-k{self.chain_step}"

    def draw_prompts(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` prompts (n, d) of uniform bits, any split."""
        return torch.randint(0, 2, (n, self.d), generator=generator)

    def references(self, prompts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The chain (N, long_len) of prefix parities at ``chain_positions`` and the parity (N, 1)."""
        chain = prefix_parities(prompts)[:, self.chain_positions]
        return chain, chain[:, -1:]

    def correct(self, prompts: torch.Tensor, responses: torch.Tensor, lengths: torch.Tensor
                ) -> torch.Tensor:
        """The final token (the one before EOS) is the parity; an empty response is wrong."""
        return final_token(responses, lengths) == prompts.sum(-1) % 2

    def format(self, tokens: torch.Tensor) -> str:
        """``1 0 1 1 0 | 1 1 0 1 1 <eos>`` for one sequence (padding after the first EOS dropped)."""
        toks = tokens.tolist()
        resp = toks[self.d:]
        resp = resp[: resp.index(EOS) + 1] if EOS in resp else resp
        show = {0: "0", 1: "1", EOS: "<eos>"}
        return " ".join(show[t] for t in toks[: self.d]) + " | " + " ".join(show[t] for t in resp)


TASK = TaskEntry("parity", ParityTask, "the parity mixture D(p_cot), one example per line", {
    "d": Param(int, 6, "number of input bits (>= 2)"),
    "p_cot": P_COT,
    "chain_step": Param(int, 1, "leap-k chain: every k-th parity"),
})
