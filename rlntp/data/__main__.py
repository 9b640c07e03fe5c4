"""Look at examples: ``python -m rlntp.data parity --d 6 --p-cot 0.5 --n 8 --seed 0 [--split test]``.

One subcommand per task of :data:`rlntp.data.TASKS`, one example per line.
"""

from __future__ import annotations

import argparse

import torch

from rlntp.data import TASKS
from rlntp.params import seed_arg
from rlntp.task import SPLITS


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m rlntp.data", description=__doc__)
    sub = ap.add_subparsers(dest="dataset", required=True)
    for name, entry in TASKS.items():
        cmd = sub.add_parser(name, help=entry.help)
        for param_name, p in entry.params.items():
            cmd.add_argument(_flag(param_name), type=p.type, default=p.default, help=p.help)
        cmd.add_argument("--n", type=int, default=8, help="number of examples")
        cmd.add_argument("--seed", type=seed_arg, default=0)
        cmd.add_argument("--split", choices=SPLITS, default="train",
                         help="the prompts training draws from, or the held-out test prompts")
    args = ap.parse_args(argv)
    entry = TASKS[args.dataset]
    try:
        task = entry.build(**{name: getattr(args, name) for name in entry.params})
    except ValueError as e:  # "p_cot=2.0: need ..." -> "--p-cot 2.0: need ..."
        name, _, rest = str(e).partition("=")
        ap.error(f"{_flag(name)} {rest}" if name in entry.params else str(e))
    if args.n < 1:
        ap.error(f"--n {args.n}: need at least 1 example")
    for row in task.sample_batch(args.n, torch.Generator().manual_seed(args.seed), split=args.split).tokens:
        print(task.format(row))


if __name__ == "__main__":
    main()
