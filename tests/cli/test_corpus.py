"""A corpus of malformed and odd inputs for every command: each is rejected with exit status 2
and one line naming the field, flag, file or quantity (before any program is compiled), or,
when odd but valid, succeeds with finite output.

Each case: `(id, argv, files, expect)`. `files` maps a name to its text (or bytes) or to
`(example, old, new)`: an example config with one substitution; `{name}` in `argv` is that
file's path, `{tmp}` the test's folder. `expect` is the text the error line must contain, or
`OK` for a success (JSON on stdout, every number finite).
"""

import json
import math
from pathlib import Path

import jax
import pytest

from mftg_jax.cli import main

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "examples"
OK = None
PG = "price_game.toml"
BIG = "9" * 400


def hourly(n, price=lambda i: 40.0 + 10.0 * math.sin(i / 3.0) + (i * 7919 % 13), step_h=1):
    """A generic `timestamp,price` CSV of `n` rows from 2020-01-06 00:00."""
    import datetime as dt

    t0 = dt.datetime(2020, 1, 6)
    rows = [
        f"{(t0 + dt.timedelta(hours=step_h * i)):%Y-%m-%d %H:%M},{price(i):.4f}" for i in range(n)
    ]
    return "timestamp,price\n" + "\n".join(rows) + "\n"


GOOD = hourly(600)


def _one_bidder():
    """The auction example cut after its first bidder (K = 1)."""
    text = (EX / "auction.toml").read_text()
    head, _, rest = text.partition("[[bidders]]")
    first, _, _ = rest.partition("[[bidders]]")
    tail = rest[rest.index("[solver]") :]
    return head + "[[bidders]]" + first + tail


LINES = GOOD.splitlines()


def edit_line(k, new):
    """GOOD with data line `k` (1-based, after the header) replaced."""
    out = list(LINES)
    out[k] = new
    return "\n".join(out) + "\n"


def pg(old, new):
    return (PG, old, new)


def flags(cmd, base, flag, bad):
    """Reject cases of one flag: (value, expected text) pairs."""
    return [
        (f"{cmd}-{flag.strip('-')}-{i}", [cmd, *base, flag, v], {}, want or flag)
        for i, (v, want) in enumerate(bad)
    ]


INT_BAD = [("0", None), ("-1", None), ("1e9", None), ("abc", None), (BIG, None), ("1.5", None)]
FLOAT_BAD = [("nan", None), ("inf", None), ("-inf", None), ("abc", None), ("1e400", None)]

