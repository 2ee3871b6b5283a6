"""The insurance notebook, executed top to bottom: small sizes in `make test`, full sizes
(`MFTG_FULL=1`) in the slow tests."""

from pathlib import Path

import pytest

from tests.helpers import execute_notebook

ROOT = Path(__file__).resolve().parents[2]


def test_notebook_executes(tmp_path):
    execute_notebook("insurance", ROOT, full=False, timeout=1200)


@pytest.mark.slow
def test_notebook_full_size(tmp_path):
    execute_notebook("insurance", ROOT, full=True, timeout=1200)
