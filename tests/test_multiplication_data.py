import random

import pytest
import torch

from rlntp.data.__main__ import main
from rlntp.data.multiplication import (
    ANS,
    EOS,
    LPAR,
    PAD,
    VOCAB_SIZE,
    MultiplicationTask,
    encode,
    long_response,
    parse_long,
    prompt,
    short_response,
)
from rlntp.task import Task, response_lengths

LONG_4X4 = ("1 3 4 5 * 8 1 9 3||8 4 4 3 4 + 0 1 3 4 5 0 ( 8 5 7 7 9 0 ) + 0 0 9 7 8 8 4 "
            "( 8 5 6 5 8 9 4 ) + 0 0 0 3 9 2 6 1 #### 8 5 6 8 7 2 1 2")
SHORT_4X4 = "1 3 4 5 * 8 1 9 3||#### 8 5 6 8 7 2 1 2"


def test_worked_4x4_example_byte_for_byte():
    task = MultiplicationTask(4, 0.5)
    p = prompt(5431, 3918, 4)
    assert len(p) == task.prompt_len == 10
    row = torch.tensor([*p, *long_response(5431, 3918, 4), EOS, PAD, PAD])
    assert task.format(row) == LONG_4X4
    assert task.format(torch.tensor([*p, *short_response(5431, 3918, 4), EOS])) == SHORT_4X4
    assert encode(LONG_4X4) == row[:-3].tolist()
    assert task.format(torch.tensor([*p, EOS, EOS])) == "1 3 4 5 * 8 1 9 3||"  # an empty response
    assert parse_long(LONG_4X4) == ([43448, 54310, 4887900, 16293000], [97758, 4985658], 21278658)


def test_lengths():
    t3 = MultiplicationTask(3, 0.5)
    assert (t3.prompt_len, t3.long_len, t3.short_len) == (8, 31, 7)
    assert len(long_response(123, 456, 3)) == 31 and len(short_response(123, 456, 3)) == 7
    assert t3.max_new_tokens == 32 and t3.seq_len == 8 + 31 + 1
    t2 = MultiplicationTask(2, 0.5)
    assert (t2.prompt_len, t2.long_len, t2.short_len) == (6, 13, 5)
    line = t2.format(torch.tensor(prompt(12, 34, 2) + long_response(12, 34, 2)))
    assert line == "2 1 * 4 3||8 4 0 + 0 6 3 0 #### 8 0 4 0"  # n = 2: no running sums
    t1 = MultiplicationTask(1, 0.5)
    assert t1.format(torch.tensor(prompt(7, 8, 1) + long_response(7, 8, 1))) == "7 * 8||6 5 #### 6 5"
    for n in range(1, 10):
        t = MultiplicationTask(n, 0.5)
        assert len(long_response(10**n - 1, 10**n - 1, n)) == t.long_len
        assert len(short_response(10**n - 1, 10**n - 1, n)) == t.short_len == 2 * n + 1
    assert (t3.vocab_size, t3.eos, VOCAB_SIZE) == (18, EOS, 18)
    assert isinstance(t3, Task)


