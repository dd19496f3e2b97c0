"""train/evaluate.py: `python -m train.evaluate --samples=A --reference=B ...` as real processes.

The table: bad input (flags, files missing or holding no images, images the features cannot take, statistics of
another network, inception without weights) is one `error:` line, exit code 2, nothing written (no --out, no
--save_stats, nothing in data_dir: tests/cli_cases.py's check_refused). The command takes no --workdir, so this
file runs its cases itself (run_case) and checks each with check_refused. Then the figures: real digits score near
the real-vs-real floor and noise far from it, whatever form the same samples come in (this project's npz,
guided-diffusion's arr_0, a folder of PNGs, a reference statistics file that --save_stats wrote, read as
pytorch-fid reads it); a trained run's workdir is scored from its newest samples or by drawing; and the inception
path's plumbing with a stand-in network (the network itself is tested where it is written).
"""

from __future__ import annotations

import concurrent.futures
import importlib
import json
import os
import pathlib
import subprocess
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from PIL import Image

from tests.cli_cases import JAX_CACHE, ROOT, WORKERS, Case, ForkServer, Outcome, case, check_refused, fill
from train import evaluate as evaluate_lib
from train.evaluation import images as evaluation_images
from zoo import metrics

# 1500 real digits against the 297 of the test split, classifier features: FD 1.59, KID 2.5 (std over 20 subsets of
# 200: 15.0), precision 0.93, recall 0.91; 1500 images of uniform noise: FD 112.4, KID 2301, precision 0.10, recall
# 0.003 (measured 2026-12-07). KID is not scale-free: the classifier's features are large, and so are its values.
REAL_FD_AT_MOST, NOISE_FD_AT_LEAST, REAL_KID_AT_MOST, NOISE_KID_AT_LEAST = 3.0, 50.0, 10.0, 500.0
DIGITS_NPZ = "npz:{tmp}/digits.npz"  # a dataset reference that prepares nothing in data_dir

