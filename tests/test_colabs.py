"""The Colab notebooks in colabs/: stored without outputs, one `parameters` cell each, the same install cell
first in each, every repository path and name they mention exists, and each one runs headless to the end on a
CPU with small parameters (injected after the `parameters` cell, as papermill does)."""

import ast
import importlib
import importlib.machinery
import importlib.util
import json
import os
import pathlib
import re
import subprocess
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
    assert first.cell_type == "code" and "ZOO_SOURCE" in first.source and '"pip", "install"' in first.source
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


# ----------------------------------------------------------------------------- the install cell


def install_cell(name: str) -> str:
    return next(c.source for c in load(name).cells if c.cell_type == "code")


def test_every_notebook_starts_with_the_same_install_cell():
    cells = {name: install_cell(name) for name in NOTEBOOKS}
    first = cells[NOTEBOOKS[0]]
    differ = [name for name, source in cells.items() if source != first]
    assert not differ, f"the first code cell of {differ} differs from that of {NOTEBOOKS[0]}"
    assert all(load(name).cells[0].cell_type == "code" for name in NOTEBOOKS), "the install cell comes first"
    assert re.search(r'^ZOO_SOURCE = ""  #', first, flags=re.M), "the cell's parameter, empty by default"
    assert "jax.devices()" in first and "jax.default_backend()" in first
    assert "--force-reinstall" not in first and "-U" not in first.split(), "pip leaves Colab's JAX as it is"


def run_install_cell(zoo_source: str, cwd: pathlib.Path, monkeypatch, installed: bool | pathlib.Path):
    """Execute the install cell with ZOO_SOURCE set, from `cwd`, with `zoo` installed (True: as it is here; a path:
    as if from that directory) or not (False: until pip has run). pip is never run: subprocess.run is replaced by a
    recorder. Returns the commands the cell asked it to run."""
    source, n = re.subn(r'^ZOO_SOURCE = ""', f"ZOO_SOURCE = {zoo_source!r}", install_cell(NOTEBOOKS[0]), flags=re.M)
    assert n == 1
    calls, real_find_spec = [], importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name == "zoo" and not calls and installed is False:
            return None
        if name == "zoo" and not calls and isinstance(installed, pathlib.Path):
            return importlib.machinery.ModuleSpec("zoo", None, origin=str(installed / "zoo" / "__init__.py"))
        return real_find_spec(name, *args, **kwargs)

    def run(cmd, *args, **kwargs):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.chdir(cwd)
    exec(compile(source, "install cell", "exec"), {"__name__": "__main__"})
    return calls


def fake_checkout(path: pathlib.Path, name: str = "jax-zoo") -> pathlib.Path:
    (path / "colabs").mkdir(parents=True)
    (path / "pyproject.toml").write_text(f'[project]\nname = "{name}"\nversion = "0.1.0"\n')
    return path


def test_install_cell_stops_with_one_clear_message_when_it_finds_nothing(tmp_path, monkeypatch):
    """Not installed, not in a checkout (a pyproject.toml of another project does not count), ZOO_SOURCE empty."""
    elsewhere = fake_checkout(tmp_path / "other", name="other-project")
    with pytest.raises(RuntimeError) as error:
        run_install_cell("", elsewhere / "colabs", monkeypatch, installed=False)
    message = str(error.value)
    assert "ZOO_SOURCE" in message and "git+https://" in message and ".whl" in message
    assert "a checkout directory" in message


@pytest.mark.parametrize(
    "zoo_source", ["CHECKOUT", "git+https://github.com/someone/jax-zoo@main", "/content/jax_zoo-0.1.0-py3-none-any.whl"]
)
def test_install_cell_pip_installs_zoo_source(zoo_source, tmp_path, monkeypatch, capsys):
    if zoo_source == "CHECKOUT":
        zoo_source = str(fake_checkout(tmp_path / "clone"))
    (tmp_path / "cwd").mkdir()
    calls = run_install_cell(zoo_source, tmp_path / "cwd", monkeypatch, installed=False)
    assert calls == [[sys.executable, "-m", "pip", "install", "-q", zoo_source]]
    assert "jax.devices() = [" in capsys.readouterr().out


def test_install_cell_pip_installs_the_checkout_it_sits_in(tmp_path, monkeypatch, capsys):
    """From colabs/ of a clone, with no `zoo` installed or another one (site-packages, another clone)."""
    clone = fake_checkout(tmp_path / "clone")
    for installed in (False, tmp_path / "site-packages"):
        calls = run_install_cell("", clone / "colabs", monkeypatch, installed=installed)
        assert calls == [[sys.executable, "-m", "pip", "install", "-q", str(clone)]]
        assert "jax.devices() = [" in capsys.readouterr().out


def test_install_cell_uses_the_installed_package_without_pip(tmp_path, monkeypatch, capsys):
    (tmp_path / "cwd").mkdir()
    assert run_install_cell("", tmp_path / "cwd", monkeypatch, installed=True) == []
    out = capsys.readouterr().out
    zoo_dir = pathlib.Path(importlib.util.find_spec("zoo").origin).parent
    assert f"zoo from {zoo_dir}" in out and "backend 'cpu': jax.devices() = [" in out
    # From colabs/ of a clone whose own `zoo` is the one installed (`pip install -e .` there): no pip either.
    clone = fake_checkout(tmp_path / "clone")
    assert run_install_cell("", clone / "colabs", monkeypatch, installed=clone) == []
    assert f"zoo from {clone / 'zoo'}" in capsys.readouterr().out