CASES = [
    # ---- arguments: every numeric flag of every command, out of range or not a number.
    *flags("simulate", ["--scenario", "3"], "--paths", INT_BAD),
    *flags("simulate", ["--scenario", "3"], "--steps", INT_BAD + [("100000000", None)]),
    *flags("simulate", ["--scenario", "3"], "--common", INT_BAD[:4]),
    *flags("simulate", ["--scenario", "3"], "--batch", INT_BAD[:4]),
    *flags("simulate", ["--scenario", "3"], "--seed", [("-1", None), (BIG, None), ("2e64", None)]),
    ("simulate-dtype", ["simulate", "--scenario", "3", "--dtype", "float16"], {}, "--dtype"),
    ("simulate-scheme", ["simulate", "--scenario", "3", "--scheme", "rk4"], {}, "--scheme"),
    ("simulate-both", ["simulate", "--scenario", "3", "{g}"], {"g": pg("", "")}, "exactly one"),
    ("simulate-none", ["simulate"], {}, "exactly one"),
    ("simulate-scn7", ["simulate", "--scenario", "7"], {}, "--scenario must be"),
    ("simulate-scn1", ["simulate", "--scenario", "1"], {}, "uncontrolled price"),
    (
        "simulate-mult",
        ["simulate", "--scenario", "3", "--paths", "10", "--common", "3"],
        {},
        "multiple of --common",
    ),
    (
        "simulate-batch-div",
        ["simulate", "--scenario", "3", "--paths", "10", "--batch", "3"],
        {},
        "--batch must divide",
    ),
    (
        "simulate-f32-fine",
        ["simulate", "--scenario", "3", "--steps", "1000000"],
        {},
        "too fine for float32",
    ),
    (
        "simulate-memory",
        [
            "simulate",
            "--scenario",
            "3",
            "--dtype",
            "float64",
            "--steps",
            "10000000",
            "--paths",
            "1000000",
            "--common",
            "1000000",
        ],
        {},
        "of memory",
    ),
    (
        "simulate-memory-batch",
        ["simulate", "--scenario", "3", "--paths", "1000000000", "--batch", "1000000000"],
        {},
        "of memory",
    ),
    *flags(
        "simulate",
        ["--scenario", "3"],
        "--quantiles",
        [("0.5,0.2", "strictly increasing"), ("1.5", "(0, 1)"), ("0,0.5", "(0, 1)"), ("a,b", None)],
    ),
    *flags("simulate", ["--scenario", "3"], "--save-times", [("1", None), ("abc", None)]),
    (
        "simulate-save-times-grid",
        ["simulate", "--scenario", "3", "--steps", "10", "--save-times", "12"],
        {},
        "--save-times must be at most --steps + 1 = 11",
    ),
    ("simulate-save-ext", ["simulate", "--scenario", "3", "--save", "{tmp}/q.txt"], {}, ".parquet"),
    (
        "simulate-save-folder",
        ["simulate", "--scenario", "3", "--save", "{tmp}/none/q.csv"],
        {},
        "does not exist",
    ),
    *flags("certify", ["--scenario", "3"], "--scenarios", INT_BAD[:5] + [("1", None)]),
    *flags("certify", ["--scenario", "3"], "--paths", INT_BAD[:5] + [("1", None)]),
    *flags("certify", ["--scenario", "3"], "--steps", INT_BAD[:5] + [("1", None)]),
    *flags("certify", ["--scenario", "3"], "--seed", [("-5", None), (BIG, None)]),
    (
        "certify-memory",
        ["certify", "--scenario", "3", "--scenarios", "1000000", "--paths", "1000000"],
        {},
        "of memory",
    ),
    *flags("scenario", ["3"], "--paths", INT_BAD[1:5] + [("1", None)]),
    *flags("scenario", ["3"], "--batch", INT_BAD[:4]),
    *flags("scenario", ["3"], "--seed", [("-1", None)]),
    *flags("scenario", ["1"], "--speeds", FLOAT_BAD + [("0", None), ("-3", None)]),
    ("scenario-4", ["scenario", "4"], {}, "scenario must be 1, 2 or 3"),
    ("scenario-x", ["scenario", "x"], {}, "invalid int"),
    *flags("regulate", ["{c}"], "--paths", INT_BAD[:4]),
    *flags("regulate", ["{c}"], "--steps", INT_BAD[:4]),
    (
        "regulate-until-no-prices",
        ["regulate", "{c}", "--until", "2020-01-01"],
        {},
        "--until needs --prices",
    ),
    ("regulate-both", ["regulate", "{c}", "--prices", "{d}"], {"d": GOOD}, "not both"),
    ("regulate-none", ["regulate"], {}, "give CONFIG.toml"),
    (
        "regulate-needs-until",
        ["regulate", "--prices", "{d}", "--horizon", "24"],
        {"d": GOOD},
        "--prices needs --until",
    ),
    (
        "regulate-until-bad",
        ["regulate", "--prices", "{d}", "--until", "2020-02-30", "--horizon", "24"],
        {"d": GOOD},
        "--until",
    ),
    (
        "regulate-horizon-0",
        ["regulate", "--prices", "{d}", "--until", "2020-01-10", "--horizon", "0"],
        {"d": GOOD},
        "--horizon",
    ),
    (
        "regulate-q-nan",
        ["regulate", "--prices", "{d}", "--until", "2020-01-10", "--horizon", "24", "--q", "nan"],
        {"d": GOOD},
        "--q",
    ),
    (
        "regulate-r-0",
        ["regulate", "--prices", "{d}", "--until", "2020-01-10", "--horizon", "24", "--r", "0"],
        {"d": GOOD},
        "--r",
    ),
    (
        "regulate-bandq",
        [
            "regulate",
            "--prices",
            "{d}",
            "--until",
            "2020-01-10",
            "--horizon",
            "24",
            "--band-quantiles",
            "0.9",
            "0.1",
        ],
        {"d": GOOD},
        "--band-quantiles",
    ),
    (
        "regulate-fitdays",
        [
            "regulate",
            "--prices",
            "{d}",
            "--until",
            "2020-01-10",
            "--horizon",
            "24",
            "--fit-days",
            "inf",
        ],
        {"d": GOOD},
        "--fit-days",
    ),
    (
        "regulate-steps-prices",
        [
            "regulate",
            "--prices",
            "{d}",
            "--until",
            "2020-01-10",
            "--horizon",
            "24",
            "--steps",
            "10",
        ],
        {"d": GOOD},
        "--steps does not apply",
    ),
    (
        "regulate-daily",
        ["regulate", "--prices", "{d}", "--until", "2020-03-01", "--horizon", "24"],
        {"d": hourly(400, step_h=24)},
        "hourly",
    ),
    *flags("dispatch", ["{c}"], "--paths", INT_BAD[:4] + [("1", None)]),
    *flags("insurance", ["{c}"], "--paths", INT_BAD[:4] + [("1", None)]),
    *flags("insurance", ["{c}"], "--steps", INT_BAD[:4]),
    *flags("insurance", ["{c}"], "--opt-steps", INT_BAD[:3]),
    ("insurance-odd-paths", ["insurance", "{c}", "--paths", "101"], {}, "--paths"),
    ("nocommand", [], {}, "COMMAND"),
    ("unknown-command", ["frobnicate"], {}, "invalid choice"),
    ("unknown-flag", ["solve", "--scenario", "2", "--frob"], {}, "unrecognized arguments"),
    # ---- configs: files that are not TOML, not UTF-8, empty, missing; bad values.
    *[
        (f"{cmd}-{kind}", [cmd, "{g}"], {"g": text}, want)
        for cmd in (
            "solve",
            "simulate",
            "certify",
            "solve-general",
            "regulate",
            "dispatch",
            "mining",
            "insurance",
        )
        for kind, text, want in (
            ("not-toml", "t0 = = 1\n", "TOML"),
            ("not-utf8", b"t0 = 0.0\n# \xff\xfe caf\xe9\n", "UTF-8"),
            ("binary", bytes(range(256)), "UTF-8"),
        )
    ],
    *[
        (f"{cmd}-missing", [cmd, "{tmp}/nope.toml"], {}, "nope.toml")
        for cmd in (
            "solve",
            "certify",
            "solve-general",
            "regulate",
            "dispatch",
            "mining",
            "insurance",
        )
    ],
    ("solve-dir", ["solve", "{tmp}"], {}, "is a directory"),
    ("simulate-dir", ["simulate", "{tmp}"], {}, "is a directory"),
    ("certify-dir", ["certify", "{tmp}"], {}, "is a directory"),
    ("simulate-not-dir", ["simulate", "{g}/x.toml"], {"g": pg("", "")}, "cannot be read"),
    (
        "simulate-terminal",
        ["simulate", "{g}"],
        {"g": pg("[market]", '[market]\nterminal = "final"')},
        "market.terminal must be one of",
    ),
    ("solve-unknown-key", ["solve", "{g}"], {"g": pg("[market]", "[market]\nzeta = 1.0")}, "zeta"),
    ("solve-eta-neg", ["solve", "{g}"], {"g": pg("eta = 0.5", "eta = -0.5")}, "eta"),
    ("solve-eta-str", ["solve", "{g}"], {"g": pg("eta = 0.5", 'eta = "0.5"')}, "eta"),
    ("solve-eta-bool", ["solve", "{g}"], {"g": pg("eta = 0.5", "eta = true")}, "eta"),
    ("solve-eta-nan", ["solve", "{g}"], {"g": pg("eta = 0.5", "eta = nan")}, "eta"),
    ("solve-eta-inf", ["solve", "{g}"], {"g": pg("eta = 0.5", "eta = inf")}, "eta"),
    ("solve-eta-big-int", ["solve", "{g}"], {"g": pg("eta = 0.5", f"eta = {BIG}")}, "too large"),
    ("solve-c-short", ["solve", "{g}"], {"g": pg("c = [1.0, 5.0, 10.0]", "c = [1.0, 5.0]")}, "c"),
    (
        "solve-c-str",
        ["solve", "{g}"],
        {"g": pg("c = [1.0, 5.0, 10.0]", 'c = ["a", 5.0, 1.0]')},
        "c",
    ),
    (
        "solve-r-zero",
        ["solve", "{g}"],
        {"g": pg("r = [1.0, 2.0, 3.0]", "r = [0.0, 2.0, 3.0]")},
        "r",
    ),
    (
        "solve-lam-neg",
        ["solve", "{g}"],
        {"g": pg("lam = [0.1, 0.1, 0.1]", "lam = [-0.1, 0.1, 0.1]")},
        "lam",
    ),
    ("solve-t1-before", ["solve", "{g}"], {"g": pg("t1 = 1.5", "t1 = -1.0")}, "t1"),
    ("solve-no-market", ["solve", "{g}"], {"g": pg("[market]", "[markets]")}, "market"),
    ("solve-sigma-neg", ["solve", "{g}"], {"g": pg("sigma = 1.0", "sigma = -1.0")}, "sigma"),
    (
        "solve-jump-dist",
        ["solve", "{g}"],
        {"g": pg('dist = "normal", mean = 0.0, std = 0.5', 'dist = "cauchy"')},
        "dist",
    ),
    ("solve-jump-std", ["solve", "{g}"], {"g": pg("std = 0.5", "std = -0.5")}, "std"),
    (
        "solve-intensity",
        ["solve", "{g}"],
        {"g": pg("intensity = 2.0", "intensity = -2.0")},
        "intensity",
    ),
    ("solve-market-array", ["solve", "{g}"], {"g": pg("q = 1.0", "q = [1.0]")}, "q"),
    ("solve-empty", ["solve", "{g}"], {"g": ""}, "missing"),
    (
        "sg-players-0",
        ["solve-general", "{g}"],
        {"g": ("two_regime_control_noise.toml", "players = 3", "players = 0")},
        "players",
    ),
    (
        "sg-unknown",
        ["solve-general", "{g}"],
        {"g": ("two_regime_control_noise.toml", "marks = 1\n", "marks = 1\nbogus = 2\n")},
        "bogus",
    ),
    (
        "sg-r-neg",
        ["solve-general", "{g}"],
        {"g": ("two_regime_control_noise.toml", "r = [1.0, 1.5, 2.0]", "r = [-1.0, 1.5, 2.0]")},
        "r",
    ),
    (
        "sg-generator",
        ["solve-general", "{g}"],
        {
            "g": (
                "two_regime_control_noise.toml",
                "[[-0.5, 0.5], [2.0, -2.0]]",
                "[[-0.5, 0.7], [2.0, -2.0]]",
            )
        },
        "generator",
    ),
    (
        "sg-regimes",
        ["solve-general", "{g}"],
        {"g": ("two_regime_control_noise.toml", "regimes = 2", "regimes = 3")},
        "regime",
    ),
    (
        "dispatch-capacity",
        ["dispatch", "{g}"],
        {"g": ("dispatch.toml", "capacity = [40.0,", "capacity = [-40.0,")},
        "capacity",
    ),
    (
        "dispatch-unknown",
        ["dispatch", "{g}"],
        {"g": ("dispatch.toml", "[fleet]", "[fleet]\nbogus = 1")},
        "bogus",
    ),
    (
        "dispatch-owner",
        ["dispatch", "{g}"],
        {"g": ("dispatch.toml", "owner = [0, 0, 1, 1, 2]", "owner = [0, 0, 1]")},
        "owner",
    ),
    (
        "mining-depth",
        ["mining", "{g}"],
        {"g": ("mining.toml", "depth = 6 ", "depth = 0 ")},
        "depth",
    ),
    (
        "mining-unknown",
        ["mining", "{g}"],
        {"g": ("mining.toml", "[game]", "[game]\nbogus = 1")},
        "bogus",
    ),
    ("mining-rate", ["mining", "{g}"], {"g": ("mining.toml", "rate = 6.0", "rate = -6.0")}, "rate"),
    (
        "insurance-loading",
        ["insurance", "{g}"],
        {"g": ("insurance.toml", "loading = [0.2, 0.5]", "loading = [-1.5, 0.5]")},
        "loading",
    ),
    (
        "insurance-unknown",
        ["insurance", "{g}"],
        {"g": ("insurance.toml", "[agent]", "[agent]\nspeed = 1")},
        "speed",
    ),
    (
        "insurance-odd",
        ["insurance", "{g}"],
        {"g": ("insurance.toml", "n_paths = 4000", "n_paths = 4001")},
        "n_paths",
    ),
    (
        "regulate-unknown",
        ["regulate", "{g}"],
        {"g": ("regulated_price.toml", "t1 = 2.0", "t1 = 2.0\nbogus = 1")},
        "bogus",
    ),
    # ---- data files of `mftg calibrate` (and `mftg regulate --prices`).
    ("cal-daily", ["calibrate", "{d}"], {"d": hourly(400, step_h=24)}, "hourly"),
    ("cal-constant", ["calibrate", "{d}"], {"d": hourly(600, price=lambda i: 30.0)}, "constant"),
    (
        "cal-near-constant",
        ["calibrate", "{d}"],
        {"d": hourly(600, price=lambda i: 30.0 + 1e-9 * (i % 2))},
        "constant",
    ),
    (
        "cal-two-values",
        ["calibrate", "{d}"],
        {"d": hourly(600, price=lambda i: 30.0 + 5 * (i % 2))},
        "distinct",
    ),
    ("cal-short", ["calibrate", "{d}"], {"d": hourly(10)}, "too few"),
    (
        "cal-short-harmonics",
        ["calibrate", "{d}", "--harmonics", "12"],
        {"d": hourly(200)},
        "fewer --harmonics",
    ),
    (
        "cal-long-field",
        ["calibrate", "{d}"],
        {"d": edit_line(5, "2020-01-06 04:00," + "1" * 200000)},
        "line 6",
    ),
    (
        "cal-long-field-2",
        ["calibrate", "{d}"],
        {"d": edit_line(5, "2020-01-06 04:00," + "7" * 500)},
        "characters",
    ),
    (
        "cal-open-quote",
        ["calibrate", "{d}"],
        {"d": edit_line(3, '2020-01-06 02:00,"41.0')},
        "line 4",
    ),
    ("cal-not-utf8", ["calibrate", "{d}"], {"d": GOOD.encode().replace(b"41", b"\xff1")}, "UTF-8"),
    ("cal-binary", ["calibrate", "{d}"], {"d": bytes(range(256)) * 4}, "UTF-8"),
    ("cal-empty", ["calibrate", "{d}"], {"d": ""}, "empty file"),
    ("cal-header-only", ["calibrate", "{d}"], {"d": "timestamp,price\n"}, "no data rows"),
    ("cal-one-column", ["calibrate", "{d}"], {"d": "price\n1\n2\n"}, "timestamp and a price"),
    (
        "cal-no-price",
        ["calibrate", "{d}"],
        {"d": GOOD.replace("price", "value", 1)},
        "no price column",
    ),
    (
        "cal-two-price",
        ["calibrate", "{d}"],
        {"d": "t,price_a,price_b\n2020-01-01 00:00,1,2\n"},
        "several columns",
    ),
    (
        "cal-column-flag",
        ["calibrate", "{d}", "--price-column", "Nope"],
        {"d": GOOD},
        "no column named",
    ),
    (
        "cal-non-numeric",
        ["calibrate", "{d}"],
        {"d": edit_line(7, "2020-01-06 06:00,abc")},
        "non-numeric price",
    ),
    (
        "cal-nan-price",
        ["calibrate", "{d}"],
        {"d": edit_line(7, "2020-01-06 06:00,nan")},
        "non-numeric price",
    ),
    (
        "cal-inf-price",
        ["calibrate", "{d}"],
        {"d": edit_line(7, "2020-01-06 06:00,inf")},
        "non-numeric price",
    ),
    (
        "cal-all-nan",
        ["calibrate", "{d}"],
        {"d": hourly(300, price=lambda i: math.nan)},
        "non-numeric",
    ),
    ("cal-dup", ["calibrate", "{d}"], {"d": edit_line(8, "2020-01-06 06:00,40.0")}, "duplicated"),
    ("cal-back", ["calibrate", "{d}"], {"d": edit_line(8, "2020-01-06 01:00,40.0")}, "before"),
    ("cal-gap", ["calibrate", "{d}"], {"d": GOOD.replace(LINES[8] + "\n", "")}, "missing"),
    (
        "cal-irregular",
        ["calibrate", "{d}"],
        {"d": edit_line(8, "2020-01-06 07:30,40.0")},
        "irregular",
    ),
    (
        "cal-irregular-2",
        ["calibrate", "{d}"],
        {"d": edit_line(8, "2020-01-06 07:45,40.0")},
        "irregular",
    ),
    (
        "cal-off-grid",
        ["calibrate", "{d}"],
        {"d": edit_line(8, "2020-01-06 07:30,40.0").replace(LINES[9] + "\n", "")},
        "off the 1h grid",
    ),
    (
        "cal-bad-time-first",
        ["calibrate", "{d}"],
        {"d": edit_line(1, "yesterday,40.0")},
        "cannot read timestamp",
    ),
    (
        "cal-bad-time",
        ["calibrate", "{d}"],
        {"d": edit_line(9, "2020-13-45 00:00,40.0")},
        "cannot read timestamp",
    ),
    (
        "cal-malformed",
        ["calibrate", "{d}"],
        {"d": edit_line(9, "2020-01-06 08:00,40.0,7")},
        "malformed row",
    ),
    ("cal-one-row", ["calibrate", "{d}"], {"d": hourly(1)}, "at least two"),
    ("cal-missing", ["calibrate", "{tmp}/none.csv"], {}, "none.csv"),
    ("cal-dir", ["calibrate", "{tmp}"], {}, "Is a directory"),
    (
        "cal-train-outside",
        ["calibrate", "{d}", "--train-start", "2030-01-01"],
        {"d": GOOD},
        "no observations",
    ),
    (
        "cal-test-inside",
        ["calibrate", "{d}", "--train-end", "2020-01-20", "--test-start", "2020-01-10"],
        {"d": GOOD},
        "inside the training period",
    ),
    (
        "cal-test-one",
        ["calibrate", "{d}", "--test-start", "2020-01-30 23:00"],
        {"d": GOOD},
        "test period has 1",
    ),
    (
        "cal-date-bad",
        ["calibrate", "{d}", "--train-start", "2020-13-01"],
        {"d": GOOD},
        "--train-start",
    ),
    ("cal-date-words", ["calibrate", "{d}", "--test-end", "tomorrow"], {"d": GOOD}, "--test-end"),
    *flags("calibrate", ["{d}"], "--harmonics", [("-1", None), ("99", None), ("x", None)]),
    *flags("calibrate", ["{d}"], "--starts", INT_BAD[:4]),
    *flags("calibrate", ["{d}"], "--max-iter", INT_BAD[:4]),
    *flags("calibrate", ["{d}"], "--producers", [("0", None), ("2000000000", None)]),
    *flags("calibrate", ["{d}"], "--discount", FLOAT_BAD[:3] + [("-1", None)]),
    *flags("calibrate", ["{d}"], "--cost", FLOAT_BAD[:2]),
    *flags("calibrate", ["{d}"], "--r-share", [("0", None), ("1.5", None), ("nan", None)]),
    *flags("calibrate", ["{d}"], "--horizon", [("0", None), ("1e308", None), ("inf", None)]),
    ("calibrate-jumps", ["calibrate", "{d}", "--jumps", "many"], {"d": GOOD}, "--jumps"),
    # ---- auction: configs and flags.
    *[
        (f"auction-{i}", ["auction", "{c}", "--json"], {"c": ("auction.toml", old, new)}, want)
        for i, (old, new, want) in enumerate(
            [
                ('dist = "uniform"', 'dist = "cauchy"', "dist"),
                ("lo = 0.0\nhi = 1.0", "lo = 1.5\nhi = 1.0", "lo"),
                ("std = 0.2", "std = -0.2", "std"),
                ("std = 0.2", "std = nan", "std"),
                ("mean = 0.5", 'mean = "half"', "mean"),
                ("a = 2.0", "a = 0.0", "a"),
                ("a = 2.0", f"a = {BIG}", "a"),
                ("lo = 0.1\nhi = 1.0", "lo = 0.1\nhi = 2.0", "hi"),
                ("delta = 1e-4", "delta = 2.0", "delta"),
                ("rtol = 1e-10", "rtol = -1.0", "rtol"),
                ("degree = 32", "degree = 2", "degree"),
                ("n_costs = 201", "n_costs = 0", "n_costs"),
                ("n_bids = 2001", "n_bids = 1.5", "n_bids"),
                ("n = 20000", "n = -1", "n"),
                ("seed = 0", "seed = -1", "seed"),
                ("demand = 1.0", "demand = inf", "demand"),
                ("[solver]", "[solverr]", "solverr"),
                ("delta = 1e-4", "delta = 1e-4\nspeed = 3", "speed"),
            ]
        )
    ],
    ("auction-one-bidder", ["auction", "{c}"], {"c": _one_bidder()}, "bidders"),
    ("auction-missing", ["auction", "{tmp}/none.toml"], {}, "none.toml"),
    ("auction-not-utf8", ["auction", "{c}"], {"c": b"\xff\xfe[[bidders]]\n"}, "UTF-8"),
    *flags("auction", ["{c}"], "--draws", [("1", None), ("abc", None), ("1e9", None)]),
    # ---- frequency: configs and flags.
    *[
        (f"frequency-{i}", ["frequency", "{c}", "--json"], {"c": ("frequency.toml", old, new)}, w)
        for i, (old, new, w) in enumerate(
            [
                ('case = "wscc9"', 'case = "ieee9000"', "case"),
                ('model = "nonlinear"', 'model = "quadratic"', "model"),
                ("f0 = 60.0", "f0 = -60.0", "f0"),
                ("generator_damping = 2.0", "generator_damping = -1.0", "generator_damping"),
                ("load_damping = 0.0", "load_damping = nan", "load_damping"),
                ("a = [1.0, 2.0, 4.0]", "a = [1.0, 2.0]", "a"),
                ("a = [1.0, 2.0, 4.0]", 'a = [1.0, "x", 4.0]', "a"),
                ('kind = "dai"', 'kind = "pid"', "kind"),
                ("droop = 0.2", "droop = -0.2", "droop"),
                ("time_constant = 1.0", "time_constant = 0.0", "time_constant"),
                ("revision_rate = 5.0", "revision_rate = inf", "revision_rate"),
                ('dynamics = "smith"', 'dynamics = "logit"', "dynamics"),
                ('kind = "load_step"', 'kind = "earthquake"', "kind"),
                ("bus = 5", "bus = 99", "bus"),
                ("delta = 0.5", "delta = nan", "delta"),
                ("time = 1.0", "time = -1.0", "time"),
                ("t1 = 30.0", "t1 = 0.0", "t1"),
                ("t1 = 30.0", "t1 = 1e308", "t1"),
                ("n_save = 301", "n_save = 1", "n_save"),
                ("rtol = 1e-6", "rtol = -1e-6", "rtol"),
                ("rocof_window = 0.5", "rocof_window = 0.0", "rocof_window"),
                ("settling_band = 0.01", "settling_band = -0.01", "settling_band"),
                ("n_scenarios = 0", "n_scenarios = -3", "n_scenarios"),
                ("std = 0.02", "std = -0.02", "std"),
                ("[metrics]", "[metricz]", "metricz"),
            ]
        )
    ],
    ("frequency-unknown-case", ["frequency", "ieee9000"], {}, "ieee9000"),
    ("frequency-bad-matpower", ["frequency", "{tmp}/x.m"], {}, "x.m"),
    *flags(
        "frequency",
        ["wscc9"],
        "--event",
        [("load_step:5", None), ("load_step:five:0.1", None), ("quake:1", None), ("", None)],
    ),
    *flags("frequency", ["wscc9"], "--t1", FLOAT_BAD[:4] + [("0", None), ("1e6", None)]),
    *flags("frequency", ["wscc9"], "--scenarios", [("-1", None), ("abc", None)]),
    ("frequency-controller", ["frequency", "wscc9", "--controller", "pid"], {}, "--controller"),
    # ---- odd but valid: succeed with finite output.
    (
        "ok-solve-negative-price",
        ["solve", "{g}", "--json"],
        {"g": pg("p0 = 50.0\nphat0 = 50.0", "p0 = -50.0\nphat0 = -40.0")},
        OK,
    ),
    ("ok-solve-short-horizon", ["solve", "{g}", "--json"], {"g": pg("t1 = 1.5", "t1 = 1e-6")}, OK),
    (
        "ok-solve-no-noise",
        ["solve", "{g}", "--json"],
        {"g": pg("sigma = 1.0\nsigma_o = 0.5", "sigma = 0.0\nsigma_o = 0.0")},
        OK,
    ),
    (
        "ok-solve-free-cost",
        ["solve", "{g}", "--json"],
        {"g": pg("c = [1.0, 5.0, 10.0]", "c = [0.0, 0.0, 0.0]")},
        OK,
    ),
    ("ok-scenario-1-fast", ["scenario", "1", "--json", "--speeds", "1e6"], {}, OK),
    (
        "ok-sg-example",
        ["solve-general", "{g}", "--json"],
        {"g": ("two_regime_control_noise.toml", "t1 = 1.0", "t1 = 0.01")},
        OK,
    ),
]

