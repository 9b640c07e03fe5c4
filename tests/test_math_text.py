"""GSM8K / MATH mixtures: loading, long and short demonstrations, the seeded long choice."""

import pytest

from rlntp.data.math_text import (
    DATASETS,
    choose_long,
    data_hash,
    data_root,
    format_prompt,
    is_long,
    last_boxed,
    load_problems,
    sft_records,
)


def test_gsm8k_long_and_short_forms():
    problems = load_problems("gsm8k", "train", sample=True)
    assert len(problems) == 64
    p = problems[0]
    assert p.short == f"#### {p.answer}" and p.answer.isdigit()
    assert "<<" not in p.long and f"= {p.answer} apples" in p.long  # the calculator notes dropped
    assert all(q.long.endswith(f"#### {q.answer}") for q in problems)


def test_math_long_keeps_the_box_and_short_is_the_box():
    problems = load_problems("math", "test", sample=True)
    assert len(problems) == 32
    for p in problems:
        assert last_boxed(p.long) == p.answer
        assert p.short == f"\\boxed{{{p.answer}}}" and last_boxed(p.short) == p.answer


def test_subsets_are_seeded_and_sizes_checked():
    a = load_problems("gsm8k", "test", n=8, seed=1, sample=True)
    assert a == load_problems("gsm8k", "test", n=8, seed=1, sample=True)
    assert a != load_problems("gsm8k", "test", n=8, seed=2, sample=True)
    with pytest.raises(ValueError, match="test_size=33"):
        load_problems("gsm8k", "test", n=33, sample=True)
    with pytest.raises(ValueError, match="dataset='svamp'"):
        load_problems("svamp", "test")


def test_data_dir_is_checked(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="data_dir"):
        data_root(tmp_path / "nowhere")
    monkeypatch.setenv("RLNTP_DATA_DIR", str(tmp_path))
    assert data_root() == tmp_path
    with pytest.raises(FileNotFoundError, match="data_dir"):
        load_problems("gsm8k", "train")  # the folder exists but holds no gsm8k/


def test_choose_long_is_exact_and_seeded():
    long = choose_long(100, 0.05, seed=3)
    assert sum(long) == 5 and long == choose_long(100, 0.05, seed=3)
    assert long != choose_long(100, 0.05, seed=4)
    assert sum(choose_long(10, 0.0, 0)) == 0 and all(choose_long(10, 1.0, 0))
    with pytest.raises(ValueError, match="p_cot"):
        choose_long(10, 1.5, 0)


def test_sft_records_follow_the_choice():
    problems = load_problems("gsm8k", "train", n=4, sample=True)
    records = sft_records(problems, [True, False, False, True], "gsm8k")
    assert [r["completion"] == p.long for r, p in zip(records, problems, strict=True)] == [
        True, False, False, True]
    assert records[1]["completion"] == problems[1].short
    assert records[0]["prompt"].startswith("Question: ") and "####" in records[0]["prompt"]


@pytest.mark.parametrize("text,box", [
    ("so $x = \\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
    ("\\boxed{1} and then \\boxed{2}", "2"),
    ("\\fbox{7}", "7"),
    ("\\boxed{\\text{(A)}", None),  # unbalanced
    ("no box at all", None),
])
def test_last_boxed(text, box):
    assert last_boxed(text) == box


@pytest.mark.parametrize("response,dataset,long", [
    ("#### 72", "gsm8k", False),
    ("  ####72", "gsm8k", False),
    ("48/2 = 24\n#### 72", "gsm8k", True),
    ("I think it is seventy-two", "gsm8k", True),
    ("$\\boxed{8+4i}$", "math", False),
    ("\\boxed{\\frac{1}{2}}", "math", False),
    ("We add: $2+2 = \\boxed{4}$", "math", True),
    ("", "math", False),
])
def test_is_long(response, dataset, long):
    assert is_long(response, dataset) == long


def test_prompt_without_chat_template_is_plain():
    text = format_prompt("What is 2+2?", "math")
    assert text.startswith("Question: What is 2+2?") and text.endswith("Answer: ")
    assert "\\boxed{}" in text


def test_data_hash_of_several_datasets_covers_each(tmp_path):
    for d in DATASETS:
        (tmp_path / d).mkdir()
        for split in ("train", "test"):
            (tmp_path / d / f"{split}.jsonl").write_text(f"{d} {split}\n")
    both = data_hash("gsm8k+math", tmp_path)
    assert both not in (data_hash("gsm8k", tmp_path), data_hash("math", tmp_path))
    (tmp_path / "math" / "test.jsonl").write_text("changed\n")
    assert data_hash("gsm8k+math", tmp_path) != both