def test_install_cell_reports_a_failing_pip(tmp_path, monkeypatch):
    monkeypatch.setattr(
        subprocess, "run", lambda cmd, *a, **k: subprocess.CompletedProcess(cmd, 1, "", "ERROR: no such wheel")
    )
    source = re.sub(r'^ZOO_SOURCE = ""', "ZOO_SOURCE = 'missing.whl'", install_cell(NOTEBOOKS[0]), flags=re.M)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RuntimeError, match="pip install missing.whl failed:\nERROR: no such wheel"):
        exec(compile(source, "install cell", "exec"), {"__name__": "__main__"})


# ----------------------------------------------------------------------------- what the notebooks name exists

TOP_DIRS = ("zoo", "train", "tests", "benchmarks", "colabs", "docs")
PACKAGES = ("zoo", "train")


def resolves(dotted: str) -> bool:
    """Whether `zoo.pca.svd`, `train.data.images` or `train.ddpm.load` is a module, or an attribute of one."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def code_names(source: str) -> tuple[list[str], dict[str, str]]:
    """The dotted names that the imports and the attributes of imported modules in `source` refer to, and the
    local names the imports bind (`from train.data import images as data`: data -> train.data.images)."""
    tree = ast.parse(source)
    names, aliases = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PACKAGES:
            for a in node.names:
                names.append(f"{node.module}.{a.name}")
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in PACKAGES:
                    names.append(a.name)
                    aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
    rebound = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    rebound |= {a.arg for n in ast.walk(tree) if isinstance(n, ast.arguments) for a in n.args + n.kwonlyargs}
    aliases = {k: v for k, v in aliases.items() if k not in rebound}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            names.append(f"{aliases[node.value.id]}.{node.attr}")
    return names, aliases


def missing_names(nb) -> list[str]:
    """What a notebook mentions, in markdown or code, that does not exist: repository paths (`train/ddpm.py`,
    `docs/`), `python -m` modules, dotted names (`zoo.text.ppmi`, `train.core.writers`), imports, and attributes
    of imported modules (in markdown only as calls, `train_ddpm.load(workdir)`: `vectors.txt` is a file name)."""
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    code = re.sub(r"^([ \t]*)[%!].*$", r"\1pass", code, flags=re.M)  # IPython magics: `%matplotlib inline`
    text = "\n".join(c.source for c in nb.cells)
    names, aliases = code_names(code)
    bad = []
    for path in re.findall(rf"(?<![\w/.<-])(?:{'|'.join(TOP_DIRS)})/[\w./-]*", text):
        if not (ROOT / path.rstrip(".")).exists():
            bad.append(path.rstrip("."))
    for module in re.findall(r"python -m ([\w.]*\w)", text):
        if module.split(".")[0] in TOP_DIRS and importlib.util.find_spec(module) is None:
            bad.append(f"python -m {module}")
    names += re.findall(rf"(?<![\w./])(?:{'|'.join(PACKAGES)})(?:\.\w+)+", text)
    for module, imported in re.findall(rf"from ((?:{'|'.join(PACKAGES)})[\w.]*) import ([\w ,]+)", text):
        names += [f"{module}.{n.split(' as ')[0].strip()}" for n in imported.split(",") if n.strip()]
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for span in re.findall(r"`([^`\n]+)`", markdown):
        names += [f"{aliases[a]}.{attr}" for a, attr in re.findall(r"(?<![\w./])(\w+)\.(\w+)\(", span) if a in aliases]
    bad += [name for name in dict.fromkeys(names) if not resolves(name)]
    return list(dict.fromkeys(bad))


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_path_and_name_a_notebook_mentions_exists(name):
    bad = missing_names(load(name))
    assert not bad, f"{name} names what does not exist: {bad}"


def test_missing_names_finds_what_does_not_exist():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(
            "The digits (built by `train/data.py`, now `train/data/images.py`), see docs/nothing.md and `docs/`.\n"
            "Run `python -m train.ddpm` or `python -m train.nothing`; `zoo.pca.svd` and `zoo.pca.no_such`;\n"
            "`data.load_images(...)` and `data.load_nothing(...)`; `train.data.images.as_arrays`.\n"
        ),
        nbformat.v4.new_code_cell(
            "from train.data import images as data, nothing\n"
            "from zoo import pca\n"
            "import train.core.writers\n"
            "import train.nowhere\n"
            "pca.svd(x), pca.not_there(x)\n"
            "x = train.core.writers.image_grid  # (train/corpus.py)\n"
        ),
    ]
    assert set(missing_names(nb)) == {
        "train/data.py",
        "docs/nothing.md",
        "train/corpus.py",
        "python -m train.nothing",
        "train.data.nothing",
        "train.nowhere",
        "zoo.pca.not_there",
        "zoo.pca.no_such",
        "train.nothing",
        "train.data.images.load_nothing",
    }


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
