"""Execute notebooks/mining.ipynb: small sizes here, full sizes (MFTG_FULL=1) in a slow test."""

from pathlib import Path

from nbclient import NotebookClient
import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "mining.ipynb"


def _run(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert [o for o in outputs if "image/png" in o.get("data", {})], "the notebook shows figures"


def test_notebook_small(tmp_path, monkeypatch):
    monkeypatch.delenv("MFTG_FULL", raising=False)
    _run(tmp_path)


@pytest.mark.slow
def test_notebook_full(tmp_path, monkeypatch):
    monkeypatch.setenv("MFTG_FULL", "1")
    _run(tmp_path)
