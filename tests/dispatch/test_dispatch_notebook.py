"""The dispatch notebook, executed top to bottom: small sizes in `make test`, full sizes
(`MFTG_FULL=1`) in the slow tests."""

import pytest

from tests.helpers import execute_notebook


def test_notebook_executes(tmp_path):
    execute_notebook("dispatch", tmp_path, full=False, timeout=1200)


@pytest.mark.slow
def test_notebook_full_size(tmp_path):
    execute_notebook("dispatch", tmp_path, full=True, timeout=1200)
