"""benchmarks.accelerator --quick: every section in accelerator.json without error, its figures positive and finite,
the markdown table written and printed (no speed is asserted); a section that fails or overruns its budget is
recorded and the run goes on."""

import json
import math
import os
import pathlib
import subprocess
import sys

import pytest

from tests.configs import table_rows
from train import registry

ROOT = pathlib.Path(__file__).resolve().parent.parent
SECTIONS = ["device", "roofline", "ddpm_cifar10", "loops", "word2vec", "input", "train_ddpm", "deterministic"]
STEP_FIGURES = ("examples_per_sec", "step_ms", "gflops_per_step", "tflops", "mfu", "compile_s", "params")


def run_quick(tmp_path, *args) -> tuple[str, dict]:
    """(stdout, accelerator.json) of a --quick run into tmp_path/out, after checking it exited with 0."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    # The test suite's persistent XLA cache (tests/conftest.py): a rerun skips most of the compiling.
    env.setdefault("JAX_COMPILATION_CACHE_DIR", str(ROOT / ".pytest_cache" / "jax"))
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
    env.setdefault("JAX_THREEFRY_PARTITIONABLE", "false")
    cmd = [sys.executable, "-m", "benchmarks.accelerator", "--quick", f"--out={tmp_path / 'out'}", *args]
    run = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, (run.stdout[-3000:], run.stderr[-3000:])
    return run.stdout, json.loads((tmp_path / "out" / "accelerator.json").read_text())


def positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def check_steps(rows: list[dict], roofline: dict) -> None:
    for r in rows:
        for key in STEP_FIGURES:
            assert positive(r[key]), (key, r)
        assert r["mfu"] == pytest.approx(r["tflops"] / roofline[r["dtype"]]), r


@pytest.mark.slow
def test_quick_run_records_every_section_with_positive_figures(tmp_path):
    out, report = run_quick(tmp_path)
    s = report["sections"]
    assert list(s) == SECTIONS and report["order"] == SECTIONS
    input_there = (ROOT / "benchmarks" / "input_speed.py").exists()
    for name in SECTIONS:
        if name == "input" and not input_there:
            assert s[name]["status"] == "error" and "input_speed" in s[name]["error"], s[name]
            continue
        assert s[name]["status"] == "ok", (name, s[name].get("error"), s[name].get("traceback"))
        assert positive(s[name]["section_s"]), s[name]

    d = s["device"]
    assert d["platform"] == "cpu" and d["device_count"] == 1 and d["packages"]["jax"] and d["date"], d
    roofline = s["roofline"]["tflops"]
    assert set(roofline) == {"float32_highest", "float32", "bfloat16"} and all(map(positive, roofline.values()))

    loops = s["loops"]["rows"]
    assert {r["dtype"] for r in loops} == {"float32"}  # --quick: one dtype; bfloat16 is ddpm_cifar10's step below
    assert sorted({r["module"] for r in loops}) == sorted(registry.IMAGE_MODELS)  # every image model
    assert [r["variant"] for r in loops if r["module"] == "flow"] == ["smoke", "smoke-dit"]
    cifar = s["ddpm_cifar10"]
    assert cifar["dtype"] == "bfloat16" and cifar["image_shape"] == [8, 8, 3], cifar
    check_steps([*loops, cifar], roofline)
    assert set(cifar["samplers"]) == {"ddim", "dpmpp_2m"}
    for name, f in cifar["samplers"].items():
        assert all(positive(f[k]) for k in ("images_per_sec", "compile_s", "steps")), (name, f)

    w = s["word2vec"]
    for key in ("words_per_sec", "end_to_end_s", "training_s", "vocabulary", "trained_words", "corpus_words"):
        assert positive(w[key]), (key, w)
    assert w["end_to_end_s"] > w["training_s"] and w["model"] == "sgns" and w["lexicon"] == 20_000
    if input_there:
        assert s["input"]["rows"] and all(positive(r["examples_per_s"]) for r in s["input"]["rows"])
    t = s["train_ddpm"]
    assert positive(t["wall_s"]) and t["last_metrics"]["step"] == 4 and math.isfinite(t["last_metrics"]["loss"])
    det = s["deterministic"]  # the same sections in a child whose XLA_FLAGS ask for deterministic GPU ops
    assert "--xla_gpu_deterministic_ops=true" in det["xla_flags"].split()
    assert positive(det["ddpm_cifar10"]["examples_per_sec"]) and positive(det["word2vec"]["words_per_sec"])
    assert set(det["ratios"]) == {"ddpm_cifar10", "word2vec"} and all(map(positive, det["ratios"].values()))

    table = (tmp_path / "out" / "accelerator.md").read_text()
    assert table.strip() in out  # printed too
    rows = table_rows(out, "| section |")
    assert {r["section"] for r in rows} == set(SECTIONS[1:]) - (set() if input_there else {"input"})
    for r in rows:
        assert positive(float(r["value"].replace(",", ""))), r
    assert {r["unit"] for r in rows} >= {"TFLOP/s", "examples/s", "images/s", "words/s", "s wall"}


def test_a_failing_section_is_recorded_and_the_next_one_runs(tmp_path):
    """word2vec and train_ddpm overrun budgets of a fraction of a second: each is killed and recorded as an error,
    the run goes on to the next and exits 0; --skip'ped sections are marked so. An unknown section or sampler is
    refused."""
    skip = "--skip=roofline,ddpm_cifar10,loops,input,deterministic"
    out, report = run_quick(tmp_path, skip, "--budgets=word2vec=0.3,train_ddpm=0.3")
    s = report["sections"]
    assert s["device"]["status"] == "ok"
    for name in ("roofline", "ddpm_cifar10", "loops", "input", "deterministic"):
        assert s[name] == {"status": "skipped", "why": "--skip"}
    for name in ("word2vec", "train_ddpm"):
        assert s[name]["status"] == "error" and s[name]["error"].startswith("TimeoutError: killed after"), s[name]
        assert "traceback" in s[name]
    rows = table_rows(out, "| section |")
    assert [(r["section"], r["unit"]) for r in rows] == [
        (name, "error" if name in ("word2vec", "train_ddpm") else "skipped") for name in SECTIONS[1:]
    ]

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    refusals = {"--skip=nope": "unknown sections ['nope']", "--samplers=nope": "unknown samplers ['nope']"}
    for flag, refusal in refusals.items():
        cmd = [sys.executable, "-m", "benchmarks.accelerator", f"--out={tmp_path}", flag]
        bad = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert bad.returncode != 0 and refusal in bad.stderr, (flag, bad.stderr[-2000:])
