"""Every task of ``rlntp.data.TASKS`` keeps the :class:`rlntp.task.Task` contract, and the shared
batch assembly and ``cot`` check agree with a plain construction."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from rlntp.data import TASKS, multiplication, parity
from rlntp.data.__main__ import main
from rlntp.task import Batch, Task, assemble_batch, matches_reference, response_lengths

CASES = [(name, p_cot) for name in TASKS for p_cot in (0.0, 0.5, 1.0)]

# text -> the tokens shown: the prompt, the response and EOS (for tasks whose format reads back)
PARSE: dict[str, Callable[[str], list[int]]] = {
    "parity": lambda text: [{"0": 0, "1": 1, "<eos>": parity.EOS}[s] for s in text.split() if s != "|"],
    "mult": lambda text: [*multiplication.encode(text), multiplication.EOS],
}


def _plain_batch(task: Task, n: int, seed: int) -> tuple[list[list[int]], list[list[bool]], list[bool]]:
    """What a batch should hold, row by row: the prompts, then which are long, from one generator."""
    g = torch.Generator().manual_seed(seed)
    prompts = task.sample_prompts(n, g)
    is_long = (torch.rand(n, generator=g) < task.p_cot).tolist()
    long, short = (ref.tolist() for ref in task.references(prompts))
    tokens, masks = [], []
    for i, prompt in enumerate(prompts.tolist()):
        row = prompt + (long[i] if is_long[i] else short[i]) + [task.eos]
        tokens.append(row + [task.pad] * (task.seq_len - len(row)))
        # target t is token t + 1: the response and its EOS
        masks.append([len(prompt) <= t + 1 < len(row) for t in range(task.seq_len - 1)])
    return tokens, masks, is_long


@pytest.mark.parametrize(("name", "p_cot"), CASES)
def test_task_protocol(name: str, p_cot: float) -> None:
    task = TASKS[name].build(p_cot=p_cot)
    n, P = 64, task.prompt_len
    assert isinstance(task, Task)
    assert task.max_new_tokens == task.long_len + 1 and task.seq_len == P + task.long_len + 1
    b = task.sample_batch(n, torch.Generator().manual_seed(0))
    assert isinstance(b, Batch)
    assert b.tokens.shape == (n, task.seq_len) and b.tokens.dtype == torch.int64
    assert b.target_mask.shape == (n, task.seq_len - 1) and b.target_mask.dtype == torch.bool
    assert b.is_long.shape == (n,) and b.is_long.dtype == torch.bool
    assert ((b.tokens >= 0) & (b.tokens < task.vocab_size)).all()
    tokens, masks, is_long = _plain_batch(task, n, seed=0)
    assert b.tokens.tolist() == tokens and b.target_mask.tolist() == masks and b.is_long.tolist() == is_long
    assert torch.equal(b.tokens[:, :P], task.sample_prompts(n, torch.Generator().manual_seed(0)))

    # the demonstrations, as a model would write them (EOS after EOS), earn every reward
    prompts = b.tokens[:, :P]
    responses = b.tokens[:, P:].masked_fill(b.tokens[:, P:] == task.pad, task.eos)
    lengths = response_lengths(responses, task.eos)
    assert torch.equal(lengths, torch.where(b.is_long, task.long_len, task.short_len))
    assert torch.equal(task.is_long(lengths), b.is_long)
    assert task.correct(prompts, responses, lengths).all()
    for kind in ("e2e", "cot"):
        assert (task.reward(prompts, responses, lengths, kind) == 1).all()
        # cut before their EOS (truncated) or empty, they earn nothing
        cut = responses[:, : task.short_len]
        short_lengths = response_lengths(cut, task.eos)
        assert (task.reward(prompts, cut, short_lengths, kind) == 0).all()
        empty = torch.full_like(responses, task.eos)
        assert (task.reward(prompts, empty, torch.zeros(n, dtype=torch.long), kind) == 0).all()

    if name in PARSE:
        for row, length in zip(b.tokens, lengths.tolist(), strict=True):
            assert PARSE[name](task.format(row)) == row[: P + length + 1].tolist()


def test_assemble_batch_by_hand() -> None:
    EOS, PAD = 8, 9
    b = assemble_batch(torch.tensor([[1, 2], [3, 4]]), torch.tensor([[5, 6, 7], [5, 6, 7]]),
                       torch.tensor([[7], [0]]), torch.tensor([True, False]), EOS, PAD)
    assert b.tokens.tolist() == [[1, 2, 5, 6, 7, EOS], [3, 4, 0, EOS, PAD, PAD]]
    assert b.target_mask.int().tolist() == [[0, 1, 1, 1, 1], [0, 1, 1, 0, 0]]
    assert b.is_long.tolist() == [True, False]


def test_matches_reference_is_exact() -> None:
    long, short = torch.tensor([[5, 6, 7]] * 6), torch.tensor([[7]] * 6)
    responses = torch.tensor([[5, 6, 7, 0], [7, 0, 0, 0], [5, 6, 0, 0], [5, 6, 7, 7], [6, 0, 0, 0],
                              [0, 0, 0, 0]])
    lengths = response_lengths(responses, 0)
    assert matches_reference(responses, lengths, long, short).tolist() == [True, True] + [False] * 4
    narrow = responses[:, :2]  # the long reference does not fit
    assert matches_reference(narrow, response_lengths(narrow, 0), long, short).tolist() == [
        False, True, False, False, False, False]


@pytest.mark.parametrize("name", list(TASKS))
def test_cli_prints_the_tasks_batch(capsys, name: str) -> None:
    main([name, "--n", "5", "--seed", "3"])
    task = TASKS[name].build()
    rows = task.sample_batch(5, torch.Generator().manual_seed(3)).tokens
    assert capsys.readouterr().out.splitlines() == [task.format(row) for row in rows]
    with pytest.raises(SystemExit) as e:
        main([name, "--p-cot", "2"])
    assert e.value.code != 0 and "--p-cot 2.0: need 0 <= p_cot <= 1" in capsys.readouterr().err


def test_an_object_without_the_methods_is_not_a_task() -> None:
    assert not isinstance(object(), Task)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_held_out_test_prompts_are_never_trained_on(name):
    """Training batches and RL prompts come from the train split, evaluation prompts from the
    test split (a fixed hash of the prompt): the two never share a prompt."""
    from rlntp import seeds
    from rlntp.task import TEST_EVERY, is_test

    task = TASKS[name].build()
    train = task.sample_batch(4096, torch.Generator().manual_seed(0)).tokens[:, :task.prompt_len]
    rl = task.sample_prompts(1024, torch.Generator().manual_seed(1))
    test = seeds.test_prompts(task, 1024, seed=0)
    assert not is_test(train).any() and not is_test(rl).any() and is_test(test).all()
    seen = set(map(tuple, torch.cat([train, rl]).tolist()))
    assert seen.isdisjoint(map(tuple, test.tolist()))  # the overlap is zero
    everything = task.draw_prompts(20_000, torch.Generator().manual_seed(2))
    assert 0 < is_test(everything).float().mean().item() < 2 / TEST_EVERY  # small spaces vary


@pytest.mark.parametrize("task", [parity.ParityTask(16, 0.1), multiplication.MultiplicationTask(3, 0.25)])
def test_the_test_split_is_one_prompt_in_eight(task):
    from rlntp.task import TEST_EVERY, is_test

    everything = task.draw_prompts(50_000, torch.Generator().manual_seed(2))
    assert abs(is_test(everything).float().mean().item() - 1 / TEST_EVERY) < 0.01


def test_the_split_of_a_prompt_is_fixed_and_the_cli_prints_either(capsys):
    from rlntp.task import is_test

    x = torch.tensor([[0, 1, 1, 0, 1, 0], [1, 1, 1, 0, 0, 0]])
    assert is_test(x).tolist() == is_test(x.clone()).tolist()  # a function of the tokens alone
    main(["parity", "--d", "6", "--n", "5", "--split", "test"])
    out = capsys.readouterr().out
    prompts = torch.tensor([[int(t) for t in line.split(" | ")[0].split()] for line in out.splitlines()])
    assert len(prompts) == 5 and is_test(prompts).all()