CASES = [
    # flags
    case("unknown-flag", "evaluate", ["--samples={tmp}/real.npz", "--reference=" + DIGITS_NPZ, "--colour=red"],
         ["unrecognized arguments: --colour=red", "accepted flags: --samples, --reference"]),
    case("no-reference", "evaluate", ["--samples={tmp}/real.npz"], ["--reference is missing", "accepted: a dataset"]),
    case("no-samples", "evaluate", ["--reference=" + DIGITS_NPZ, "--save_stats="],
         ["--samples is missing", "or only --save_stats"]),
    case("unknown-features", "evaluate",
         ["--samples={tmp}/real.npz", "--reference=" + DIGITS_NPZ, "--features=clip"],
         ["--features='clip' is not a feature network; accepted: classifier, inception"]),
    case("not-an-integer", "evaluate", ["--samples={tmp}/real.npz", "--reference=" + DIGITS_NPZ, "--pr_k=three"],
         ["argument --pr_k: invalid int value: 'three'"]),
    case("negative-samples", "evaluate", ["--samples={tmp}/real.npz", "--reference=" + DIGITS_NPZ, "--num_samples=-1"],
         ["--num_samples=-1 must be an integer >= 0"]),
    case("inception-without-weights", "evaluate",
         ["--samples={tmp}/real.npz", "--reference=" + DIGITS_NPZ, "--features=inception"],
         ["--features=inception needs --inception_weights=PATH", "pt_inception-2015-12-05", "nothing is downloaded"]),
    case("inception-weights-missing", "evaluate",
         ["--samples={tmp}/real.npz", "--reference=" + DIGITS_NPZ, "--features=inception",
          "--inception_weights={tmp}/pt_inception.pth"],
         ["--inception_weights={tmp}/pt_inception.pth: no such file"]),
    case("inception-weights-not-torch", "evaluate",
         ["--samples={tmp}/real.npz", "--reference=" + DIGITS_NPZ, "--features=inception",
          "--inception_weights={tmp}/single.npy"],
         ["inception weights '{tmp}/single.npy': not a torch state dict of pytorch-fid's FIDInceptionV3"]),
    case("save-stats-not-npz", "evaluate", ["--reference=" + DIGITS_NPZ, "--save_stats={case}/stats.txt"],
         ["stats.txt must end in .npz (pytorch-fid reads statistics so named)"]),
    case("out-in-missing-directory", "evaluate",
         ["--samples={tmp}/real.npz", "--reference=" + DIGITS_NPZ, "--out={case}/no/such/dir/figures.json"],
         ["figures.json cannot be written: its directory", "/no/such/dir does not exist"]),
    # samples that are not images
    case("samples-missing", "evaluate", ["--samples={tmp}/none.npz", "--reference=" + DIGITS_NPZ],
         ["--samples={tmp}/none.npz: no such file", "accepted: an .npz of uint8 images"]),
    case("samples-without-images", "evaluate", ["--samples={tmp}/no_images.npz", "--reference=" + DIGITS_NPZ],
         ["no_images.npz holds no images (its arrays: logits, mu)", "'images', 'arr_0' or 'x'"]),
    case("samples-float", "evaluate", ["--samples={tmp}/float.npz", "--reference=" + DIGITS_NPZ],
         ["float.npz ('images') has dtype float32; accepted: uint8 pixels 0..255"]),
    case("samples-npy", "evaluate", ["--samples={tmp}/single.npy", "--reference=" + DIGITS_NPZ],
         ["single.npy: not an .npz archive of arrays"]),
    case("samples-header-claims-more", "evaluate", ["--samples={tmp}/claims.npz", "--reference=" + DIGITS_NPZ],
         ["claims.npz: 'images' claims shape (10000000000, 8, 8) of uint8 but the file holds less"]),
    case("samples-objects", "evaluate", ["--samples={tmp}/objects.npz", "--reference=" + DIGITS_NPZ],
         ["objects.npz: 'arr_0' holds Python objects"]),
    case("samples-folder-too-few", "evaluate", ["--samples={tmp}/nine_pngs", "--reference=" + DIGITS_NPZ],
         ["--samples: dataset 'images:{tmp}/nine_pngs': holds 9 image file(s)"]),
    case("samples-workdir-of-pca", "evaluate", ["--samples={tmp}/pca_run", "--reference=" + DIGITS_NPZ],
         ["holds no samples/samples_<step>.npz and no run of an image model", "'train.pca'", "autoencoder, vae"]),
    # images the features cannot take
    case("samples-larger", "evaluate", ["--samples={tmp}/ten_by_ten.npz", "--reference=" + DIGITS_NPZ],
         ["--samples holds images of 10x10x1, but the feature classifier of", "takes 8x8x1",
          "or --features=inception (any size, grey or RGB)"]),
    case("samples-rgb", "evaluate", ["--samples={tmp}/rgb.npz", "--reference=" + DIGITS_NPZ],
         ["--samples holds images of 8x8x3", "takes 8x8x1"]),
    case("reference-images-other-size", "evaluate",
         ["--samples={tmp}/real.npz", "--reference={tmp}/ten_by_ten.npz", "--classifier_data=" + DIGITS_NPZ],
         ["--reference={tmp}/ten_by_ten.npz holds images of 10x10x1", "takes 8x8x1"]),
    case("classifier-without-dataset", "evaluate", ["--samples={tmp}/real.npz", "--reference={tmp}/real.npz"],
         ["--features=classifier embeds by the feature classifier of a dataset", "--classifier_data=DATASET"]),
    case("too-few-for-precision-recall", "evaluate", ["--samples={tmp}/three.npz", "--reference=" + DIGITS_NPZ],
         ["--pr_k=3 needs at least 4 images on each side, got 3 samples", "or --pr_k=0"]),
    # references that cannot be used
    case("reference-missing", "evaluate", ["--samples={tmp}/real.npz", "--reference={tmp}/ref_stats.npz"],
         ["--reference={tmp}/ref_stats.npz: no such file or directory"]),
    case("reference-unknown-dataset", "evaluate", ["--samples={tmp}/real.npz", "--reference=no_such_dataset"],
         ["unknown dataset 'no_such_dataset'"]),
    case("reference-stats-bad-sigma", "evaluate",
         ["--samples={tmp}/real.npz", "--reference={tmp}/bad_sigma.npz", "--classifier_data=" + DIGITS_NPZ],
         ["'mu' float64 (4,) and 'sigma' float64 (4, 3) are not the statistics", "'sigma' [D, D]"]),
    case("reference-pytorch-fid-stats-for-the-classifier", "evaluate",
         ["--samples={tmp}/real.npz", "--reference={tmp}/pytorch_fid_stats.npz", "--classifier_data=" + DIGITS_NPZ],
         ["holds statistics of inception features, not of --features=classifier", "--save_stats"]),
]  # fmt: skip


