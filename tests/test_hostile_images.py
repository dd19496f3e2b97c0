"""Hostile image input to train.autoencoder, train.vae, train.gan, train.ddpm and train.pca, as real processes
(tests/cli_cases.py).

The table: image folders that cannot give both splits an image (fewer than 10 files, too few that decode), files
that are not what they seem (a dangling symbolic link, a FIFO, pixels with no one mapping to 0..255), names with
brackets (names, not patterns), checks that need the decoded images (the U-Net's halvings, the labels, the test split
for sample quality, mixed sizes), .npz members whose header claims more than the file holds or that hold raw bytes or
objects, and a TFDS download whose host cannot be reached: each one `error:` line, exit code 2, nothing created, and
no decoded folder cache or download left in data_dir (check_refused). Then what is not refused: a folder rewritten
with other pixels at the same size and mtime is new data, so the resume of a run trained on the old pixels is
refused, and the run that trained skipped a dangling link with one warning line and followed a symlinked class
folder.
"""

from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest
from PIL import Image

from tests.cli_cases import Case, case, check_refused, run_cli, run_selected, snapshot

UNREACHABLE = (("ZOO_DOWNLOAD_HOST", "127.0.0.1:1"),)  # a closed local port: the probe is refused at once
UNRESOLVABLE = (("ZOO_DOWNLOAD_HOST", "downloads.invalid:443"),)  # .invalid never resolves (RFC 6761)
NO_SAMPLES = "--config.eval.num_samples=0"
HOLDS_NINE = "holds 9 image file(s), which leave the held-out split empty"
DANGLING = ["dangling", "gone.png is a symbolic link to /nonexistent/picture.png, which does not exist"]

FOLDER_CASES = [
    # too few images for a held-out split: refused before anything is read or written
    case("pca-folder-nine-images", "pca", ["--config.dataset=images:{tmp}/nine"], ["nine", HOLDS_NINE, "at least 10"]),
    case("ddpm-folder-nine-images", "ddpm", ["--config.dataset=images:{tmp}/nine"], [HOLDS_NINE]),
    case("autoencoder-folder-three-decode", "autoencoder",
         ["--config.dataset=images:{tmp}/mostly_broken", "--config.skip_bad_images=True"],
         ["mostly_broken", "3 image(s) could be decoded"]),
    # files that are not what they seem
    case("vae-folder-dangling-link", "vae", ["--config.dataset=images:{tmp}/dangling"], DANGLING),
    case("gan-folder-dangling-link", "gan", ["--config.dataset=images:{tmp}/dangling"], DANGLING),
    case("pca-folder-dangling-link", "pca", ["--config.dataset=images:{tmp}/dangling"], DANGLING),
    case("autoencoder-folder-fifo", "autoencoder", ["--config.dataset=images:{tmp}/fifo"],
         ["fifo", "pipe.png is not a regular file", "config.skip_bad_images=True"]),
    case("ddpm-folder-fifo", "ddpm", ["--config.dataset=images:{tmp}/fifo"], ["pipe.png is not a regular file"]),
    case("vae-folder-float-pixels", "vae", ["--config.dataset=images:{tmp}/float"],
         ["float.png cannot be decoded (mode F (32-bit float)", "accepted: 8- or 16-bit grey"]),
    case("gan-folder-32-bit-pixels", "gan", ["--config.dataset=images:{tmp}/int32"],
         ["int32.png cannot be decoded (mode I pixels in [70000, 70000], outside the 16-bit range 0..65535)"]),
    case("pca-folder-brackets-are-a-name", "pca", ["--config.dataset=images:{tmp}/br[1]"], ["br[1]", HOLDS_NINE]),
    # checks that need the decoded images: refused before the folder's cache is written
    case("ddpm-folder-halvings", "ddpm", ["--config.dataset=images:{tmp}/odd"], ["halves the 9x9 images 1 times"]),
    case("ddpm-folder-num-classes", "ddpm", ["--config.dataset=images:{tmp}/labelled", "--config.model.num_classes=5"],
         ["config.model.num_classes=5 does not match", "which has 2 classes"]),
    case("vae-folder-conditional-unlabelled", "vae",
         ["--config.dataset=images:{tmp}/twelve", "--config.conditional=True"],
         ["config.conditional=True needs labelled data", "twelve", "has no labels"]),
    case("vae-folder-test-split-too-small", "vae", ["--config.dataset=images:{tmp}/twelve"],
         ["the test split has 1 images", "config.eval.pr_k + 1 = 4"]),
    case("gan-folder-test-split-too-small", "gan", ["--config.dataset=images:{tmp}/twelve"],
         ["the test split has 1 images"]),
    case("autoencoder-folder-test-split-too-small", "autoencoder", ["--config.dataset=images:{tmp}/twelve"],
         ["the test split has 1 images"]),
    case("pca-folder-k-above-rank", "pca", ["--config.dataset=images:{tmp}/twelve", "--config.k=500", NO_SAMPLES],
         ["config.k=500 must be at most min(train images, pixels)"]),
    case("pca-folder-density-components", "pca",
         ["--config.dataset=images:{tmp}/twelve", "--config.density.kind=gmm", "--config.density.num_components=50",
          NO_SAMPLES],
         ["config.density.num_components=50 exceeds the"]),
    case("gan-folder-mixed-sizes", "gan", ["--config.dataset=images:{tmp}/sizes", NO_SAMPLES],
         ["images of 2 sizes (8x8, 10x10, ...)", "set config.image_size"]),
]  # fmt: skip

