"""The `mftg` command line: one module per sub-command, each with `register(subparsers)`."""

import argparse
import importlib
import sys

# Sub-command modules of this package, in the order `mftg --help` lists them.
_COMMANDS = (
    "solve",
    "simulate",
    "scenario",
    "calibrate",
    "certify",
    "solve_general",
    "regulate",
    "dispatch",
    "mining",
    "auction",
    "insurance",
)


class UsageError(Exception):
    """A bad config or argument: printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mftg",
        description="Mean-field-type games of electricity markets: solve, simulate, calibrate.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    import jax

    # Equilibria are certified to 1e-6 and better: the command line works in float64
    # (simulations still choose their own dtype).
    jax.config.update("jax_enable_x64", True)
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UsageError, ValueError, OSError) as e:
        print(f"mftg {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mftg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
