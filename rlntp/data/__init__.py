"""Data generators: the synthetic tasks (``parity``, ``multiplication``, listed in :data:`TASKS`)
and the text datasets (``math_text``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from rlntp.data.multiplication import MAX_DIGITS, MultiplicationTask
from rlntp.data.parity import ParityTask
from rlntp.task import Task


@dataclasses.dataclass(frozen=True)
class Param:
    """One argument of a task's constructor, as the command line offers it (``--NAME``)."""

    type: Callable[[str], Any]
    default: Any
    help: str


@dataclasses.dataclass(frozen=True)
class TaskEntry:
    """A synthetic task: its constructor, what it is, and its arguments by name."""

    make: Callable[..., Task]
    help: str
    params: dict[str, Param]

    def build(self, **values: Any) -> Task:
        """The task with these arguments, the others at their defaults."""
        return self.make(**{name: p.default for name, p in self.params.items()} | values)


P_COT = Param(float, 0.5, "fraction of long demonstrations")

TASKS: dict[str, TaskEntry] = {
    "parity": TaskEntry(ParityTask, "the parity mixture D(p_cot), one example per line", {
        "d": Param(int, 6, "number of input bits (>= 2)"),
        "p_cot": P_COT,
        "chain_step": Param(int, 1, "leap-k chain: every k-th parity"),
    }),
    "mult": TaskEntry(MultiplicationTask, "n x n digit multiplication (Deng et al. format), one per line", {
        "digits": Param(int, 4, f"digits per operand (1..{MAX_DIGITS})"),
        "p_cot": P_COT,
    }),
}