NPZ_CASES = [
    case("vae-npz-header-claims-more", "vae", ["--config.dataset=npz:{tmp}/claims.npz"],
         ["claims.npz", "the header of 'x' claims shape (10000000000, 8, 8) of uint8 (640,000,000,000 bytes)"]),
    case("ddpm-npz-deflated-header-claims-more", "ddpm", ["--config.dataset=npz:{tmp}/claims_deflated.npz"],
         ["claims_deflated.npz", "claims shape (10000000000, 8, 8)"]),
    case("pca-npz-labels-claim-more", "pca", ["--config.dataset=npz:{tmp}/claims_y.npz"],
         ["claims_y.npz", "the header of 'y' claims shape (10000000000,)"]),
    case("gan-npz-raw-member", "gan", ["--config.dataset=npz:{tmp}/raw.npz"],
         ["raw.npz", "'x' is not an array (its member 'x' holds raw bytes)"]),
    case("autoencoder-npz-raw-labels", "autoencoder", ["--config.dataset=npz:{tmp}/raw_y.npz"],
         ["raw_y.npz", "'y' is not an array (its member 'y' holds raw bytes)"]),
    case("vae-npz-objects", "vae", ["--config.dataset=npz:{tmp}/objects.npz"], ["objects.npz", "holds Python objects"]),
    case("ddpm-npz-brackets-are-a-name", "ddpm", ["--config.dataset=npz:{tmp}/br/x[1].npz"],
         ["x[1].npz", "'x' has dtype float32"]),
]  # fmt: skip

OFFLINE = "is not prepared in {tmp}/tfds and cannot be downloaded"
TFDS_CASES = [
    case("vae-tfds-host-unreachable", "vae", ["--config.dataset=mnist"],
         ["'mnist'", OFFLINE, "127.0.0.1:1 cannot be reached (ConnectionRefusedError", "--config.download=False"],
         env=UNREACHABLE),
    case("pca-tfds-host-unreachable", "pca", ["--config.dataset=fashion_mnist"], ["'fashion_mnist'", OFFLINE],
         env=UNREACHABLE),
    case("ddpm-tfds-host-unresolvable", "ddpm", ["--config.dataset=mnist"],
         ["downloads.invalid:443 cannot be reached"], env=UNRESOLVABLE),
    case("gan-tfds-host-unreachable", "gan", ["--config.dataset=cifar10"], ["'cifar10'", OFFLINE], env=UNREACHABLE),
]  # fmt: skip

CLI_CASES = FOLDER_CASES + NPZ_CASES + TFDS_CASES


# ----------------------------------------------------------------------------- the table's files


def write_bmps(root: pathlib.Path, n: int, seed: int = 0, shape=(8, 8)) -> np.ndarray:
    """n BMPs of seeded grey pixels (a BMP's size depends on its shape only); returns the pixels."""
    root.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)
    for i, image in enumerate(x):
        Image.fromarray(image).save(root / f"{i:02d}.bmp")
    return x


def _npy(array: np.ndarray, claimed_shape=None) -> bytes:
    """The .npy bytes of array, its header claiming claimed_shape."""
    import io

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    raw = buf.getvalue()
    return raw.replace(str(array.shape).encode(), str(claimed_shape).encode(), 1) if claimed_shape else raw


def _zip(path: pathlib.Path, members: dict, compression: int = 0) -> None:
    import zipfile

    with zipfile.ZipFile(path, "w", compression) as z:
        for name, payload in members.items():
            z.writestr(name, payload)


