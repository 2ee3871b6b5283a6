"""Execute the scenario notebooks top to bottom: small sizes in `make test`, full sizes
(`MFTG_FULL=1`) in the slow tests.

The three kernels run concurrently: their time is mostly compilation, one core each.
"""

import asyncio
from pathlib import Path

from nbclient import NotebookClient
import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NAMES = ("scenario_1", "scenario_2", "scenario_3")


def _execute_all(workdir: Path):
    books = {name: nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4) for name in NAMES}
    clients = [
        NotebookClient(
            nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
        )
        for nb in books.values()
    ]

    async def run_all():
        return await asyncio.gather(*(c.async_execute() for c in clients), return_exceptions=True)

    return books, dict(zip(NAMES, asyncio.run(run_all()), strict=True))


def _check(books, results, name):
    if isinstance(results[name], BaseException):
        raise results[name]
    outputs = [o for cell in books[name].cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert images, "the notebook shows its figures"


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MFTG_FULL", raising=False)
        return _execute_all(tmp_path_factory.mktemp("notebooks"))


@pytest.mark.parametrize("name", NAMES)
def test_notebook_executes(executed, name):
    _check(*executed, name)


@pytest.mark.slow
def test_notebooks_full_sizes(tmp_path, monkeypatch):
    monkeypatch.setenv("MFTG_FULL", "1")
    books, results = _execute_all(tmp_path)
    for name in NAMES:
        _check(books, results, name)


@pytest.mark.slow
def test_calibration_notebook(tmp_path):
    # Reads the Nord Pool prices from MFTG_DATA_DIR; about 90 s at its small sizes.
    nb = nbformat.read(NOTEBOOKS / "calibration.ipynb", as_version=4)
    NotebookClient(
        nb, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert [o for o in outputs if "image/png" in o.get("data", {})]
