from rlntp.parallel import run_jobs


def _square_plus(a: int, b: int) -> int:
    return a * a + b


def test_two_workers_give_the_same_results_in_order():
    jobs = [(i, 1) for i in range(5)]
    assert run_jobs(_square_plus, jobs, workers=2) == run_jobs(_square_plus, jobs, workers=1)
    assert run_jobs(_square_plus, jobs, workers=2) == [1, 2, 5, 10, 17]
