"""Execute notebooks/mining.ipynb: small sizes here, full sizes (MFTG_FULL=1) in a slow test."""

import pytest

from tests.helpers import execute_notebook


def test_notebook_small(tmp_path):
    execute_notebook("mining", tmp_path, full=False)


@pytest.mark.slow
def test_notebook_full(tmp_path):
    execute_notebook("mining", tmp_path, full=True)