def _write_folders(tmp: pathlib.Path) -> None:
    write_bmps(tmp / "nine", 9)
    write_bmps(tmp / "br[1]", 9)
    write_bmps(tmp / "br1", 20)  # what the name br[1], taken as a pattern, would match
    write_bmps(tmp / "mostly_broken", 3)
    for i in range(9):
        (tmp / "mostly_broken" / f"broken{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n but then nothing")
    write_bmps(tmp / "dangling", 12)
    os.symlink("/nonexistent/picture.png", tmp / "dangling" / "gone.png")
    write_bmps(tmp / "fifo", 12)
    os.mkfifo(tmp / "fifo" / "pipe.png")
    write_bmps(tmp / "float", 12)
    Image.fromarray(np.full((8, 8), 0.5, np.float32)).save(tmp / "float" / "float.png", format="TIFF")
    write_bmps(tmp / "int32", 12)
    Image.fromarray(np.full((8, 8), 70000, np.int32)).save(tmp / "int32" / "int32.png", format="TIFF")
    write_bmps(tmp / "odd", 20, shape=(9, 9))
    write_bmps(tmp / "labelled" / "cats", 10)
    write_bmps(tmp / "labelled" / "dogs", 10, seed=1)
    write_bmps(tmp / "twelve", 12)
    write_bmps(tmp / "sizes", 12)
    for i, image in enumerate(write_bmps(tmp / "wide", 6, shape=(10, 10))):
        Image.fromarray(image).save(tmp / "sizes" / f"wide{i}.bmp")


def _write_npz_files(tmp: pathlib.Path) -> None:
    x = np.random.default_rng(0).integers(0, 256, (10, 8, 8), dtype=np.uint8)
    _zip(tmp / "claims.npz", {"x.npy": _npy(x, (10**10, 8, 8))})
    _zip(tmp / "claims_deflated.npz", {"x.npy": _npy(x, (10**10, 8, 8))}, compression=8)
    _zip(tmp / "claims_y.npz", {"x.npy": _npy(x), "y.npy": _npy(np.zeros(10, np.int64), (10**10,))})
    _zip(tmp / "raw.npz", {"x": x.tobytes()})
    _zip(tmp / "raw_y.npz", {"x.npy": _npy(x), "y": bytes(10)})
    _zip(tmp / "objects.npz", {"x.npy": _npy(np.array([None] * 10, object))})
    (tmp / "br").mkdir()
    np.savez(tmp / "br" / "x[1].npz", x=x.astype(np.float32))
    np.savez(tmp / "br" / "x1.npz", x=x)  # what the name x[1].npz, taken as a pattern, would match


@pytest.fixture(scope="module")
def outcomes(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile_images")
    _write_folders(tmp)
    _write_npz_files(tmp)
    return run_selected(request, str(tmp), {})


@pytest.mark.parametrize("c", CLI_CASES)
def test_cli_refuses_hostile_images(c: Case, outcomes):
    check_refused(c, outcomes[c.id], outcomes["_tmp"])


def test_the_table_covers_the_five_image_modules():
    modules = [p.values[0].module for p in CLI_CASES]
    assert {m: modules.count(m) for m in set(modules)} == {"autoencoder": 4, "vae": 7, "gan": 6, "ddpm": 7, "pca": 7}
    assert len({p.values[0].id for p in CLI_CASES}) == len(CLI_CASES)


# ----------------------------------------------------------------------------- a folder rewritten under a run

VAE = ["--config=train/vae.py:smoke", NO_SAMPLES, "--config.skip_bad_images=True"]


def test_a_resume_on_a_folder_rewritten_at_the_same_size_and_mtime_is_refused(tmp_path):
    """The issue's case: a folder's images rewritten with other pixels at the same sizes and mtimes trained on the old
    pixels. The first run skips a dangling link (one warning line) and follows a symlinked class folder; the resume
    on the rewritten folder is one line, exit 2, its workdir and the folder caches in data_dir untouched."""
    folder, data_dir, workdir = tmp_path / "pets", tmp_path / "data", str(tmp_path / "run")
    write_bmps(tmp_path / "elsewhere" / "cats", 10, seed=0)
    write_bmps(folder / "dogs", 10, seed=1)
    (folder / "cats").symlink_to(tmp_path / "elsewhere" / "cats", target_is_directory=True)
    os.symlink("/nonexistent/picture.png", folder / "dogs" / "gone.png")
    args = [*VAE, f"--config.dataset=images:{folder}", f"--config.data_dir={data_dir}"]
    rc, out, err = run_cli("vae", workdir, args, str(tmp_path))
    assert rc == 0 and "Traceback" not in err, err[-3000:]
    assert [line for line in out.splitlines() if line.startswith("warning:")] == [
        f"warning: images:{folder}: skipped 1 file(s) that cannot be read or decoded"
    ]
    files = [p for p in (tmp_path / "elsewhere" / "cats").iterdir()] + list((folder / "dogs").glob("*.bmp"))
    stats = {p: os.stat(p) for p in files}
    write_bmps(tmp_path / "elsewhere" / "cats", 10, seed=2)
    write_bmps(folder / "dogs", 10, seed=3)
    for p, st in stats.items():
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert os.stat(p).st_size == st.st_size
    before, caches = snapshot(workdir), snapshot(str(data_dir))
    rc, out, err = run_cli("vae", workdir, [*args, "--config.num_steps=6"], str(tmp_path))
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: the data differ"), err[-3000:]
    assert "sha256 was" in lines[0]
    assert snapshot(workdir) == before and snapshot(str(data_dir)) == caches
