"""The CPU's matrix-multiply peak per precision (the physical reference), and the FLOP counts of our GPT
(:mod:`rlntp.flops`, re-exported here for the benchmarks)."""

from __future__ import annotations

import time

import torch

from rlntp.flops import (  # noqa: F401 - the benchmarks import them from here
    EMBEDDINGS,
    FLOP_FORMULA,
    ForwardShapes,
    mean_step_flops,
    nonembedding_params,
    rl_iter_flops_full_width,
    train_flops,
)


def gemm_gflops(threads: int, n: int, min_s: float = 0.5, dtype: torch.dtype = torch.float32) -> float:
    """GFLOP/s of ``n x n @ n x n`` (2 n^3 FLOPs) in ``dtype`` on ``threads`` torch threads: the
    best of repeated timings over about ``min_s`` seconds. The thread count is restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        out = torch.empty(n, n, dtype=dtype)
        torch.mm(a, b, out=out)  # warm-up
        best, start = float("inf"), time.perf_counter()
        while time.perf_counter() - start < min_s:
            t0 = time.perf_counter()
            torch.mm(a, b, out=out)
            best = min(best, time.perf_counter() - t0)
        return 2 * n**3 / best / 1e9
    finally:
        torch.set_num_threads(before)


def gemm_peak_gflops(threads: int, sizes: tuple[int, ...] = (512, 1024, 2048), min_s: float = 0.5,
                     dtype: torch.dtype = torch.float32) -> tuple[float, dict[int, float]]:
    """The best matmul GFLOP/s in ``dtype`` over square ``sizes`` (and each size's) on ``threads``."""
    per_size = {n: round(gemm_gflops(threads, n, min_s, dtype), 1) for n in sizes}
    return max(per_size.values()), per_size