# The regulate and dispatch/insurance flag cases need a config: the shipped example.
DEFAULT_FILES = {
    "auction": {"c": ("auction.toml", "", "")},
    "regulate": {"c": ("regulated_price.toml", "", "")},
    "dispatch": {"c": ("dispatch.toml", "", "")},
    "insurance": {"c": ("insurance.toml", "", "")},
    "calibrate": {"d": GOOD},
}


def _write(tmp: Path, files: dict) -> dict:
    paths = {}
    for name, spec in files.items():
        if isinstance(spec, tuple):
            example, old, new = spec
            text = (EX / example).read_text()
            assert old in text, (example, old)
            spec = text.replace(old, new, 1)
            suffix = ".toml"
        else:
            suffix = ".csv" if name == "d" else ".toml"
        p = tmp / f"{name}{suffix}"
        if isinstance(spec, bytes):
            p.write_bytes(spec)
        else:
            p.write_text(spec)
        paths[name] = str(p)
    return paths


def _finite(x) -> bool:
    if isinstance(x, dict):
        return all(_finite(v) for v in x.values())
    if isinstance(x, list):
        return all(_finite(v) for v in x)
    return not isinstance(x, float) or math.isfinite(x)


class _Compiles:
    def __init__(self):
        self.seconds = 0.0
        self.longest = 0.0

    def __call__(self, event, seconds, **kw):
        if event == "/jax/core/compile/backend_compile_duration":
            self.seconds += seconds
            self.longest = max(self.longest, seconds)


