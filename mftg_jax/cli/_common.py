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
        try:
            return load_game(args.config)
        except OSError as e:
            # What the reader does not name itself (a path through a file, a name too long).
            raise UsageError(f"{args.config}: cannot be read ({e.strerror or e})") from None
    if args.scenario == 1:
        raise UsageError(
            "scenario 1 is the uncontrolled price, not a price game; run `mftg scenario 1`"
        )
    if args.scenario not in (2, 3):
        raise UsageError(f"--scenario must be 1, 2 or 3, got {args.scenario}")
    # The slides' presets load their figure code (matplotlib): only when a preset is asked for.
    from ..slides import scenario_game

    return scenario_game(args.scenario)


def quantile_levels(text: str) -> tuple[float, ...]:
    """An argparse type: comma-separated quantile levels in (0, 1), strictly increasing."""
    parts = [x.strip() for x in text.split(",")]
    try:
        if not parts or any(len(x) > 40 for x in parts):
            raise ValueError
        levels = tuple(float(x) for x in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be comma-separated numbers in (0, 1), e.g. 0.05,0.5,0.95, got {text[:40]!r}"
        ) from None
    bad = [v for v in levels if not 0 < v < 1]
    if bad:
        raise argparse.ArgumentTypeError(f"must be levels in (0, 1), got {bad[0]:g}")
    if any(b <= a for a, b in zip(levels, levels[1:])):
        raise argparse.ArgumentTypeError(f"must be strictly increasing, got {text.strip()}")
    return levels


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
