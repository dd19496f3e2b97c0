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
