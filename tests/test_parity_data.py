import subprocess
import sys

import pytest
import torch

from rlntp.data.parity import EOS, ParityTask, prefix_parities


def test_worked_example_from_the_docstring():
    x = torch.tensor([[1, 0, 1, 1, 0]])
    assert prefix_parities(x).tolist() == [[1, 1, 0, 1, 1]]
    assert ParityTask(5, 1.0, 2).chain_positions == [1, 3, 4]
    assert ParityTask(6, 1.0, 2).chain_positions == [1, 3, 5]
    assert ParityTask(5, 1.0).long_len == 5


def test_batch_layout_long_and_short():
    task = ParityTask(6, 0.5)
    b = task.sample_batch(256, torch.Generator().manual_seed(0))
    assert b.tokens.shape == (256, task.seq_len) == (256, 6 + 6 + 1)
    assert b.target_mask.shape == (256, task.seq_len - 1)
    x = b.tokens[:, :6]
    parity = x.sum(1) % 2
    for i in range(256):
        resp = b.tokens[i, 6:]
        mask = b.target_mask[i]
        if b.is_long[i]:
            assert resp[:6].tolist() == prefix_parities(x[i]).tolist()
            assert resp[6] == EOS
            assert mask.sum() == 7 and mask[5:].all()  # targets: 6 chain tokens + EOS
        else:
            assert resp[0] == parity[i] and (resp[1:] == EOS).all()
            assert mask.sum() == 2 and mask[5] and mask[6]  # the answer and its EOS
        assert not mask[:5].any()  # the prompt is never a target


def test_leap_chain_always_ends_with_the_parity():
    task = ParityTask(7, 1.0, chain_step=3)
    b = task.sample_batch(64, torch.Generator().manual_seed(1))
    assert task.chain_positions == [2, 5, 6]
    pp = prefix_parities(b.tokens[:, :7])
    assert torch.equal(b.tokens[:, 7:10], pp[:, [2, 5, 6]])
    assert torch.equal(b.tokens[:, 9], b.tokens[:, :7].sum(1) % 2)
    assert (b.tokens[:, 10] == EOS).all()


def test_long_fraction_matches_p_cot_and_seed_reproduces():
    task = ParityTask(8, 0.2)
    b1 = task.sample_batch(20_000, torch.Generator().manual_seed(3))
    b2 = task.sample_batch(20_000, torch.Generator().manual_seed(3))
    assert torch.equal(b1.tokens, b2.tokens)
    assert abs(b1.is_long.float().mean().item() - 0.2) < 0.015
    x = task.sample_prompts(10, torch.Generator().manual_seed(0))
    assert x.shape == (10, 8) and x.dtype == torch.int64
    assert set(x.unique().tolist()) <= {0, 1}
    # the prompts of a batch are the prompts sample_prompts draws from the same generator state
    b = task.sample_batch(10, torch.Generator().manual_seed(0))
    assert torch.equal(b.tokens[:, :8], x)


@pytest.mark.parametrize("kwargs", [dict(d=1, p_cot=0.5), dict(d=4, p_cot=1.5),
                                    dict(d=4, p_cot=0.5, chain_step=5)])
def test_bad_task_is_rejected(kwargs):
    with pytest.raises(ValueError):
        ParityTask(**kwargs)


def test_format_example():
    task = ParityTask(5, 0.5)
    assert task.format(torch.tensor([1, 0, 1, 1, 0, 1, 2, 2, 2, 2, 2])) == "1 0 1 1 0 | 1 <eos>"


def test_cli_prints_one_example_per_line():
    out = subprocess.run([sys.executable, "-m", "rlntp.data", "parity", "--d", "6", "--p-cot", "0.5",
                          "--n", "8", "--seed", "0"], capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 8
    for line in lines:
        prompt, resp = line.split(" | ")
        assert len(prompt.split()) == 6 and resp.endswith("<eos>")
        assert len(resp.split()) in (2, 7)
    bad = subprocess.run([sys.executable, "-m", "rlntp.data", "parity", "--d", "1"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "--d 1: need d >= 2" in bad.stderr
