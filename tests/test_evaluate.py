import torch

from rlntp.data.parity import ParityTask
from rlntp.evaluate import response_metrics
from rlntp.task import final_token

E = 2


def test_final_token_and_metrics_on_hand_made_responses():
    responses = torch.tensor([
        [1, 0, 1, 1, E],   # long, length 4, ends in 1
        [0, E, E, E, E],   # short, ends in 0
        [E, E, E, E, E],   # empty
        [1, E, E, E, E],   # short, ends in 1
    ])
    lengths = torch.tensor([4, 1, 0, 1])
    assert final_token(responses, lengths).tolist() == [1, 0, -1, 1]
    # prompts with parities 1, 1, 0, 1 (the parity is x.sum() % 2); d = 4 = long_len
    prompts = torch.tensor([[1, 0, 0, 0], [1, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 1]])
    assert (prompts.sum(-1) % 2).tolist() == [1, 1, 0, 1]
    task = ParityTask(4, 0.5)
    assert task.long_len == 4
    m = response_metrics(task, prompts, responses, lengths, mode="greedy")
    assert m["acc_greedy"] == 0.5
    assert m["frac_len_d_greedy"] == 0.25 and m["frac_long_greedy"] == 0.25
    assert m["len_mean_greedy"] == 1.5
    assert m["acc_greedy_long"] == 1.0 and abs(m["acc_greedy_short"] - 1 / 3) < 1e-6
