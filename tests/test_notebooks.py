"""The notebooks run top to bottom (small settings) and are committed without outputs."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

from .conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_the_three_notebooks_exist():
    assert [path.name for path in NOTEBOOKS] == [
        "01_dataset_statistics.ipynb", "02_train_evaluate.ipynb", "03_export_inference.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_is_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


@pytest.mark.slow
def test_notebooks_run_in_order(tmp_path, cache_dir, monkeypatch):
    """02 trains the checkpoint that 03 exports, so they run in one working folder, in order."""
    monkeypatch.setenv("SKINSEG_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("SKINSEG_NOTEBOOK_WORK", str(tmp_path))
    monkeypatch.setenv("SKINSEG_CACHE", str(cache_dir))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        NotebookClient(notebook, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        errors = [output for cell in notebook.cells for output in cell.get("outputs", [])
                  if output.output_type == "error"]
        assert not errors, path.name
    assert (tmp_path / "figures" / "hist2d_cb_cr.png").is_file()
    assert "best-epoch" in (tmp_path / "results" / "results.md").read_text()  # the trained model's row
    assert (tmp_path / "exports" / "u2netp.x86.int8.onnx").is_file()
