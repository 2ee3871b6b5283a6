"""Price-series loader: layouts, column detection, errors naming file/line/column, repairs."""

import os

import numpy as np
import pytest

from mftg_jax.calibration import load_prices, PriceSeries, split_series


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


EPF = (
    "Date, Price, Grid load forecast, Wind power forecast\n"
    "2013-01-01 00:00:00,31.05,42497.0,2798.0\n"
    "2013-01-01 01:00:00,-5.5,41463.0,2417.0\n"
    "2013-01-01 02:00:00,2987.78,41000.0,2000.0\n"
)
ENTSOE = (
    ",Price_DA,Load_DA,Load_AC\n"
    "1/5/2015 0:00,36.56,62900,62610\n"
    "1/5/2015 1:00,34.94,60250,61092\n"
    "1/5/2015 2:00,33.00,60000,61000\n"
)
GENERIC = "timestamp,price\n2020-03-01T00:00:00,10\n2020-03-01T01:00:00,11\n"


@pytest.mark.parametrize(
    "text,layout,column,first,values",
    [
        (EPF, "epftoolbox", "Price", "2013-01-01T00:00:00", [31.05, -5.5, 2987.78]),
        (ENTSOE, "entsoe", "Price_DA", "2015-01-05T00:00:00", [36.56, 34.94, 33.0]),
        (GENERIC, "generic", "price", "2020-03-01T00:00:00", [10.0, 11.0]),
    ],
)
def test_layouts(tmp_path, text, layout, column, first, values):
    s = load_prices(_write(tmp_path, "x.csv", text))
    assert s.layout == layout and s.column == column
    assert str(s.times[0]) == first
    # Negative prices and spikes are kept as they are.
    np.testing.assert_array_equal(s.prices, values)
    assert s.dt_hours == 1.0
    assert s.repairs == ()


def test_price_column_by_substring_and_by_name(tmp_path):
    p = _write(
        tmp_path, "x.csv", "time,Load,SpotPriceEUR\n2020-01-01 00:00,1,5\n2020-01-01 01:00,2,6\n"
    )
    np.testing.assert_array_equal(load_prices(p).prices, [5, 6])
    np.testing.assert_array_equal(load_prices(p, price_column="Load").prices, [1, 2])
    with pytest.raises(ValueError, match="no column named 'Nope'"):
        load_prices(p, price_column="Nope")
    q = _write(
        tmp_path, "y.csv", "time,price_a,price_b\n2020-01-01 00:00,1,5\n2020-01-01 01:00,2,6\n"
    )
    with pytest.raises(ValueError, match="several columns contain 'price'"):
        load_prices(q)


