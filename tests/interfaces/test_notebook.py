"""The example notebook runs headless, top to bottom, against a real local cluster."""

from pathlib import Path

import nbclient
import nbformat
import pytest

from tests.conftest import LONG_TIMEOUT

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

NOTEBOOK = Path(__file__).parents[2] / "examples" / "quickstart.ipynb"


@pytest.mark.timeout(LONG_TIMEOUT)
def test_quickstart_notebook_runs(tmp_path, monkeypatch):
    for name in ("IPYTHONDIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR", "JUPYTER_CONFIG_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("blockdist plan" in page for page in html), "the plan renders as HTML"
    assert any("<progress" in page for page in html), "the job renders with its progress"
    assert any("randomized SVD of A" in page for page in html), "the SVD's plan renders"
    text = "".join(o.get("text", "") for o in outputs)
    assert "verified: C = A·B holds" in text
