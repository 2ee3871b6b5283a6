"""Arguments and outputs shared by the sub-commands: the game from a TOML file or a preset
scenario, JSON without non-finite numbers, and output folders written all or nothing."""

import argparse
from collections.abc import Iterator
import contextlib
import json
import os
import shutil
import tempfile

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


def to_jsonable(x, where: str = "result"):
    """Arrays to (nested) lists of floats; `None` stays `null` (a value that does not apply).

    **Raises:** `ValueError` naming the quantity (`where`, then its keys and indices) when a
    number is NaN or infinite: a non-finite result is an error, never a `null`.
    """
    if isinstance(x, dict):
        return {k: to_jsonable(v, f"{where}.{k}" if where else str(k)) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [to_jsonable(v, f"{where}[{i}]") for i, v in enumerate(x)]
    if isinstance(x, str | bool | int) or x is None:
        return x
    a = np.asarray(x)
    if a.dtype.kind in "iub":
        return a.tolist()
    if a.dtype.kind not in "fc":
        return str(x)
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        bad = np.argwhere(~np.isfinite(a))[0] if a.ndim else ()
        at = "".join(f"[{int(i)}]" for i in bad)
        v = a[tuple(bad)]
        raise ValueError(f"the result {where}{at} is not finite ({v}); no output written")
    return a.tolist()


def print_json(obj: dict) -> None:
    """Print `obj` as one JSON object (`ValueError` naming a non-finite quantity)."""
    print(json.dumps(to_jsonable(obj, "")))


def check_finite(obj: dict) -> None:
    """`ValueError` naming the first non-finite quantity of a report (before any output)."""
    to_jsonable(obj, "")


@contextlib.contextmanager
def output_folder(out: str) -> Iterator[str]:
    """Write an output folder all or nothing: files go to a temporary sibling folder, moved
    into `out` when the block succeeds and removed when it fails."""
    out = os.path.abspath(out)
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.partial-", dir=parent)
    try:
        yield tmp
        os.makedirs(out, exist_ok=True)
        for name in os.listdir(tmp):
            os.replace(os.path.join(tmp, name), os.path.join(out, name))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
