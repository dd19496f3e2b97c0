"""The runner of the modules fitted in closed form (train.pca, train.ngram, train.cooccurrence): no gradient loop,
but the same workdir as a trained run: made and locked first, config.json, metrics.jsonl and PNGs through
the one MetricsWriter, the refusal to reuse what a run with other fitting keys made, and the summary."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

from train.core import workdir as workdir_lib
from train.core.writers import MetricsWriter

__all__ = ["Fit", "run"]


@dataclasses.dataclass
class Fit:
    """What a closed-form module contributes.

    name: the module ('pca'); fit_keys: the config keys its fitted artefact depends on; artefact: that
    artefact's path in the workdir ('checkpoints/pca.npz'), reused by a rerun with the same fit_keys;
    fit_and_evaluate(workdir, writer) -> (figures, headline, extra summary lines), which writes the artefact,
    metrics and images (the checks that need no write have run before); data: the fingerprint of the data the
    artefact is fitted to (workdir/data.json), when a rerun reuses it rather than rebuilding it from its source.
    """

    name: str
    fit_keys: tuple[str, ...]
    artefact: str
    fit_and_evaluate: Callable[[str, MetricsWriter], tuple[dict, str, tuple[str, ...]]]
    data: dict | None = None


def run(config, workdir: str, fit: Fit) -> dict:
    """Fit in workdir and return the figures."""
    workdir = os.path.abspath(workdir)
    workdir_lib.make_workdir(workdir)
    with workdir_lib.locked(workdir):
        workdir_lib.refuse_other_module(workdir, f"train.{fit.name}")
        workdir_lib.refuse_changed(workdir, config, fit.fit_keys, fit.artefact)
        if fit.data is not None:
            workdir_lib.refuse_changed_data(workdir, fit.data, fit.artefact)
        workdir_lib.claim(workdir, f"train.{fit.name}")
        if fit.data is not None:
            workdir_lib.record_data(workdir, fit.data)
        workdir_lib.write_config(workdir, config)
        writer = MetricsWriter(workdir, keep_until=0)  # a fit logs its records afresh each time
        try:
            figures, headline, extra = fit.fit_and_evaluate(workdir, writer)
        finally:
            writer.close()
    workdir_lib.print_summary(headline, figures, extra)
    return figures
