"""The Colab notebooks in colabs/: stored without outputs, one `parameters` cell each, and each one runs
headless to the end on a CPU with small parameters (injected after the `parameters` cell, as papermill does)."""

import ast
import json
import os
import pathlib
import sys
import time
import tomllib

import nbformat
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
COLABS = ROOT / "colabs"
NOTEBOOKS = sorted(p.name for p in COLABS.glob("*.ipynb"))
CELL_TIMEOUT = 900  # seconds per cell; a small run takes a minute or two in all

# Small values for a CPU run of a minute or two per notebook: tests/colab_parameters.toml.
with open(ROOT / "tests" / "colab_parameters.toml", "rb") as f:
    SMALL = {
        name: {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
        for name, params in tomllib.load(f).items()
    }


def load(name):
    with open(COLABS / name, encoding="utf-8") as f:
        return nbformat.read(f, as_version=4)


def parameters_index(nb) -> int:
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"expected exactly one cell tagged 'parameters', found {len(tagged)}"
    return tagged[0]


def assigned_names(source: str) -> set[str]:
    return {
        t.id
        for node in ast.parse(source).body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    }


def test_the_five_notebooks_exist():
    assert NOTEBOOKS == sorted(SMALL)


def test_no_notebook_in_the_repository_stores_outputs():
    """Clean diffs: no outputs and no execution counts in any notebook of the repository."""
    notebooks = [
        p for p in ROOT.rglob("*.ipynb") if not any(part.startswith(".") for part in p.relative_to(ROOT).parts)
    ]
    assert notebooks
    for path in notebooks:
        with open(path, encoding="utf-8") as f:
            nb = nbformat.read(f, as_version=4)
        for i, cell in enumerate(nb.cells):
            if cell.cell_type == "code":
                assert cell.get("outputs") == [], f"{path.name}: cell {i} has stored outputs"
                assert cell.get("execution_count") is None, f"{path.name}: cell {i} has an execution count"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_structure(name):
    nb = load(name)
    nbformat.validate(nb)
    first = nb.cells[0]
    assert first.cell_type == "code" and "google.colab" in first.source and "pip install" in first.source
    assert "jax.devices()" in first.source
    i = parameters_index(nb)
    params = nb.cells[i]
    assert params.cell_type == "code"
    names = assigned_names(params.source)
    missing = set(SMALL[name]) - names
    assert not missing, f"small parameters {sorted(missing)} are not set in the parameters cell"
    assert "DATA_DIR" in names or name in ("02_words.ipynb", "03_probability.ipynb")
    sources = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "from zoo" in sources or "import zoo" in sources


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


def kernel_manager(tmp_path):
    """A kernel of this very interpreter (its kernelspec written here), whatever `python` is on the PATH."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec = tmp_path / "kernels" / "jax-zoo-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (jax-zoo test)",
                "language": "python",
            }
        )
    )
    return KernelManager(
        kernel_name="jax-zoo-test", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_on_cpu_with_small_parameters(name, data_dir, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    nb = load(name)
    params = dict(SMALL[name])
    if "DATA_DIR" in assigned_names(nb.cells[parameters_index(nb)].source):
        params["DATA_DIR"] = data_dir
    injected = nbformat.v4.new_code_cell(
        "# Parameters injected by tests/test_colabs.py\n" + "\n".join(f"{k} = {v!r}" for k, v in params.items())
    )
    injected.metadata["tags"] = ["injected-parameters"]
    injected.id = "injected-parameters"
    nb.cells.insert(parameters_index(nb) + 1, injected)
    nbformat.validate(nb)

    # The kernel inherits this environment: CPU only, the test suite's persistent compilation cache (and its
    # faster-compiling threefry lowering, as in tests/conftest.py), temporary files under tmp_path.
    cache = os.environ.get("ZOO_TEST_JAX_CACHE", str(ROOT / ".pytest_cache" / "jax"))
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", cache)
    monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
    monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    monkeypatch.setenv("JAX_THREEFRY_PARTITIONABLE", "false")
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))  # the notebooks' temporary workdirs
    client = NotebookClient(
        nb,
        km=kernel_manager(tmp_path),
        timeout=CELL_TIMEOUT,
        allow_errors=False,
        resources={"metadata": {"path": str(workdir)}},
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError on the first failing cell
    elapsed = time.perf_counter() - start
    print(f"{name}: executed in {elapsed:.1f}s")

    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    figures = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.output_type == "display_data" and "image/png" in o.get("data", {})
    ]
    assert figures, "no inline figure was displayed"