# The successes that compile a solver are slow here (a compile of ~15-50 s on a busy
# machine); the rest of the corpus compiles nothing.
_SLOW = {
    "ok-solve-negative-price",
    "ok-solve-short-horizon",
    "ok-solve-no-noise",
    "ok-solve-free-cost",
    "ok-sg-example",
}
_PARAMS = [
    pytest.param(c, id=c[0], marks=[pytest.mark.slow] if c[0] in _SLOW else []) for c in CASES
]


@pytest.mark.parametrize("case", _PARAMS)
def test_corpus(case, tmp_path, capsys, monkeypatch):
    name, argv, files, expect = case
    monkeypatch.chdir(tmp_path)
    command = argv[0] if argv else ""
    files = {**DEFAULT_FILES.get(command, {}), **files}
    paths = _write(tmp_path, files) if any("{" in a for a in argv) or files else {}
    argv = [a.format(tmp=tmp_path, **paths) for a in argv]
    before = set(tmp_path.iterdir())
    compiles = _Compiles()
    jax.monitoring.register_event_duration_secs_listener(compiles)
    try:
        rc = main(argv)
    finally:
        jax.monitoring.unregister_event_duration_listener(compiles)
    out, err = capsys.readouterr()
    if expect is OK:
        assert rc == 0, err
        assert _finite(json.loads(out))
        return
    lines = err.replace(str(tmp_path), "$T").strip().splitlines()
    assert rc == 2, (rc, err)
    assert len(lines) == 1 and "error" in lines[0], err
    assert "Traceback" not in err and len(lines[0]) < 500
    assert expect in lines[0], lines[0]
    assert out == ""
    # Nothing written, and the input rejected before any program was compiled (eager
    # operations of a constructor's checks compile in milliseconds).
    assert set(tmp_path.iterdir()) == before
    # A solver or simulation compiles for seconds; the eager operations of a constructor's
    # checks compile in milliseconds each (a total would be at the mercy of the machine's load).
    assert compiles.longest < 1.0, (compiles.longest, compiles.seconds)


