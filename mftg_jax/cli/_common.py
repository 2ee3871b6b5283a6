"""Arguments shared by the sub-commands: the game from a TOML file or a preset scenario."""

import argparse
import json
import math

import numpy as np

from ..price import load_game, PriceGame
from ..slides import scenario_game
from . import UsageError


def add_game_arguments(parser: argparse.ArgumentParser) -> None:
    """`CONFIG.toml` (positional, optional) or `--scenario N`, exactly one of them."""
    parser.add_argument("config", nargs="?", metavar="CONFIG.toml", help="game configuration")
    parser.add_argument(
        "--scenario", type=int, metavar="N", help="a preset scenario of the slides instead"
    )


def game_from_args(args: argparse.Namespace) -> PriceGame:
    if (args.config is None) == (args.scenario is None):
        raise UsageError("give exactly one of CONFIG.toml or --scenario N")
    if args.config is not None:
        return load_game(args.config)
    if args.scenario == 1:
        raise UsageError(
            "scenario 1 is the uncontrolled price, not a price game; run `mftg scenario 1`"
        )
    if args.scenario not in (2, 3):
        raise UsageError(f"--scenario must be 1, 2 or 3, got {args.scenario}")
    return scenario_game(args.scenario)


def to_jsonable(x):
    """Arrays to (nested) lists of floats; non-finite floats to None."""
    if isinstance(x, dict):
        return {k: to_jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [to_jsonable(v) for v in x]
    if isinstance(x, str | bool | int) or x is None:
        return x
    a = np.asarray(x)
    if a.dtype.kind in "iub":
        return a.tolist()
    a = a.astype(np.float64)
    if a.ndim == 0:
        v = float(a)
        return v if math.isfinite(v) else None
    return [to_jsonable(v) for v in a]


def print_json(obj: dict) -> None:
    print(json.dumps(to_jsonable(obj)))
