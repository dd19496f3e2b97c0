"""The configs the tests run: each module's 'smoke' variant (a seconds-long run), with overrides; benchmark tables."""

from __future__ import annotations

import json
import math
import os


def override(c, overrides: dict):
    """Set dotted keys ('model.hidden') of a ConfigDict in place; return it."""
    for k, v in overrides.items():
        target = c
        *path, last = k.split(".")
        for p in path:
            target = target[p]
        target[last] = v
    return c


def smoke_config(module, data_dir=None, **overrides):
    """module.get_config('smoke'), reading its data from data_dir (a test's TFDS dir), with overrides."""
    c = module.get_config("smoke")
    if data_dir is not None:
        c.data_dir = str(data_dir)
    return override(c, overrides)


def run_straight(module, data_dir, tmp_path_factory, **overrides):
    """(workdir, figures) of a 6-step smoke run in one go: the reference for resume and determinism tests."""
    workdir = str(tmp_path_factory.mktemp("straight"))
    return workdir, module.run(smoke_config(module, data_dir, num_steps=6, **overrides), workdir)


def straight_records(workdir, eval_keys):
    """(loss records, the evaluation record) of a 6-step smoke run, after checking its last checkpoint is step 6,
    its losses were logged at steps 2, 4, 6 and it was evaluated once, at step 6, every one of eval_keys finite."""
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints")))[-1] == "6"
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    logged = [r for r in records if "loss" in r]
    assert [r["step"] for r in logged] == [2, 4, 6]
    evals = [r for r in records if eval_keys[0] in r]
    assert [r["step"] for r in evals] == [6]
    for k in eval_keys:
        assert math.isfinite(evals[0][k]), k
    return logged, evals[0]


def read_metrics(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def train_losses(workdir):
    return {r["step"]: r["loss"] for r in read_metrics(workdir) if "loss" in r}


def resumed_records(module, data_dir, workdir, straight_workdir):
    """(resumed, straight) loss records, after a smoke run stopped at step 4 and resumed to 6 in workdir logged
    steps 2, 4, 6 and the straight run's losses exactly (same seed and config; CPU is deterministic)."""
    module.run(smoke_config(module, data_dir, num_steps=4), workdir)
    module.run(smoke_config(module, data_dir, num_steps=6), workdir)  # resumes at 4
    resumed = [r for r in read_metrics(workdir) if "loss" in r]
    straight = [r for r in read_metrics(straight_workdir) if "loss" in r]
    assert [r["step"] for r in resumed] == [2, 4, 6]
    assert [r["loss"] for r in resumed] == [r["loss"] for r in straight]
    return resumed, straight


def table_rows(out: str, header: str) -> list[dict]:
    """The rows of the markdown table whose header line starts with `header`, as {column: cell}."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    columns = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(columns, (c.strip() for c in line.strip("|").split("|")))))
    return rows