# ----------------------------------------------------------------------------- the table's files and runner


def digits_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train images, labels, test images, labels) of the digits as train.data builds them: scikit-learn's 1797 8x8
    digits, pixels 0..16 scaled to uint8 0..255 [N, 8, 8, 1], split 1500 / 297 by the permutation of seed 0."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    order = np.random.default_rng(0).permutation(len(x))
    return x[order[:1500]], d.target[order[:1500]], x[order[1500:]], d.target[order[1500:]]


def _npy(array: np.ndarray, claimed_shape) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue().replace(str(array.shape).encode(), str(claimed_shape).encode(), 1)


def write_files(tmp: pathlib.Path) -> None:
    import zipfile

    x, y, x_test, y_test = digits_arrays()
    np.savez(tmp / "digits.npz", x=x, y=y, x_test=x_test, y_test=y_test)
    np.savez(tmp / "real.npz", images=x[:200], labels=np.full(200, -1, np.int32))
    np.savez(tmp / "three.npz", images=x[:3])
    np.savez(tmp / "no_images.npz", logits=np.zeros((3, 10)), mu=np.zeros(3))
    np.savez(tmp / "float.npz", images=x[:10].astype(np.float32))
    np.save(tmp / "single.npy", x[:10])
    with zipfile.ZipFile(tmp / "claims.npz", "w") as z:
        z.writestr("images.npy", _npy(x[:10, ..., 0], (10**10, 8, 8)))
    with zipfile.ZipFile(tmp / "objects.npz", "w") as z:
        z.writestr("arr_0.npy", _npy(np.array([None] * 10, object), (10,)))
    np.savez(tmp / "ten_by_ten.npz", images=np.zeros((20, 10, 10, 1), np.uint8))
    np.savez(tmp / "rgb.npz", images=np.repeat(x[:20], 3, axis=-1))
    np.savez(tmp / "bad_sigma.npz", mu=np.zeros(4), sigma=np.zeros((4, 3)))
    np.savez(tmp / "pytorch_fid_stats.npz", mu=np.zeros(64), sigma=np.eye(64))
    (tmp / "nine_pngs").mkdir()
    for i in range(9):
        Image.fromarray(x[i, ..., 0]).save(tmp / "nine_pngs" / f"{i}.png")
    (tmp / "pca_run").mkdir()
    (tmp / "pca_run" / "config.json").write_text("{}")
    (tmp / "pca_run" / "run.json").write_text('{"module": "train.pca"}')


def run_evaluate(args, env_extra=(), timeout=300, forks: ForkServer | None = None) -> tuple[int | None, str, str]:
    """(exit code, stdout, stderr) of `python -m train.evaluate ARGS` (JAX on the CPU, the tests' compile cache),
    forked from `forks` when given."""
    if forks is not None and not env_extra:
        return forks.run("evaluate", list(args), timeout)
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": JAX_CACHE, **dict(env_extra)}
    cmd = [sys.executable, "-m", "train.evaluate", *args]
    try:
        p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        return None, str(e.stdout or ""), f"TIMEOUT after {timeout}s (not refused?)\n{e.stderr or ''}"