def test_corpus_size():
    assert len(CASES) >= 150
    assert len({c[0] for c in CASES}) == len(CASES)


# ---- the shared error path, without compiling anything: reports replaced by fakes.


def _fake_certificate(z):
    return lambda game, **kw: {
        "nash_gap": [1e-9, 2e-9, 1e-9],
        "general_vs_price_max_rel_err": 1e-12,
        "mc_revenue_z_scores": z,
        "revenue_mc_rel_err": [0.0, 0.0, 0.0],
        "revenue": [1.0, 2.0, 3.0],
        "revenue_mc": [1.0, 2.0, 3.0],
        "revenue_mc_stderr": [0.1, 0.1, 0.1],
        "mc_scenarios": 2,
        "mc_paths": 2,
        "mc_steps": 2,
    }


@pytest.mark.parametrize(
    "z, rc", [([190.0, 95.0, 54.0], 1), ([0.5, -1.2, None], 0), ([0.5, 4.0, 1.0], 1)]
)
def test_certify_exit_status_follows_the_certificate(monkeypatch, capsys, z, rc):
    import mftg_jax.cli.certify as certify

    monkeypatch.setattr(certify, "certify_report", _fake_certificate(z))
    assert main(["certify", "--scenario", "3", "--json"]) == rc
    out, err = capsys.readouterr()
    assert json.loads(out)["mc_revenue_z_scores"] == z  # the report is printed either way
    if rc:
        assert err.startswith("mftg certify: certificate failed: Monte Carlo revenue z-score")
        assert len(err.strip().splitlines()) == 1
    else:
        assert err == ""


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_result_is_an_error_naming_it(monkeypatch, capsys, tmp_path, bad):
    import mftg_jax.cli.solve as solve

    monkeypatch.setattr(solve, "solve_report", lambda game: {"n": 3, "u_t1": [1.0, bad, 2.0]})
    assert main(["solve", "--scenario", "2", "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "the result u_t1[1] is not finite" in err


@pytest.mark.parametrize(
    "exc, text",
    [
        (OverflowError("int too large to convert to float"), "too large"),
        (MemoryError(), "out of memory"),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), "not UTF-8"),
        (RuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 1.2e12 bytes"), "internal"),
        (KeyError("state_0"), "internal error: KeyError"),
    ],
)
def test_every_error_is_one_line(monkeypatch, capsys, exc, text):
    import mftg_jax.cli.solve as solve

    def boom(game):
        raise exc

    monkeypatch.setattr(solve, "solve_report", boom)
    assert main(["solve", "--scenario", "2"]) in (2, 3)
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and text in err and "Traceback" not in err


def test_jax_runtime_errors_name_what_failed(monkeypatch, capsys):
    import equinox as eqx

    import mftg_jax.cli.solve as solve

    @eqx.filter_jit
    def failing(x):
        return eqx.error_if(x, x < 0, "market.eta must be > 0 (traced)")

    def boom(game):
        failing(jax.numpy.asarray(-1.0))

    monkeypatch.setattr(solve, "solve_report", boom)
    assert main(["solve", "--scenario", "2"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "mftg solve: error: market.eta must be > 0 (traced)"


def test_output_folder_is_all_or_nothing(tmp_path):
    from mftg_jax.cli._common import output_folder

    out = tmp_path / "out"
    with pytest.raises(ValueError):
        with output_folder(str(out)) as tmp:
            (Path(tmp) / "report.json").write_text("{}")
            raise ValueError("a figure failed")
    assert list(tmp_path.iterdir()) == []
    with output_folder(str(out)) as tmp:
        (Path(tmp) / "report.json").write_text("{}")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert (out / "report.json").read_text() == "{}"
