"""The README's code example runs as printed."""
import pathlib
import re

import jax.numpy as jnp

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    scope = {}
    exec(compile(blocks[0], "README.md", "exec"), scope)
    assert scope["images"].shape == (4, 8, 8, 1) and bool(jnp.isfinite(scope["images"]).all())
    assert all(bool(jnp.isfinite(g).all()) for g in __import__("jax").tree.leaves(scope["grads"]))
