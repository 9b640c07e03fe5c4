"""Look at examples: ``python -m rlntp.data parity --d 6 --p-cot 0.5 --n 8 --seed 0``."""

from __future__ import annotations

import argparse

import torch

from rlntp.config import seed_arg
from rlntp.data.parity import ParityTask


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m rlntp.data", description=__doc__)
    sub = ap.add_subparsers(dest="dataset", required=True)
    par = sub.add_parser("parity", help="the parity mixture D(p_cot), one example per line")
    par.add_argument("--d", type=int, default=6, help="number of input bits (>= 2)")
    par.add_argument("--p-cot", type=float, default=0.5, help="fraction of long demonstrations")
    par.add_argument("--n", type=int, default=8, help="number of examples")
    par.add_argument("--seed", type=seed_arg, default=0)
    par.add_argument("--chain-step", type=int, default=1, help="leap-k chain: every k-th parity")
    mult = sub.add_parser("mult", help="n x n digit multiplication (Deng et al. format), one per line")
    mult.add_argument("--digits", type=int, default=4, help="digits per operand (1..9)")
    mult.add_argument("--p-cot", type=float, default=0.5, help="fraction of long demonstrations")
    mult.add_argument("--n", type=int, default=8, help="number of examples")
    mult.add_argument("--seed", type=seed_arg, default=0)
    args = ap.parse_args(argv)
    if args.dataset == "mult":
        _print_mult(ap, args)
        return
    try:
        task = ParityTask(args.d, args.p_cot, args.chain_step)
    except ValueError as e:
        ap.error(str(e))
    if args.n < 1:
        ap.error(f"--n {args.n}: need at least 1 example")
    batch = task.sample_batch(args.n, torch.Generator().manual_seed(args.seed))
    for row in batch.tokens:
        print(task.format(row))


def _print_mult(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    from rlntp.data.multiplication import MultiplicationTask

    try:
        task = MultiplicationTask(args.digits, args.p_cot)
    except ValueError as e:  # "p_cot=2.0: need ..." -> "--p-cot 2.0: need ..."
        name, _, rest = str(e).partition("=")
        ap.error(f"--{name.replace('_', '-')} {rest}")
    if args.n < 1:
        ap.error(f"--n {args.n}: need at least 1 example")
    for row in task.sample_batch(args.n, torch.Generator().manual_seed(args.seed)).tokens:
        print(task.format(row))


if __name__ == "__main__":
    main()