def run_case(c: Case, tmp: str, forks: ForkServer) -> Outcome:
    """A case's process with --out and --save_stats in its own empty folder (unless it names its own) and
    --data_dir={tmp}/tfds: `workdir` is the --out file, which must not be written, and the folder must stay empty."""
    case_dir = os.path.join(tmp, "cases", c.id)
    os.makedirs(case_dir)
    args = [fill(a, tmp, case_dir) for a in c.args]
    given = {a.split("=", 1)[0] for a in args}
    extra = {"--out": f"{case_dir}/figures.json", "--save_stats": f"{case_dir}/stats.npz", "--data_dir": f"{tmp}/tfds"}
    args += [f"{k}={v}" for k, v in extra.items() if k not in given]
    rc, out, err = run_evaluate(args, forks=forks)
    return Outcome(rc, out, err, f"{case_dir}/figures.json", sibling_entries=sorted(os.listdir(case_dir)))


@pytest.fixture(scope="module")
def outcomes(request, tmp_path_factory):
    """{case id: Outcome} of the cases selected in this session, run together on a small thread pool."""
    tmp = tmp_path_factory.mktemp("evaluate_cases")
    write_files(tmp)
    selected = [
        item.callspec.params["c"]
        for item in request.session.items
        if getattr(item, "module", None) is request.module
        and "c" in getattr(getattr(item, "callspec", None), "params", {})
    ]
    forks = ForkServer((("JAX_COMPILATION_CACHE_DIR", JAX_CACHE),))
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
        futures = {c.id: pool.submit(run_case, c, str(tmp), forks) for c in selected}
        results = {"_tmp": str(tmp), **{cid: f.result() for cid, f in futures.items()}}
    forks.close()
    return results


@pytest.mark.parametrize("c", CASES)
def test_evaluate_refuses_bad_input(c: Case, outcomes):
    check_refused(c, outcomes[c.id], outcomes["_tmp"])


def test_the_table_has_one_id_a_case():
    assert len({p.values[0].id for p in CASES}) == len(CASES) >= 28


# ----------------------------------------------------------------------------- the figures, end to end


def _pytorch_fid_reads(path) -> tuple[np.ndarray, np.ndarray]:
    """pytorch-fid 0.3.0's compute_statistics_of_path for an .npz: with np.load(path) as f: f['mu'][:],
    f['sigma'][:]."""
    with np.load(path) as f:
        return f["mu"][:], f["sigma"][:]


def _pytorch_fid_frechet(mu1, sigma1, mu2, sigma2):
    """pytorch-fid's calculate_frechet_distance on regular statistics (tests/test_metrics.py has all of it)."""
    covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2)).real
    diff = mu1 - mu2
    return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """The same 1500 real digits (the train split of the digits, 8x8) in four forms, and noise, each scored against
    the digits' test split in classifier features by its own process; returns ({form: (figures, stderr)}, the
    folder)."""
    tmp = tmp_path_factory.mktemp("evaluate_runs")
    real = digits_arrays()[0]
    np.savez(tmp / "real.npz", images=real, labels=np.full(len(real), -1, np.int32))
    np.savez(tmp / "real_arr.npz", arr_0=real[..., 0])  # guided-diffusion's layout, grey as [N, H, W]
    np.savez(tmp / "noise.npz", images=np.random.default_rng(0).integers(0, 256, real.shape, dtype=np.uint8))
    (tmp / "pngs").mkdir()
    for i, image in enumerate(real):
        Image.fromarray(image[..., 0]).save(tmp / "pngs" / f"{i:04d}.png")
    common = [f"--data_dir={tmp}/data", "--kid_subset_size=200", "--kid_subsets=20"]
    first = ["--samples=" + str(tmp / "real.npz"), "--reference=digits", f"--save_stats={tmp}/digits_stats.npz"]
    runs = {
        "npz": [*first, f"--out={tmp}/real.json"],
        "noise": ["--samples=" + str(tmp / "noise.npz"), "--reference=digits"],
        "arr_0": ["--samples=" + str(tmp / "real_arr.npz"), "--reference=digits"],
        "folder": ["--samples=" + str(tmp / "pngs"), "--reference=digits"],
        "stats": [
            "--samples=" + str(tmp / "real.npz"),
            f"--reference={tmp}/digits_stats.npz",
            "--classifier_data=digits",
        ],
    }
    results = {}

    def score(name):
        rc, out, err = run_evaluate([*runs[name], *common])
        assert rc == 0, f"{name}: {err[-3000:]}"
        results[name] = (json.loads(out), err)

    score("npz")  # prepares the digits, trains the classifier and caches the reference statistics once
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        list(pool.map(score, ["noise", "arr_0", "folder", "stats"]))
    return results, tmp


