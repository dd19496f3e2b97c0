"""Every zoo module states its public API: ``__all__`` names only what exists, and lists every public
(non-underscore) function, class and constant the module itself defines; imported names stay out unless listed."""

import ast
import importlib
import inspect
import pathlib
import pkgutil

import pytest

import zoo

MODULES = sorted(m.name for m in pkgutil.iter_modules(zoo.__path__))


def _defined_public_names(module) -> set[str]:
    """Top-level def/class names and assigned names (constants, type aliases) in the module's own source."""
    tree = ast.parse(pathlib.Path(module.__file__).read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                for leaf in ast.walk(t):
                    if isinstance(leaf, ast.Name):
                        names.add(leaf.id)
    return {n for n in names if not n.startswith("_")}


def test_every_zoo_module_is_checked():
    assert {"word2vec", "word2vec_rows", "distributions", "ddpm", "vae", "gmm", "probability"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_all_lists_exactly_the_public_names_the_module_defines(name):
    module = importlib.import_module(f"zoo.{name}")
    assert hasattr(module, "__all__"), f"zoo.{name} has no __all__"
    listed = list(module.__all__)
    assert len(listed) == len(set(listed)), f"zoo.{name}.__all__ repeats a name"
    missing = [n for n in listed if not hasattr(module, n)]
    assert not missing, f"zoo.{name}.__all__ names what it does not define: {missing}"
    unlisted = sorted(_defined_public_names(module) - set(listed))
    assert not unlisted, f"zoo.{name} defines public names missing from __all__ (list or _rename them): {unlisted}"
    # and no public function or class of the module is reachable only by accident of import
    own = {
        n
        for n, v in vars(module).items()
        if not n.startswith("_")
        and (inspect.isfunction(v) or inspect.isclass(v))
        and getattr(v, "__module__", None) == module.__name__
    }
    assert own <= set(listed), sorted(own - set(listed))


def test_star_import_gives_the_listed_names():
    for name in MODULES:
        scope = {}
        exec(f"from zoo.{name} import *", scope)
        module = importlib.import_module(f"zoo.{name}")
        assert set(scope) - {"__builtins__"} == set(module.__all__), name