BAD = {
    "malformed": (
        "timestamp,price\n2020-01-01 00:00,1\n2020-01-01 01:00,2,7\n2020-01-01 02:00,3\n",
        r"line 3, column 3 .*malformed row with 3 fields, expected 2",
    ),
    "non_numeric": (
        "timestamp,price\n2020-01-01 00:00,1\n2020-01-01 01:00,abc\n2020-01-01 02:00,3\n",
        r"line 3, column 2 \('price'\): non-numeric price 'abc'",
    ),
    "duplicate": (
        "timestamp,price\n2020-01-01 00:00,1\n2020-01-01 01:00,2\n2020-01-01 01:00,4\n"
        "2020-01-01 02:00,3\n",
        r"line 4, column 1 .*duplicated timestamp 2020-01-01T01:00:00 \(also at line 3\)",
    ),
    "missing": (
        "timestamp,price\n2020-01-01 00:00,1\n2020-01-01 01:00,2\n2020-01-01 04:00,5\n"
        "2020-01-01 05:00,6\n2020-01-01 06:00,7\n",
        r"line 4, column 1 .*2 missing timestamp\(s\) between 2020-01-01T01:00:00 and",
    ),
    "backwards": (
        "timestamp,price\n2020-01-01 01:00,1\n2020-01-01 00:00,2\n2020-01-01 02:00,3\n",
        r"line 3, column 1 .*before the previous row",
    ),
    "bad_time": (
        "timestamp,price\n2020-01-01 00:00,1\n2020-13-45 01:00,2\n",
        r"line 3, column 1 .*cannot read timestamp '2020-13-45 01:00'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_errors_name_file_line_column(tmp_path, case):
    text, pattern = BAD[case]
    p = _write(tmp_path, f"{case}.csv", text)
    with pytest.raises(ValueError, match=pattern) as e:
        load_prices(p)
    assert str(e.value).startswith(p)


def test_repair(tmp_path):
    s = load_prices(_write(tmp_path, "m.csv", BAD["missing"][0]), repair=True)
    np.testing.assert_allclose(s.prices, [1, 2, 3, 4, 5, 6, 7])
    assert any("missing" in r for r in s.repairs)
    s = load_prices(_write(tmp_path, "d.csv", BAD["duplicate"][0]), repair=True)
    np.testing.assert_allclose(s.prices, [1, 3, 3])
    assert any("averaged duplicates" in r for r in s.repairs)
    s = load_prices(_write(tmp_path, "n.csv", BAD["non_numeric"][0]), repair=True)
    np.testing.assert_allclose(s.prices, [1, 2, 3])
    text = BAD["malformed"][0] + "2020-01-01 03:00,4\n"
    s = load_prices(_write(tmp_path, "r.csv", text), repair=True)
    np.testing.assert_allclose(s.prices, [1, 2, 3, 4])
    assert any("dropped" in r for r in s.repairs)


def test_split_by_dates(tmp_path):
    rows = "".join(
        f"2020-01-{d:02d} {h:02d}:00,{d * 100 + h}\n" for d in range(1, 6) for h in range(24)
    )
    s = load_prices(_write(tmp_path, "s.csv", "timestamp,price\n" + rows))
    sp = split_series(s, train_end="2020-01-03", test_start="2020-01-04", test_end="2020-01-04")
    assert len(sp.train) == 72 and len(sp.test) == 24 and len(sp.span) == 96
    assert sp.test.prices[0] == 400 and sp.train.prices[-1] == 323
    assert sp.test_window == "given"
    sp = split_series(s, test_start="2020-01-05")
    assert len(sp.train) == 96 and len(sp.test) == 24
    assert sp.test_window == "one year after training, cut at the end of the data"
    assert split_series(s).test is None and split_series(s).test_window == "none"
    with pytest.raises(ValueError, match="inside the training period"):
        split_series(s, train_end="2020-01-04", test_start="2020-01-03")


def _hourly(first: str, last: str) -> PriceSeries:
    times = np.arange(
        np.datetime64(first, "s"), np.datetime64(last, "s") + 1, np.timedelta64(3600, "s")
    )
    return PriceSeries(times, np.arange(times.size, dtype=float), np.timedelta64(3600, "s"))


def test_train_end_alone_tests_one_year():
    s = _hourly("2016-01-01T00:00", "2020-06-30T23:00")
    sp = split_series(s, "2016-01-01", "2018-12-31")
    assert str(sp.test.times[0]) == "2019-01-01T00:00:00"
    assert str(sp.test.times[-1]) == "2019-12-31T23:00:00" and len(sp.test) == 8760
    assert sp.test_window == "one year after training"
    # A given end wins; a test start alone trains on everything before it.
    assert str(split_series(s, None, "2018-12-31", None, "2019-03-31").test.times[-1]) == (
        "2019-03-31T23:00:00"
    )
    sp = split_series(s, test_start="2020-01-01")
    assert str(sp.train.times[-1]) == "2019-12-31T23:00:00" and len(sp.test) == 182 * 24


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"train_start": "2015-12-31"}, "train_start 2015-12-31 is outside the data"),
        ({"train_end": "2020-07-02"}, "train_end 2020-07-02 is outside the data"),
        ({"train_end": "2019-01-01", "test_end": "2020-07-01"}, "test_end 2020-07-01 is outside"),
        ({"test_start": "2021-01-01"}, "test_start 2021-01-01 is outside the data"),
        ({"train_end": "01/02/2018"}, "train_end: cannot read date '01/02/2018'; use an ISO"),
        ({"train_end": "31/12/2018"}, "train_end: cannot read date"),
        ({"test_start": "2019-02-30"}, "test_start: cannot read date"),
        ({"test_end": "2019-12-31"}, "test_end needs train_end or test_start"),
        ({"train_start": "2019-01-02", "train_end": "2019-01-01"}, "training window"),
    ],
)
def test_windows_outside_the_data_and_non_iso_dates_are_errors(kw, match):
    s = _hourly("2016-01-01T00:00", "2020-06-30T23:00")
    with pytest.raises(ValueError, match=match) as plain:
        split_series(s, **kw)
    # The command line names its flags instead.
    labels = {
        k: "--" + k.replace("_", "-")
        for k in ("train_start", "train_end", "test_start", "test_end")
    }
    with pytest.raises(ValueError) as flagged:
        split_series(s, **kw, labels=labels)
    named = [k for k in labels if k in str(plain.value)]
    assert named and all(labels[k] in str(flagged.value) for k in named)
    # The end of the last day is inside the data; so is a time ISO-written with T.
    assert len(split_series(s, "2016-01-01T00:00", "2020-06-30").train) == len(s)