def test_real_digits_score_near_the_floor_and_noise_far(scored):
    results, tmp = scored
    real, noise = results["npz"][0], results["noise"][0]
    assert real["num_samples"] == 1500 and real["num_reference"] == 297 and real["features"] == "classifier"
    assert real["classifier_test_accuracy"] > 0.9 and real["network"].startswith("classifier:")
    assert real["fd"] < REAL_FD_AT_MOST and noise["fd"] > NOISE_FD_AT_LEAST, (real["fd"], noise["fd"])
    assert abs(real["kid"]) < REAL_KID_AT_MOST and noise["kid"] > NOISE_KID_AT_LEAST, (real["kid"], noise["kid"])
    assert real["precision"] > 0.85 and real["recall"] > 0.85 and noise["precision"] < 0.3 and noise["recall"] < 0.05
    assert real["kid_subset_size"] == 200 and "inception_score" not in real
    assert json.loads((tmp / "real.json").read_text()) == real  # --out holds what was printed
    assert "reference statistics read from" in results["noise"][1]  # the cache made by the first run


def test_the_same_samples_in_every_form_score_the_same(scored):
    results, _ = scored
    real = results["npz"][0]
    for form in ("arr_0", "folder"):
        got = results[form][0]
        assert got["num_samples"] == 1500
        for key in ("fd", "kid", "kid_std", "precision", "recall"):
            assert got[key] == real[key], (form, key)
    stats = results["stats"][0]  # the statistics file --save_stats wrote, as the reference: FD only
    assert stats["fd"] == pytest.approx(real["fd"], rel=1e-12) and "kid" not in stats and "precision" not in stats


