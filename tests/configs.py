"""The configs the tests run: each module's 'smoke' variant (a seconds-long run), with overrides."""

from __future__ import annotations


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


def logged_records(workdir):
    """metrics.jsonl of a 6-step smoke run, after checking its last checkpoint is step 6 and losses at 2, 4, 6."""
    import json
    import os

    assert sorted(os.listdir(os.path.join(workdir, "checkpoints")))[-1] == "6"
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    assert [r["step"] for r in records if "loss" in r] == [2, 4, 6]
    return records
