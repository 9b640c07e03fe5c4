from rlntp.parallel import run_jobs


def _square_plus(a: int, b: int) -> int:
    return a * a + b


def test_two_workers_give_the_same_results_in_order():
    jobs = [(i, 1) for i in range(5)]
    assert run_jobs(_square_plus, jobs, workers=2) == run_jobs(_square_plus, jobs, workers=1)
    assert run_jobs(_square_plus, jobs, workers=2) == [1, 2, 5, 10, 17]


def _pid(_: int) -> int:
    import os
    import time

    time.sleep(0.5)  # long enough that no process takes a second job while another is free
    return os.getpid()


def test_three_jobs_on_two_workers_run_at_once_and_five_in_two_processes():
    assert len(set(run_jobs(_pid, [(i,) for i in range(3)], workers=2))) == 3
    assert len(set(run_jobs(_pid, [(i,) for i in range(5)], workers=2))) == 2
