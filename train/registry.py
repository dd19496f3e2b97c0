"""The entry modules, `python -m train.<name>`, listed once: the tests, the benchmarks and the docs' checks read
their lists from here, so a new module is added in this one place (and its own file, which declares its ENTRY)."""

from __future__ import annotations

import importlib

from train.core.entry import Entry

__all__ = ["NAMES", "IMAGE_MODELS", "entry", "entries"]

# In the lecture's order: images (linear, then networks, then generative), then words.
NAMES = ("pca", "autoencoder", "vae", "vqvae", "gan", "ddpm", "edm", "flow", "ngram", "cooccurrence", "word2vec")

# The image models trained on the shared loop and read back by train.data.image_runs: load(workdir) and
# --mode=sample without their dataset.
IMAGE_MODELS = ("autoencoder", "vae", "vqvae", "gan", "ddpm", "edm", "flow")


def entry(name: str) -> Entry:
    """The ENTRY of train.<name>."""
    if name not in NAMES:
        raise KeyError(f"no entry module {name!r}; accepted: {', '.join(NAMES)}")
    return importlib.import_module(f"train.{name}").ENTRY


def entries() -> dict[str, Entry]:
    """{name: ENTRY} of every entry module."""
    return {name: entry(name) for name in NAMES}
