"""Price-series loader: layouts, column detection, errors naming file/line/column, repairs."""

import os

import numpy as np
import pytest

from mftg_jax.calibration import load_prices, split_series


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
    sp = split_series(s, test_start="2020-01-05")
    assert len(sp.train) == 96 and len(sp.test) == 24
    assert split_series(s).test is None
    with pytest.raises(ValueError, match="inside the training period"):
        split_series(s, train_end="2020-01-04", test_start="2020-01-03")


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
