"""Chapter 5's generated word problems: exact formats, disjoint splits, seeded draws."""

import random

import pytest

from rlntp.data.math_text import is_long
from rlntp.data.word_problems import SPLITS, Chain, draw_chain, problems, render
from rlntp.llm.rewards import CORRECT


def test_the_docstring_example_exactly():
    chain = Chain(7, (("add", 5), ("sub", 3), ("mul", 3)))
    assert chain.values() == [7, 12, 9, 27]
    assert chain.long() == "7 + 5 = 12. 12 - 3 = 9. 9 * 3 = 27. #### 27"

    class First(random.Random):  # every draw takes the first phrasing: the docstring's wording
        def choice(self, seq):
            return seq[0]

    assert render(chain, First()) == ("Mia has 7 shells. She finds 5 more. Then she gives away 3. "
                                      "After that the number of shells triples. How many shells "
                                      "does Mia have now?")
    texts = {render(chain, random.Random(seed)) for seed in range(50)}
    assert len(texts) > 40  # varied English for the same arithmetic


@pytest.mark.parametrize("steps", [1, 3, 5])
def test_formats_and_ranges(steps):
    for p in problems("sft", 50, seed=3, steps=steps):
        answer = int(p.answer)
        assert p.short == f"#### {answer}" and p.long.endswith(f". #### {answer}")
        clauses = p.long.split(". ")[:-1]
        assert len(clauses) == steps
        values = []
        for clause in clauses:  # "a op n = b", each b the next a
            a, op, n, eq, b = clause.rstrip(".").split()
            assert eq == "=" and op in "+-*" and int(b) == eval(f"{a} {op} {n}")  # noqa: S307
            assert not values or values[-1] == int(a)
            values += [int(a), int(b)]
        assert values[-1] == answer and all(1 <= v <= 99 for v in values)
        assert p.question.endswith("?") and str(values[0]) in p.question
        assert is_long(p.long, "words") and not is_long(p.short, "words")
        assert CORRECT["words"](p.long, p.answer) and CORRECT["words"](p.short, p.answer)
        assert not CORRECT["words"](f"#### {answer + 1}", p.answer)


def test_splits_are_disjoint_by_arithmetic_and_seeded():
    assert sorted(b for r in SPLITS.values() for b in r) == list(range(100))
    rng = random.Random(0)
    for _ in range(200):  # a chain's split depends on its arithmetic only
        c = draw_chain(rng, 3, 99, 20)
        assert c.split == Chain(c.start, c.ops).split
    keys = {}
    for split in SPLITS:
        for seed in (0, 1):
            drawn = problems(split, 200, seed=seed, steps=3)
            assert len({p.long for p in drawn}) == 200  # distinct chains
            keys.setdefault(split, set()).update(p.long for p in drawn)
    for a in SPLITS:
        for b in SPLITS:
            if a < b:
                assert not keys[a] & keys[b], (a, b)
    assert problems("test", 5, 0, 3) == problems("test", 5, 0, 3)
    assert problems("test", 5, 0, 3) != problems("test", 5, 1, 3)
    with pytest.raises(ValueError, match="split"):
        problems("train", 1, 0, 3)