def test_long_line_parses_back_to_partial_products_and_sums():
    rng = random.Random(0)
    for n in range(2, 7):
        task = MultiplicationTask(n, 1.0)
        for _ in range(100):
            a, b = rng.randrange(10 ** (n - 1), 10**n), rng.randrange(10 ** (n - 1), 10**n)
            line = task.format(torch.tensor(prompt(a, b, n) + long_response(a, b, n)))
            parsed = parse_long(line)
            assert parsed.partials == [a * (b // 10**k % 10) * 10**k for k in range(n)]
            assert parsed.sums == [sum(parsed.partials[: k + 1]) for k in range(1, n - 1)]
            assert parsed.product == a * b == sum(parsed.partials)
    big = 10**9 - 1  # 9 digits: the largest products still fit int64
    assert parse_long(long_response(big, big, 9)).product == big * big


def test_sample_batch_layout():
    task = MultiplicationTask(3, 0.5)
    b = task.sample_batch(200, torch.Generator().manual_seed(0))
    P, L, S = task.prompt_len, task.long_len, task.short_len
    assert b.tokens.shape == (200, task.seq_len) and b.tokens.dtype == torch.int64
    assert b.target_mask.shape == (200, task.seq_len - 1) and b.target_mask.dtype == torch.bool
    assert b.is_long.shape == (200,) and 0 < b.is_long.sum() < 200
    resp_len = torch.where(b.is_long, L, S)
    t = torch.arange(task.seq_len - 1)
    assert torch.equal(b.target_mask, (t >= P - 1) & (t < P + resp_len[:, None]))
    for i in range(200):
        n_resp = int(resp_len[i])
        resp = b.tokens[i, P:P + n_resp]
        assert ((resp != EOS) & (resp != PAD)).all()
        assert b.tokens[i, P + n_resp] == EOS and (b.tokens[i, P + n_resp + 1:] == PAD).all()
        a, c = task.operands(b.tokens[i:i + 1, :P])
        ref = (long_response if b.is_long[i] else short_response)(int(a), int(c), 3)
        assert resp.tolist() == ref
    responses = b.tokens[:, P:].masked_fill(b.tokens[:, P:] == PAD, EOS)  # EOS-filled, as generated
    lengths = response_lengths(responses, EOS)
    assert torch.equal(lengths, resp_len) and torch.equal(task.is_long(lengths), b.is_long)
    for kind in ("e2e", "cot"):
        assert (task.reward(b.tokens[:, :P], responses, lengths, kind) == 1).all()


def test_sampling_distribution_and_seed():
    task = MultiplicationTask(4, 0.3)
    b1 = task.sample_batch(4000, torch.Generator().manual_seed(5))
    b2 = task.sample_batch(4000, torch.Generator().manual_seed(5))
    assert torch.equal(b1.tokens, b2.tokens) and torch.equal(b1.is_long, b2.is_long)
    assert not torch.equal(b1.tokens, task.sample_batch(4000, torch.Generator().manual_seed(6)).tokens)
    assert abs(b1.is_long.float().mean().item() - 0.3) < 0.03
    assert (b1.tokens[:, 3] != 0).all() and (b1.tokens[:, 8] != 0).all()  # leading digits of a, b
    prompts = task.sample_prompts(4000, torch.Generator().manual_seed(5))
    assert prompts.shape == (4000, 10) and torch.equal(prompts, b1.tokens[:, :10])
    a, b = task.operands(prompts)
    assert a.min() >= 1000 and b.max() <= 9999
    one = MultiplicationTask(1, 0.0).sample_prompts(500, torch.Generator().manual_seed(0))
    assert set(one[:, 0].tolist()) == set(range(1, 10)) == set(one[:, 2].tolist())
    assert (MultiplicationTask(2, 1.0).sample_batch(50, torch.Generator()).is_long).all()
    assert not (MultiplicationTask(2, 0.0).sample_batch(50, torch.Generator()).is_long).any()


def _judge(task, a, b, responses, width):
    rows = [r[:width] + [EOS] * (width - len(r)) for r in responses]
    prompts = torch.tensor([prompt(a, b, task.digits)] * len(rows))
    resp = torch.tensor(rows)
    lengths = response_lengths(resp, EOS)
    return (task.correct(prompts, resp, lengths).tolist(),
            *(task.reward(prompts, resp, lengths, kind).tolist() for kind in ("e2e", "cot")))


def test_correct_and_rewards_on_hand_made_responses():
    task = MultiplicationTask(3, 0.5)
    a, b = 507, 938
    long, short = long_response(a, b, 3), short_response(a, b, 3)
    bad_partial = [(long[0] + 1) % 10, *long[1:]]  # wrong partial product, right product
    bad_sum = list(long)
    i = long.index(LPAR) + 1
    bad_sum[i] = (bad_sum[i] + 1) % 10  # wrong running sum
    wrong = [*short[:-1], (short[-1] + 1) % 10]
    responses = [long, short, bad_partial, bad_sum, wrong, [], [*short, 3], [ANS, *wrong[1:], *short],
                 [*long[:5], *short], short[:-1]]
    correct, e2e, cot = _judge(task, a, b, responses, task.max_new_tokens)
    assert correct == [True, True, True, True, False, False, False, False, True, False]
    assert e2e == [1, 1, 1, 1, 0, 0, 0, 0, 1, 0]
    assert cot == [1, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    # truncated (no EOS within the width): the answer may be right, the reward is 0
    assert _judge(task, a, b, [long], task.long_len) == ([True], [0], [0])
    assert _judge(task, a, b, [short], task.short_len) == ([True], [0], [0])
    # narrower and wider than max_new_tokens
    assert _judge(task, a, b, [short, long[:3]], task.short_len + 1) == ([True, False], [1, 0], [1, 0])
    wide = _judge(task, a, b, [long, short, bad_partial], 2 * task.max_new_tokens)
    assert wide == ([True] * 3, [1, 1, 1], [1, 1, 0])
    with pytest.raises(ValueError, match="reward"):
        task.reward(torch.tensor([prompt(a, b, 3)]), torch.tensor([[EOS]]), torch.tensor([0]), "bogus")


def test_is_long():
    task = MultiplicationTask(3, 0.5)
    assert task.is_long(torch.tensor([0, 7, 8, 31])).tolist() == [False, False, True, True]


@pytest.mark.parametrize("digits, p_cot, name", [(0, 0.5, "digits"), (10, 0.5, "digits"),
                                                 (4, 1.5, "p_cot"), (4, -0.1, "p_cot")])
def test_bad_task_is_rejected(digits, p_cot, name):
    with pytest.raises(ValueError, match=name):
        MultiplicationTask(digits, p_cot)


def test_cli_prints_long_and_short_lines(capsys):
    task = MultiplicationTask(4, 1.0)
    main(["mult", "--digits", "4", "--p-cot", "1.0", "--n", "8", "--seed", "0"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 8
    for line in lines:
        toks = encode(line)
        assert len(toks) == task.prompt_len + task.long_len and EOS not in toks
        a, b = task.operands(torch.tensor([toks[: task.prompt_len]]))
        assert line == task.format(torch.tensor(prompt(int(a), int(b), 4) + long_response(int(a), int(b), 4)))
    main(["mult", "--digits", "4", "--p-cot", "0", "--n", "8", "--seed", "0"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 8
    assert all(len(encode(line)) == task.prompt_len + task.short_len and "||####" in line for line in lines)


@pytest.mark.parametrize("argv, flag", [(["--digits", "0"], "--digits"), (["--p-cot", "2"], "--p-cot"),
                                        (["--n", "0"], "--n")])
def test_cli_rejects_bad_arguments(capsys, argv, flag):
    with pytest.raises(SystemExit) as e:
        main(["mult", *argv])
    assert e.value.code != 0 and flag in capsys.readouterr().err