def test_saved_statistics_are_read_as_pytorch_fid_reads_them(scored):
    results, tmp = scored
    mu, sigma = _pytorch_fid_reads(tmp / "digits_stats.npz")
    assert mu.dtype == sigma.dtype == np.float64 and mu.shape == (64,) and sigma.shape == (64, 64)
    np.testing.assert_array_equal(sigma, sigma.T)
    cached = [p for p in (tmp / "data" / evaluate_lib.STATS_CACHE).iterdir() if p.suffix == ".npz"]
    assert len(cached) == 1  # one reference, one network: one cache file, which holds the same statistics
    with np.load(cached[0]) as f:
        np.testing.assert_array_equal(f["mu"], mu)
        features = f["features"]
    assert features.shape == (297, 64)
    np.testing.assert_allclose(mu, features.astype(np.float64).mean(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(features.astype(np.float64), rowvar=False), rtol=1e-10, atol=1e-12)
    assert results["npz"][0]["saved_stats"] == str(tmp / "digits_stats.npz")


# ----------------------------------------------------------------------------- in the test process


def _args(*argv, data_dir):
    return [*argv, f"--data_dir={data_dir}", "--kid_subset_size=50", "--kid_subsets=5"]


@pytest.fixture(scope="module")
def digits_npz(tmp_path_factory):
    path = tmp_path_factory.mktemp("evaluate_digits") / "digits.npz"
    x, y, x_test, y_test = digits_arrays()
    np.savez(path, x=x, y=y, x_test=x_test, y_test=y_test)
    return path


def test_a_workdir_is_scored_by_its_newest_samples_or_by_drawing(digits_npz, data_dir, tmp_path):
    """A GAN's smoke run: with no samples yet its load() draws --num_samples; after --mode=sample the newest
    samples_<step>.npz is read, and its guided-diffusion sibling (_arr.npz) scores the same."""
    from train import gan, registry

    c = gan.get_config("smoke")
    c.dataset, c.data_dir = f"npz:{digits_npz}", str(data_dir)
    workdir = str(tmp_path / "gan")
    gan.run(c, workdir)
    reference = f"--reference=npz:{digits_npz}"
    drawn = evaluate_lib.evaluate(_args(f"--samples={workdir}", reference, "--num_samples=40", data_dir=data_dir))
    assert drawn["num_samples"] == 40 and drawn["samples"].endswith("(step 4, drawn)") and drawn["fd"] > 0
    path = registry.entry("gan").sample(workdir, {"sample.num_images": 30})
    newest = evaluate_lib.evaluate(_args(f"--samples={workdir}", reference, data_dir=data_dir))
    assert newest["samples"] == path and newest["num_samples"] == 30
    sibling = evaluate_lib.evaluate(_args(f"--samples={path[:-4]}_arr.npz", reference, data_dir=data_dir))
    assert sibling["fd"] == newest["fd"] and sibling["kid"] == newest["kid"]


def stand_in_inception(calls: list, dims: int = 2048):
    """A stand-in for train.evaluation.inception_weights: load_inception(path) gives (module, variables) whose
    module.apply(variables, uint8 RGB images of any size) is a fixed random map to (pool [B, dims], logits [B, 1008]),
    as zoo.inception's InceptionV3 is applied; the shape of every batch it is traced with is recorded in `calls`."""
    rng = np.random.default_rng(0)
    variables = {"pool": rng.normal(size=(48, dims)), "logits": rng.normal(size=(dims, 1008)) / 40}

    def apply(v, images):
        calls.append((images.shape, images.dtype))
        rows = np.linspace(0, images.shape[1] - 1, 4).astype(int)
        cols = np.linspace(0, images.shape[2] - 1, 4).astype(int)
        grid = jnp.asarray(images)[:, rows][:, :, cols].reshape(images.shape[0], 48) / 255.0
        pool = jnp.maximum(grid @ v["pool"], 0.0)
        return pool.astype(jnp.float32), (pool @ v["logits"]).astype(jnp.float32)

    module = types.ModuleType("train.evaluation.inception_weights")
    module.load_inception = lambda path: (types.SimpleNamespace(apply=apply), variables)
    return module, lambda images: tuple(np.asarray(a) for a in apply(variables, images))


def test_the_inception_path_with_a_stand_in_network(monkeypatch, digits_npz, data_dir, tmp_path):
    """Plumbing only: grey images reach the network as RGB in batches of 50 (the last one padded), the figures are
    zoo.metrics' of its outputs (FD, KID, precision/recall, IS of the logits), any image size is taken, and the
    statistics --save_stats writes, saved again as pytorch-fid saves them (no network named), are read back as the
    reference. The stand-in's features are 64-d, not Inception's 2048 (an FD of 2048-d features takes ~12 s on 2
    cores, and three are computed)."""
    calls = []
    module, network = stand_in_inception(calls, dims=64)
    monkeypatch.setitem(sys.modules, "train.evaluation.inception_weights", module)
    monkeypatch.setattr(evaluation_images, "INCEPTION_DIMS", 64)
    weights = tmp_path / "pt_inception.pth"
    weights.write_bytes(b"stand-in weights")
    x, _, x_test, _ = digits_arrays()
    np.savez(tmp_path / "samples.npz", images=x[:120])
    flags = ["--features=inception", f"--inception_weights={weights}"]
    out = evaluate_lib.evaluate(
        _args(
            f"--samples={tmp_path}/samples.npz", f"--reference=npz:{digits_npz}", *flags,
            f"--save_stats={tmp_path}/ref.npz", data_dir=data_dir,
        )
    )  # fmt: skip
    assert {(shape[0], shape[-1], str(dtype)) for shape, dtype in calls} == {(50, 3, "uint8")}
    ref_pool, _ = network(np.repeat(x_test, 3, -1))
    pool, logits = network(np.repeat(x[:120], 3, -1))
    mu, sigma = _pytorch_fid_reads(tmp_path / "ref.npz")
    np.testing.assert_allclose(mu, ref_pool.astype(np.float64).mean(0), rtol=1e-4, atol=1e-5)  # jitted vs eager
    with jax.enable_x64(True):
        fd = float(metrics.frechet_distance(*stats64(pool), mu, sigma))
        is_mean, is_std = metrics.inception_score(logits.astype(np.float64), 10)
    assert out["fd"] == pytest.approx(fd, rel=1e-4) and out["num_reference"] == 297
    assert out["inception_score"] == pytest.approx(float(is_mean), rel=1e-5) and out["inception_score_splits"] == 10
    assert out["inception_score_std"] == pytest.approx(float(is_std), rel=1e-3, abs=1e-6)
    assert {"kid", "kid_std", "precision", "recall"} <= set(out) and out["network"].startswith("inception:")
    np.testing.assert_allclose(evaluate_lib.inception_features(str(weights), x[:3])[1], logits[:3], atol=1e-5)
    np.savez(tmp_path / "theirs.npz", mu=mu, sigma=sigma)  # as pytorch-fid's --save-stats writes: no network named
    theirs = evaluate_lib.evaluate(
        _args(f"--samples={tmp_path}/samples.npz", f"--reference={tmp_path}/theirs.npz", *flags, data_dir=data_dir)
    )
    assert theirs["fd"] == pytest.approx(out["fd"], rel=1e-12) and "kid" not in theirs and "num_reference" not in theirs
    large = np.repeat(np.repeat(x[120:200], 3, axis=1), 3, axis=2)  # 24x24, only their statistics: no FD
    np.savez(tmp_path / "large.npz", images=large)
    only_stats = evaluate_lib.evaluate(
        _args(
            f"--reference={tmp_path}/large.npz", *flags, f"--save_stats={tmp_path}/large_stats.npz", data_dir=data_dir
        )
    )
    assert only_stats["num_reference"] == 80 and "fd" not in only_stats and (24, 3) in {(s[1], s[3]) for s, _ in calls}
    mu_large, _ = _pytorch_fid_reads(tmp_path / "large_stats.npz")
    np.testing.assert_allclose(mu_large, network(np.repeat(large, 3, -1))[0].mean(0), rtol=1e-4, atol=1e-5)


def stats64(features):
    """(mean, covariance) of features in float64, as pytorch-fid takes them (np.mean, np.cov)."""
    f = np.asarray(features, np.float64)
    return f.mean(0), np.cov(f, rowvar=False)


def test_the_error_line_names_every_flag():
    flags = [a.option_strings[0] for a in evaluate_lib.parser()._actions if a.option_strings[0] != "-h"]
    assert all(f in evaluate_lib.FLAGS_HELP for f in flags), flags
    assert importlib.import_module("train.evaluate").__doc__.startswith("Score samples of any model")


def test_the_real_network_with_random_weights_in_torchs_file_format(tmp_path):
    """End to end through zoo.inception and train.evaluation.inception_weights: random FIDInceptionV3 weights
    written as torch.save's zip file (tests/test_inception.py's writer), 12 digits against 12 others, in a process of
    its own: every figure is there and finite and IS within [1, 1008] (the network is tests/test_inception.py's to
    check against pytorch-fid's; the figures of samples against themselves, the classifier path's to check: one
    compilation of the network in a process is what this test can afford)."""
    from tests.test_inception import random_state_dict, save_state_dict

    save_state_dict(tmp_path / "random.pth", random_state_dict(0), "zip")
    x, _, x_test, _ = digits_arrays()
    np.savez(tmp_path / "samples.npz", images=x[:12])
    np.savez(tmp_path / "reference.npz", images=x_test[:12])
    flags = ["--features=inception", f"--inception_weights={tmp_path}/random.pth", f"--data_dir={tmp_path}/data"]
    flags += ["--kid_subset_size=6", "--kid_subsets=4", "--is_splits=3"]
    rc, out, err = run_evaluate([f"--samples={tmp_path}/samples.npz", f"--reference={tmp_path}/reference.npz", *flags])
    assert rc == 0, err[-3000:]
    figures = json.loads(out)
    keys = ("fd", "kid", "kid_std", "precision", "recall", "inception_score", "inception_score_std")
    assert all(np.isfinite(figures[k]) for k in keys) and figures["fd"] > 0, figures
    assert 1.0 <= figures["inception_score"] <= 1008 and figures["num_reference"] == 12
