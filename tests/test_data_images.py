"""train/data/images.py on files the tests write: images:DIR folders (class subfolders, a broken file, mixed
sizes, the decoded cache), image_size (resize the shorter side, centre-crop) and random_flip."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from tests.configs import smoke_config
from train import vae as train_vae
from train.core.errors import DataError
from train.data import images as data


def write_folder(root, sizes=((12, 10), (10, 12), (16, 16)), per_class=10, broken=True):
    """cats/ and dogs/ of PNGs and JPEGs of several sizes (cats dark, dogs bright) and, optionally, one broken."""
    rng = np.random.default_rng(0)
    for label, name in enumerate(("cats", "dogs")):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            h, w = sizes[i % len(sizes)]
            x = rng.integers(0, 100, (h, w), dtype=np.uint8) + 150 * label
            Image.fromarray(x).save(root / name / f"{i:02d}.{'png' if i % 2 else 'jpg'}")
    if broken:
        (root / "dogs" / "99.png").write_bytes(b"\x89PNG\r\n\x1a\n but then nothing")
    return root


def test_a_folder_with_a_broken_file_is_refused_naming_it(tmp_path):
    root = write_folder(tmp_path / "pets")
    with pytest.raises(DataError, match=r"dogs/99\.png cannot be decoded .* config\.skip_bad_images=True"):
        data.load_images(f"images:{root}", str(tmp_path / "tfds"), image_size=8)


def test_a_folder_is_decoded_once_with_labels_from_its_subfolders(tmp_path, capsys, monkeypatch):
    root = write_folder(tmp_path / "pets")
    ds = data.load_images(f"images:{root}", str(tmp_path / "tfds"), image_size=8, skip_bad_images=True)
    assert "skipped 1 file(s)" in capsys.readouterr().out
    assert ds.image_shape == (8, 8, 1) and ds.num_classes == 2  # grey files: one channel
    assert len(ds.train) + len(ds.test) == 20 and len(ds.test) == 2  # every 10th file held out
    x = data.as_arrays(ds.train)
    # cats (label 0, sorted first) are dark, dogs bright: the labels follow the subfolders
    assert x["image"][x["label"] == 0].mean() < 120 < x["image"][x["label"] == 1].mean()
    colour = data.load_images(f"images:{root}", str(tmp_path / "tfds"), image_size=8, channels=3, skip_bad_images=True)
    assert colour.image_shape == (8, 8, 3)  # another cache entry (channels are part of its key)
    monkeypatch.setattr(data, "_decode_folder", lambda *a: pytest.fail("decoded again"))
    again = data.load_images(f"images:{root}", str(tmp_path / "tfds"), image_size=8, skip_bad_images=True)
    np.testing.assert_array_equal(data.as_arrays(again.train)["image"], x["image"])
    assert again.fingerprint == ds.fingerprint


def test_mixed_sizes_need_an_image_size(tmp_path):
    root = write_folder(tmp_path / "pets", broken=False)
    with pytest.raises(DataError, match=r"images of 3 sizes .* set config\.image_size"):
        data.load_images(f"images:{root}", str(tmp_path / "tfds"))


def test_an_unlabelled_folder_and_loose_files(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(10):
        Image.fromarray(np.full((8, 8, 3), 20 * i, np.uint8)).save(flat / f"{i}.bmp")
    ds = data.load_images(f"images:{flat}", str(tmp_path / "tfds"))
    assert ds.num_classes == 1 and ds.image_shape == (8, 8, 3)
    (flat / "sub").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(flat / "sub" / "x.png")
    with pytest.raises(DataError, match="lies beside the class subfolders"):
        data.load_images(f"images:{flat}", str(tmp_path / "tfds"))


def test_resize_and_crop_takes_the_shorter_side_then_the_centre():
    x = np.zeros((28, 40, 1), np.uint8)
    x[10:18, 16:24] = 255  # a centred square
    y = data.resize_and_crop(x, 32)
    assert y.shape == (32, 32, 1)
    # 28 -> 32 scales by 32/28: the square (8 px) becomes ~9 px, still centred
    rows, cols = np.nonzero(y[..., 0] > 127)
    assert abs(rows.mean() - 15.5) < 1 and abs(cols.mean() - 15.5) < 1 and 8 <= rows.max() - rows.min() + 1 <= 11
    assert data.resize_and_crop(y, 32) is y


def test_image_size_resizes_an_npz_dataset(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.random.default_rng(0).integers(0, 256, (20, 28, 28), dtype=np.uint8))
    ds = data.load_images(f"npz:{tmp_path / 'd.npz'}", image_size=32)
    assert ds.image_shape == (32, 32, 1) and data.as_arrays(ds.test)["image"].shape[1:] == (32, 32, 1)
    assert ds.fingerprint["image_size"] == 32


def test_random_flip_mirrors_about_half_of_each_batch_deterministically(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.integers(0, 256, (64, 8, 8), dtype=np.uint8))
    source = data.load_images(f"npz:{tmp_path / 'd.npz'}").train
    plain = next(data.batches(source, 32, seed=3))["image"]
    flipped = next(data.batches(source, 32, seed=3, flip=True))["image"]
    mirrored = np.all(flipped == plain[:, :, ::-1], axis=(1, 2, 3))
    same = np.all(flipped == plain, axis=(1, 2, 3))
    assert np.all(mirrored | same) and 8 <= mirrored.sum() <= 24
    np.testing.assert_array_equal(next(data.batches(source, 32, seed=3, flip=True))["image"], flipped)


@pytest.mark.parametrize("streamed", [False, True])
def test_more_read_threads_give_the_same_batches_in_the_same_order(streamed, tmp_path, monkeypatch):
    """An accelerator's host reads with up to 8 grain threads (parallel.input_threads): the same batches as one
    thread, in memory and streamed, flips included."""
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "d.npz", x=rng.integers(0, 256, (96, 6, 6, 3), dtype=np.uint8))
    source = data.load_images(f"npz:{tmp_path / 'd.npz'}").train
    if streamed:
        monkeypatch.setattr(data, "IN_MEMORY_BYTES", 0)
    one, many = (data.batches(source, 16, seed=5, flip=True, num_threads=n) for n in (1, 4))
    for _ in range(12):  # two epochs
        a, b = next(one), next(many)
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["label"], b["label"])


def test_a_vae_trains_on_an_image_folder_with_flips(data_dir, tmp_path):
    root = write_folder(tmp_path / "pets", broken=False)
    c = smoke_config(
        train_vae,
        data_dir,
        dataset=f"images:{root}",
        image_size=8,
        random_flip=True,
        num_steps=2,
        **{"eval.num_samples": 0, "eval.test_examples": 2},
    )
    figures = train_vae.run(c, str(tmp_path / "w"))
    assert np.isfinite(figures["loss"])
    assert os.path.exists(os.path.join(data_dir, data.FOLDER_CACHE))


# ----------------------------------------------------------------------------- TFDS by name: download and prepare


def _fake_builder(dataset_name: str, behaviour: str):
    """A TFDS builder registered as `name` whose preparation works, needs TensorFlow, or has no internet."""
    import tensorflow_datasets as tfds

    class Fake(tfds.core.GeneratorBasedBuilder):
        name = dataset_name  # registered under this name when the class is made
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            features = {
                "image": tfds.features.Tensor(shape=(4, 4, 1), dtype=np.uint8),
                "label": tfds.features.ClassLabel(num_classes=2),
            }
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features))

        def _split_generators(self, dl_manager):
            if behaviour == "offline":
                raise ConnectionError("Failed to resolve 'storage.googleapis.com'")
            if behaviour == "needs_tf":
                raise ModuleNotFoundError("No module named 'tensorflow'", name="tensorflow")
            return {"train": self._generate_examples(12), "test": self._generate_examples(4)}

        def _generate_examples(self, n):
            for i in range(n):
                yield i, {"image": np.full((4, 4, 1), i, np.uint8), "label": i % 2}

    return Fake


@pytest.fixture(scope="module")
def fake_builders():
    """The builders, their downloads not probed (data.refuse_unreachable): they need no network."""
    with pytest.MonkeyPatch.context() as m:
        m.setenv(data.DOWNLOAD_HOST_VARIABLE, "")
        yield {b: _fake_builder(f"zoo_fake_{b}", b) for b in ("works", "offline", "needs_tf")}


def test_a_tfds_name_is_downloaded_and_prepared_once(fake_builders, tmp_path):
    ds = data.load_images("zoo_fake_works", str(tmp_path))
    assert ds.image_shape == (4, 4, 1) and ds.num_classes == 2 and (len(ds.train), len(ds.test)) == (12, 4)
    assert any(p.suffix == ".array_record" or "array_record" in p.name for p in tmp_path.rglob("*"))
    again = data.load_images("zoo_fake_works", str(tmp_path), download=False)  # prepared: no download needed
    assert again.fingerprint == ds.fingerprint


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("zoo_fake_offline", "could not be downloaded and prepared in {tmp} (ConnectionError: Failed to resolve"),
        ("zoo_fake_needs_tf", "needs TensorFlow to prepare (tensorflow); pip install 'jax-zoo[tf]'"),
    ],
)
def test_a_tfds_name_that_cannot_be_prepared_is_one_line(fake_builders, tmp_path, name, fragment):
    with pytest.raises(DataError) as e:
        data.load_images(name, str(tmp_path))
    assert fragment.replace("{tmp}", str(tmp_path)) in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(DataError, match=r"is not prepared as array_record in .* config\.download=False"):
        data.load_images(name, str(tmp_path), download=False)


def test_a_dataset_prepared_as_tfrecord_is_converted_once_and_read(fake_builders, tmp_path, capsys):
    """A TFDS dataset that tfds.load prepared in its default TFRecord format: its shards are framed as TFRecord
    here by the test (from an ArrayRecord preparation: both hold the same serialized examples); the loader
    converts them to ArrayRecord in place once, without TensorFlow, and reads the same examples."""
    import glob
    import json
    import struct

    from array_record.python.array_record_module import ArrayRecordReader

    reference = data.load_images("zoo_fake_works", str(tmp_path / "a"))
    (dataset_dir,) = glob.glob(str(tmp_path / "a" / "zoo_fake_works" / "*"))
    for shard in glob.glob(os.path.join(dataset_dir, "*.array_record-*")):
        reader = ArrayRecordReader(shard)
        records = reader.read_all()
        reader.close()
        with open(shard.replace(".array_record-", ".tfrecord-"), "wb") as f:
            for r in records:
                f.write(struct.pack("<Q", len(r)) + bytes(4) + r + bytes(4))
        os.remove(shard)
    info_path = os.path.join(dataset_dir, "dataset_info.json")
    info = json.load(open(info_path))
    json.dump({**info, "fileFormat": "tfrecord"}, open(info_path, "w"))
    capsys.readouterr()
    ds = data.load_images("zoo_fake_works", str(tmp_path / "a"), download=False)
    assert "Converting the TFRecord dataset" in capsys.readouterr().out
    for split in ("train", "test"):
        got, want = data.as_arrays(getattr(ds, split)), data.as_arrays(getattr(reference, split))
        np.testing.assert_array_equal(np.sort(got["image"].ravel()), np.sort(want["image"].ravel()))
    data.load_images("zoo_fake_works", str(tmp_path / "a"), download=False)
    assert "Converting" not in capsys.readouterr().out  # once


def test_a_truncated_tfrecord_shard_is_named(tmp_path):
    path = tmp_path / "x.tfrecord-00000-of-00001"
    path.write_bytes(struct_record(b"abc") + struct_record(b"defgh")[:9])
    with pytest.raises(DataError, match="x.tfrecord-00000-of-00001 is a truncated TFRecord file"):
        list(data.tfrecord_records(str(path)))
    path.write_bytes(struct_record(b"abc") + struct_record(b"defgh"))
    assert list(data.tfrecord_records(str(path))) == [b"abc", b"defgh"]


def struct_record(payload: bytes) -> bytes:
    import struct

    return struct.pack("<Q", len(payload)) + bytes(4) + payload + bytes(4)


# ----------------------------------------------------------------------------- pixel modes: every PIL mode to uint8
# Each mode's pixels against a reference computed here with numpy from the raw array the image was made of.

RNG = np.random.default_rng(7)
GREY = RNG.integers(0, 256, (6, 5), dtype=np.uint8)
ALPHA = RNG.integers(1, 256, (6, 5), dtype=np.uint8)
COLOUR = RNG.integers(0, 256, (6, 5, 3), dtype=np.uint8)
PALETTE = RNG.integers(0, 256, (256, 3), dtype=np.uint8)
WIDE = RNG.integers(0, 1 << 16, (6, 5)).astype(np.uint16)
CMYK = RNG.integers(0, 256, (6, 5, 4), dtype=np.uint8)


def _raw(mode: str, array: np.ndarray) -> Image.Image:
    return Image.frombytes(mode, array.shape[1::-1], np.ascontiguousarray(array).tobytes())


def _paletted(mode: str, array: np.ndarray) -> Image.Image:
    im = _raw(mode, array)
    im.putpalette(PALETTE.ravel().tolist())
    return im


def _ycbcr_to_rgb(ycc):  # JFIF (ITU-R BT.601, full range)
    y, cb, cr = (ycc[..., i].astype(float) for i in range(3))
    rgb = np.stack([y + 1.402 * (cr - 128), y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128), y + 1.772 * (cb - 128)])
    return np.clip(np.moveaxis(rgb, 0, -1), 0, 255)


def _hsv_to_rgb(hsv):
    import colorsys

    return np.array([[colorsys.hsv_to_rgb(*(p / 255.0)) for p in row] for row in hsv]) * 255


# mode -> (the image, its reference uint8 pixels, the tolerance of PIL's fixed-point colour conversions)
MODES = {
    "1": (Image.fromarray(GREY > 127), (GREY > 127) * 255, 0),
    "L": (_raw("L", GREY), GREY, 0),
    "LA": (_raw("LA", np.stack([GREY, ALPHA], -1)), GREY, 0),  # alpha dropped
    "La": (
        _raw("La", np.stack([np.minimum(GREY, ALPHA), ALPHA], -1)),
        np.minimum(GREY, ALPHA).astype(int) * 255 // ALPHA,
        0,
    ),
    "P": (_paletted("P", GREY), PALETTE[GREY], 0),
    "PA": (_paletted("PA", np.stack([GREY, ALPHA], -1)), PALETTE[GREY], 0),
    "RGB": (_raw("RGB", COLOUR), COLOUR, 0),
    "RGBA": (_raw("RGBA", np.dstack([COLOUR, ALPHA])), COLOUR, 0),
    "RGBX": (_raw("RGBX", np.dstack([COLOUR, ALPHA])), COLOUR, 0),
    "CMYK": (_raw("CMYK", CMYK), np.round((255 - CMYK[..., :3] * 1.0) * (255 - CMYK[..., 3:] * 1.0) / 255), 0),
    "YCbCr": (_raw("YCbCr", COLOUR), _ycbcr_to_rgb(COLOUR), 1),
    "HSV": (_raw("HSV", COLOUR), _hsv_to_rgb(COLOUR), 1),
    "I;16": (_raw("I;16", WIDE.astype("<u2")), WIDE >> 8, 0),
    "I;16L": (_raw("I;16L", WIDE.astype("<u2")), WIDE >> 8, 0),
    "I;16B": (_raw("I;16B", WIDE.astype(">u2")), WIDE >> 8, 0),
    "I;16N": (_raw("I;16N", WIDE.astype("=u2")), WIDE >> 8, 0),
    "I": (Image.fromarray(WIDE.astype(np.int32)), WIDE >> 8, 0),  # 16-bit values in a 32-bit image: as 16-bit
}


@pytest.mark.parametrize("mode", sorted(MODES))
def test_each_pil_mode_decodes_to_uint8_as_its_reference(mode):
    im, reference, tolerance = MODES[mode]
    assert im.mode == mode
    got = data.pixels(im)
    assert got.dtype == np.uint8 and got.shape == np.shape(reference)
    np.testing.assert_allclose(got, reference, atol=tolerance + 0.5 if tolerance else 0)


@pytest.mark.parametrize(
    "im, fragment",
    [
        (Image.fromarray(np.full((4, 4), 0.5, np.float32)), r"mode F \(32-bit float\)"),
        (Image.fromarray(np.full((4, 4), 70000, np.int32)), r"mode I pixels in \[70000, 70000\], outside"),
        (Image.fromarray(np.full((4, 4), -1, np.int32)), r"mode I pixels in \[-1, -1\]"),
        (Image.new("LAB", (4, 4)), "mode LAB"),
    ],
)
def test_modes_without_one_mapping_to_0_255_are_refused_in_one_line(im, fragment):
    with pytest.raises(data.UnsupportedPixels, match=fragment) as e:
        data.pixels(im)
    assert "\n" not in str(e.value)


def test_channels_are_made_by_the_601_luma_or_by_repeating_the_grey():
    grey = data.with_channels(COLOUR, 1)
    reference = COLOUR @ np.array([0.299, 0.587, 0.114])
    assert grey.shape == (6, 5, 1) and np.abs(grey[..., 0] - reference).max() <= 0.5 + 1e-9
    np.testing.assert_array_equal(data.with_channels(GREY, 3), np.stack([GREY] * 3, -1))
    np.testing.assert_array_equal(data.with_channels(GREY, 1)[..., 0], GREY)


def test_a_folder_of_16_bit_pngs_is_scaled_not_clipped(tmp_path):
    """The issue's case: 16-bit grey PNGs (mode I;16) came out almost all 255 (PIL's convert('L') clips)."""
    root = tmp_path / "wide"
    root.mkdir()
    wide = RNG.integers(0, 1 << 16, (12, 8, 8)).astype(np.uint16)
    for i, x in enumerate(wide):
        _raw("I;16", x.astype("<u2")).save(root / f"{i:02d}.png")
    assert Image.open(root / "00.png").mode == "I;16"
    ds = data.load_images(f"images:{root}", str(tmp_path / "tfds"))
    order = np.flatnonzero(np.arange(12) % 10 != 9)
    np.testing.assert_array_equal(data.as_arrays(ds.train)["image"][..., 0], wide[order] >> 8)


def test_a_palette_png_with_transparency_decodes_without_a_warning(tmp_path):
    import warnings

    root = tmp_path / "icons"
    root.mkdir()
    for i in range(10):
        _paletted("P", np.roll(GREY, i)).save(root / f"{i}.png", transparency=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PIL warns where a palette with transparency is converted to RGB
        ds = data.load_images(f"images:{root}", str(tmp_path / "tfds"))
    np.testing.assert_array_equal(data.as_arrays(ds.test)["image"][0], PALETTE[np.roll(GREY, 9)])


# ----------------------------------------------------------------------------- the folder cache: keyed by content


def write_bmps(root, n=12, seed=0, shape=(8, 8)):
    """n BMPs (their size depends on the image size only) of seeded grey pixels; returns the pixels."""
    root.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)
    for i, image in enumerate(x):
        Image.fromarray(image).save(root / f"{i:02d}.bmp")
    return x


def test_a_folder_rewritten_with_other_pixels_at_the_same_size_and_mtime_is_decoded_again(tmp_path):
    root, cache = tmp_path / "shots", str(tmp_path / "tfds")
    before = write_bmps(root, seed=0)
    first = data.load_images(f"images:{root}", cache)
    stats = {p.name: os.stat(p) for p in root.iterdir()}
    after = write_bmps(root, seed=1)
    for p in root.iterdir():
        os.utime(p, ns=(stats[p.name].st_atime_ns, stats[p.name].st_mtime_ns))
        assert (os.stat(p).st_size, os.stat(p).st_mtime_ns) == (stats[p.name].st_size, stats[p.name].st_mtime_ns)
    again = data.load_images(f"images:{root}", cache)
    assert again.fingerprint["sha256"] != first.fingerprint["sha256"] and again.content_key != first.content_key
    np.testing.assert_array_equal(data.as_arrays(first.test)["image"][..., 0], before[9:10])
    np.testing.assert_array_equal(data.as_arrays(again.test)["image"][..., 0], after[9:10])


def _truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


# damage -> (the cache file damaged, how, the file set aside: the marker info.json where the damage is a disagreement)
DAMAGES = {
    "images.npy truncated": ("images.npy", _truncate, "images.npy"),
    "info.json garbage": ("info.json", lambda p: open(p, "wb").write(b"\x00{not json"), "info.json"),
    "labels.npy missing": ("labels.npy", os.remove, "info.json"),
    "labels.npy of other images": ("labels.npy", lambda p: np.save(p, np.zeros(3, np.int32)), "info.json"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_folder_cache_is_set_aside_and_rebuilt_the_same(damage, tmp_path, capsys):
    root, data_dir = tmp_path / "shots", str(tmp_path / "tfds")
    write_bmps(root)
    first = data.as_arrays(data.load_images(f"images:{root}", data_dir).train)
    (cache,) = (tmp_path / "tfds" / data.FOLDER_CACHE).iterdir()
    damaged, hurt, aside = DAMAGES[damage]
    hurt(str(cache / damaged))
    capsys.readouterr()
    rebuilt = data.as_arrays(data.load_images(f"images:{root}", data_dir).train)
    warnings = [line for line in capsys.readouterr().out.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and f"{cache / aside} is damaged" in warnings[0], warnings
    assert (cache / f"{aside}.damaged").exists()
    for key in ("image", "label"):
        np.testing.assert_array_equal(rebuilt[key], first[key])
    data.load_images(f"images:{root}", data_dir)
    assert "warning" not in capsys.readouterr().out  # rebuilt whole


def test_a_symlinked_class_folder_is_followed_and_a_link_loop_is_not_walked_forever(tmp_path):
    elsewhere, root = tmp_path / "elsewhere", tmp_path / "pets"
    cats = write_bmps(elsewhere / "cats", n=10, seed=0)
    write_bmps(root / "dogs", n=10, seed=1)
    (root / "cats").symlink_to(elsewhere / "cats", target_is_directory=True)
    (root / "dogs" / "again").symlink_to(root, target_is_directory=True)  # a loop back to the top
    ds = data.load_images(f"images:{root}", str(tmp_path / "tfds"))
    assert ds.num_classes == 2 and len(ds.train) + len(ds.test) == 20
    x = data.as_arrays(ds.train)
    np.testing.assert_array_equal(x["image"][x["label"] == 0][..., 0], cats[:9])  # cats: label 0, files 00..08


def test_a_dangling_symlink_is_one_line_or_with_skip_bad_images_skipped_with_a_warning(tmp_path, capsys):
    root, data_dir = tmp_path / "shots", str(tmp_path / "tfds")
    write_bmps(root, n=12)
    (root / "gone.png").symlink_to(tmp_path / "nowhere.png")
    with pytest.raises(DataError, match=r"gone\.png is a symbolic link to .*nowhere\.png, which does not exist"):
        data.load_images(f"images:{root}", data_dir)
    ds = data.load_images(f"images:{root}", data_dir, skip_bad_images=True)
    assert "warning: images:" in capsys.readouterr().out and len(ds.train) + len(ds.test) == 12


def test_a_cache_that_skipped_a_file_does_not_let_a_strict_run_pass(tmp_path):
    root, data_dir = tmp_path / "shots", str(tmp_path / "tfds")
    write_bmps(root, n=12)
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n but then nothing")
    data.load_images(f"images:{root}", data_dir, skip_bad_images=True)
    with pytest.raises(DataError, match=r"broken\.png cannot be read or decoded \(it was skipped before\)"):
        data.load_images(f"images:{root}", data_dir)


def test_brackets_in_folder_and_file_names_are_names_not_patterns(tmp_path):
    x = write_bmps(tmp_path / "shots[1]", n=10, seed=0)
    write_bmps(tmp_path / "shots1", n=20, seed=1)  # what the pattern shots[1] would match
    os.replace(tmp_path / "shots[1]" / "00.bmp", tmp_path / "shots[1]" / "[0].bmp")
    ds = data.load_images(f"images:{tmp_path / 'shots[1]'}", str(tmp_path / "tfds"))
    assert len(ds.train) + len(ds.test) == 10
    np.testing.assert_array_equal(data.as_arrays(ds.train)["image"][0, ..., 0], x[1])  # [0].bmp sorts last
    np.savez(tmp_path / "x[1].npz", x=x)
    np.savez(tmp_path / "x1.npz", x=x[:5])
    assert len(data.load_images(f"npz:{tmp_path / 'x[1].npz'}").train) == 9


def test_a_folder_cache_waits_for_save_cache(tmp_path, monkeypatch):
    root, data_dir = tmp_path / "shots", tmp_path / "tfds"
    write_bmps(root)
    ds = data.load_images(f"images:{root}", str(data_dir), cache=False)
    assert not data_dir.exists() and len(ds.train) == 11
    data.save_cache(ds)
    monkeypatch.setattr(data, "_decode_folder", lambda *a: pytest.fail("decoded again"))
    again = data.load_images(f"images:{root}", str(data_dir), cache=False)
    np.testing.assert_array_equal(data.as_arrays(again.train)["image"], data.as_arrays(ds.train)["image"])
    assert again.unsaved_cache is None


# ----------------------------------------------------------------------------- npz members, read from their headers


def _zip_member(path, name: str, payload: bytes, compression=0):
    import zipfile

    with zipfile.ZipFile(path, "w", compression) as z:
        z.writestr(name, payload)


def _npy_bytes(array, claimed_shape=None) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    raw = buf.getvalue()
    return raw.replace(str(array.shape).encode(), str(claimed_shape).encode(), 1) if claimed_shape else raw


def test_an_npz_member_without_the_npy_suffix_is_read_when_it_holds_an_array(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (10, 4, 4), dtype=np.uint8)
    _zip_member(tmp_path / "plain.npz", "x", _npy_bytes(x))
    np.testing.assert_array_equal(
        data.as_arrays(data.load_npz(str(tmp_path / "plain.npz")).train)["image"][..., 0], x[:9]
    )


@pytest.mark.parametrize(
    "name, payload, compression, fragment",
    [
        ("x", b"raw image bytes" * 10, 0, "'x' is not an array (its member 'x' holds raw bytes)"),
        ("x.npy", _npy_bytes(np.zeros((10, 8, 8), np.uint8), (10**10, 8, 8)), 0, "claims shape (10000000000, 8, 8)"),
        ("x.npy", _npy_bytes(np.zeros((10, 8, 8), np.uint8), (10**10, 8, 8)), 8, "(640,000,000,000 bytes)"),
        ("x.npy", _npy_bytes(np.array([None] * 10, object)), 0, "'x' holds Python objects"),
    ],
)
def test_an_npz_member_is_refused_from_its_header_before_it_is_read(tmp_path, name, payload, compression, fragment):
    _zip_member(tmp_path / "bad.npz", name, payload, compression)
    with pytest.raises(DataError) as e:
        data.load_npz(str(tmp_path / "bad.npz"))
    assert fragment in str(e.value) and "bad.npz" in str(e.value)


# ----------------------------------------------------------------------------- a TFDS download without a network


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_download_host_is_one_line_in_bounded_time(tmp_path, monkeypatch):
    import io
    import socket
    import time

    port = _closed_port()
    monkeypatch.setenv(data.DOWNLOAD_HOST_VARIABLE, f"127.0.0.1:{port}")
    with pytest.raises(DataError, match=rf"'mnist' is not prepared in {tmp_path} .* 127\.0\.0\.1:{port} cannot be"):
        data.load_images("mnist", str(tmp_path))
    assert not list(tmp_path.iterdir())
    monkeypatch.setenv(data.DOWNLOAD_HOST_VARIABLE, "example.com:443")
    monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{port}")  # the proxy is what must answer
    with pytest.raises(DataError, match=rf"127\.0\.0\.1:{port} cannot be reached \(ConnectionRefusedError"):
        data.refuse_unreachable("mnist", str(tmp_path))
    monkeypatch.delenv("https_proxy")
    monkeypatch.setattr(data, "PROBE_SECONDS", 0.3)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: time.sleep(5) or io.BytesIO())  # hangs
    t0 = time.perf_counter()
    with pytest.raises(DataError, match=r"example\.com:443 cannot be reached \(no answer in 0\.3 s\)"):
        data.refuse_unreachable("mnist", str(tmp_path))
    assert time.perf_counter() - t0 < 2


def test_a_failed_download_leaves_no_temporary_files(tmp_path, monkeypatch):
    """A builder whose download cannot connect (TFDS's own retries cut to none): what TFDS made for it is gone."""
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.download import downloader

    url = f"http://127.0.0.1:{_closed_port()}/images.gz"

    class Unreachable(tfds.core.GeneratorBasedBuilder):
        name = "zoo_fake_unreachable"
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self, features=tfds.features.FeaturesDict({"label": tfds.features.ClassLabel(num_classes=2)})
            )

        def _split_generators(self, dl_manager):
            dl_manager.download(url)

        def _generate_examples(self):
            yield from ()

    monkeypatch.setenv(data.DOWNLOAD_HOST_VARIABLE, "")
    monkeypatch.setattr(downloader, "MAX_RETRIES", 0)
    with pytest.raises(DataError, match="could not be downloaded and prepared"):
        data.load_images("zoo_fake_unreachable", str(tmp_path / "tfds"))
    leftovers = [str(p) for p in tmp_path.rglob("*") if ".tmp." in p.name]
    assert leftovers == []
    assert not (tmp_path / "tfds").exists() or not any(p.is_file() for p in (tmp_path / "tfds").rglob("*"))
