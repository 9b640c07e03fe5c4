"""The end-to-end correctness rewards of GSM8K (numbers) and MATH (math-verify)."""

import pytest

from rlntp.llm.rewards import correctness_reward, gsm8k_correct, gsm8k_prediction, math_correct


@pytest.mark.parametrize("completion,reference,ok", [
    ("#### 72", "72", True),
    ("She sold 48+24 = 72 clips.\n#### 72", "72", True),
    ("#### $1,000", "1000", True),          # dollar sign and thousands separator
    ("#### 1,000.00", "1000", True),        # trailing .00
    ("#### 18.", "18", True),               # sentence full stop
    ("#### -3", "-3", True),
    ("The answer is 5. #### 6", "6", True),  # the number after #### wins
    ("The answer is 5. #### 6", "5", False),
    ("first 3, then 4", "4", True),         # no ####: the last number
    ("It costs $12.50 in total", "12.5", True),
    ("#### 72.5", "72", False),
    ("####", "0", False),
    ("no numbers here", "1", False),
    ("", "0", False),
])
def test_gsm8k_correct(completion, reference, ok):
    assert gsm8k_correct(completion, reference) is ok


def test_gsm8k_prediction_prefers_the_marker():
    assert gsm8k_prediction("10 apples and 20 pears #### 30 fruit, 2 bags") == "30"
    assert gsm8k_prediction("nothing") is None


@pytest.mark.parametrize("completion,reference,ok", [
    ("so $\\boxed{\\frac{1}{2}}$", "\\frac{1}{2}", True),
    ("\\boxed{\\dfrac12}", "\\frac{1}{2}", True),   # same value, other notation
    ("\\boxed{0.5}", "\\frac{1}{2}", True),
    ("\\boxed{8+4i}", "8+4i", True),
    ("\\boxed{(1,2)}", "(1, 2)", True),
    ("\\boxed{x^2}", "x^{2}", True),
    ("\\boxed{3} first, then \\boxed{4}", "3", False),  # the last box counts
    ("the answer is 3", "3", False),                    # no box: wrong
    ("\\boxed{}", "3", False),
    ("\\boxed{\\text{(C)}}", "\\text{(C)}", True),
])
def test_math_correct(completion, reference, ok):
    assert math_correct(completion, reference) is ok


def test_trl_reward_function_takes_text_or_messages():
    reward = correctness_reward("gsm8k")
    texts = ["#### 4", "#### 5"]
    assert reward(completions=texts, answer=["4", "4"], prompts=["a", "b"]) == [1.0, 0.0]
    chats = [[{"role": "assistant", "content": t}] for t in texts]
    assert reward(completions=chats, answer=["5", "5"]) == [0.0, 1.0]