EXPECTED_ROWS = {
    "epftoolbox_NP.csv": 52416,
    "epftoolbox_DE.csv": 52416,
    "entsoe_FR.csv": 74376,
    "entsoe_DK_1.csv": 74472,
    "entsoe_NO_2.csv": 74472,
}


def _data_dir() -> str:
    d = os.environ.get("MFTG_DATA_DIR")
    if d is None:
        pytest.skip("MFTG_DATA_DIR is not set: the real price files are not available")
    assert os.path.isdir(d), f"MFTG_DATA_DIR={d!r} is set but is not a folder"
    return d


@pytest.mark.parametrize("name", sorted(EXPECTED_ROWS))
def test_real_files(name):
    s = load_prices(os.path.join(_data_dir(), name))
    assert len(s) == EXPECTED_ROWS[name]
    assert s.dt_hours == 1.0 and s.repairs == ()
    assert np.all(np.diff(s.times) == np.timedelta64(3600, "s"))


@pytest.mark.parametrize(
    "flags,match",
    [
        (["--train-end", "01/02/2020"], "--train-end must be an ISO date"),
        (["--train-end", "31/12/2019"], "--train-end must be an ISO date"),
        (["--train-start", "2019-01-01"], "--train-start 2019-01-01 is outside the data"),
        (["--train-end", "2020-01-02", "--test-end", "2021-01-01"], "--test-end 2021-01-01 is"),
        (["--test-end", "2020-01-04"], "--test-end needs --train-end or --test-start"),
    ],
)
def test_cli_dates_and_windows(tmp_path, capsys, flags, match):
    from mftg_jax.cli import main

    rows = "".join(f"2020-01-{d:02d} {h:02d}:00,{d + h}\n" for d in range(1, 6) for h in range(24))
    path = _write(tmp_path, "p.csv", "timestamp,price\n" + rows)
    assert main(["calibrate", path, *flags]) == 2
    err = capsys.readouterr().err
    assert match in err and len(err.strip().splitlines()) == 1, err


def test_cli_help_states_windows_and_defaults(capsys):
    from mftg_jax.cli import main

    assert main(["calibrate", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "default: one year after the test start" in text
    assert "n = 1 identical producer(s)" in text and "q = 0" in text
    assert "fixed, not fitted; default 0.5" in text and "--from DATE" in text


@pytest.mark.parametrize(
    "date,match",
    [("2020-01-01", "must be after the first training hour"), ("2020-01-03 10:30", "time grid")],
)
def test_cli_from_is_checked_before_fitting(tmp_path, capsys, date, match):
    from mftg_jax.cli import main

    rows = "".join(f"2020-01-{d:02d} {h:02d}:00,{d + h}\n" for d in range(1, 6) for h in range(24))
    path = _write(tmp_path, "p.csv", "timestamp,price\n" + rows)
    assert main(["calibrate", path, "--harmonics", "0", "--from", date]) == 2
    assert match in capsys.readouterr().err
