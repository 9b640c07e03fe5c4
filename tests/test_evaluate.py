import torch

from rlntp.evaluate import final_token, response_metrics

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
    parity = torch.tensor([1, 1, 0, 1])
    m = response_metrics(responses, lengths, parity, chain_len=4, mode="greedy")
    assert m["acc_greedy"] == 0.5
    assert m["frac_len_d_greedy"] == 0.25 and m["frac_long_greedy"] == 0.25
    assert m["len_mean_greedy"] == 1.5
    assert m["acc_greedy_long"] == 1.0 and abs(m["acc_greedy_short"] - 1 / 3) < 1e-6
