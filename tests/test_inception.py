"""The FID Inception network (zoo/inception.py) and the reader of pytorch-fid's weights
(train/evaluation/inception_weights.py), checked without torch:

- the resize against torch's bilinear align_corners=False arithmetic written out pixel by pixel in numpy (and against
  PIL, which agrees when upsampling and not when downsampling: PIL antialiases);
- the pools, and blocks A and E_1 / E_2 layer by layer against convolutions, BatchNorm and pools written out in numpy;
- the names and shapes against a table of FIDInceptionV3's state dict written from torchvision's constructor;
- the reader on files this test writes opcode by opcode in both of torch.save's formats (zip and legacy): strides,
  offsets, shared storages, dtypes, a full-size state dict with random weights round-tripping into the network (the
  output shapes on two small images), and the one-line errors of missing and wrong files.

The optional last test builds pytorch-fid's own network with random weights, saves it with torch.save in both formats
and compares the features; it is skipped unless torch, torchvision and pytorch_fid import.
"""

import functools
import io
import math
import pickle
import struct
import zipfile

import jax
import numpy as np
import pytest
from PIL import Image

from train.core.errors import DataError
from train.evaluation import inception_weights
from zoo import inception

# ----------------------------------------------------------------------------- torch's two file formats, by hand

STORAGE_TYPES = {
    "float32": "FloatStorage",
    "float64": "DoubleStorage",
    "float16": "HalfStorage",
    "int64": "LongStorage",
}


def _op_str(s: str) -> bytes:
    """BINUNICODE."""
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def _op_int(i: int) -> bytes:
    """BININT (4 bytes, signed)."""
    return b"J" + struct.pack("<i", i)


def _op_global(module: str, name: str) -> bytes:
    """GLOBAL: the class or function module.name, as pickle names torch's."""
    return b"c" + f"{module}\n{name}\n".encode()


def _op_tuple(*items: bytes) -> bytes:
    """MARK items TUPLE."""
    return b"(" + b"".join(items) + b"t"


ORDERED_DICT = _op_global("collections", "OrderedDict") + b")R"  # OrderedDict(): GLOBAL, EMPTY_TUPLE, REDUCE


def state_dict_pickle(tensors, storages, legacy: bool) -> bytes:
    """A protocol-2 pickle of an OrderedDict {name: tensor} as torch.save writes it: each tensor
    _rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict()), each storage the persistent id
    ('storage', torch.<Type>Storage, key, 'cpu', numel) (legacy: and a sixth element, the view metadata None).
    tensors: [(name, key, offset, size, stride)], storages: {key: 1-d array}."""
    out = [b"\x80\x02", ORDERED_DICT]
    for name, key, offset, size, stride in tensors:
        elements = storages[key]
        pid = [_op_str("storage"), _op_global("torch", STORAGE_TYPES[elements.dtype.name]), _op_str(key)]
        pid += [_op_str("cpu"), _op_int(elements.size)] + ([b"N"] if legacy else [])
        storage = _op_tuple(*pid) + b"Q"  # BINPERSID
        sizes, strides = _op_tuple(*map(_op_int, size)), _op_tuple(*map(_op_int, stride))
        args = _op_tuple(storage, _op_int(offset), sizes, strides, b"\x89", ORDERED_DICT)  # \x89: False
        out += [_op_str(name), _op_global("torch._utils", "_rebuild_tensor_v2"), args, b"R", b"s"]  # REDUCE, SETITEM
    return b"".join(out) + b"."


def write_torch_file(path, tensors, storages, fmt: str):
    """torch.save's zip archive (archive/data.pkl, archive/data/<key>, ...) or its legacy stream (magic number,
    protocol version, sys_info, the state dict, the sorted storage keys, then each storage as int64 numel + bytes)."""
    if fmt == "zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
            z.writestr("archive/data.pkl", state_dict_pickle(tensors, storages, legacy=False))
            z.writestr("archive/byteorder", "little")
            for key, elements in storages.items():
                z.writestr(f"archive/data/{key}", elements.astype(elements.dtype.newbyteorder("<")).tobytes())
            z.writestr("archive/version", "3\n")
            z.writestr("archive/.data/serialization_id", "1234567890")
        return
    with open(path, "wb") as f:
        sys_info = dict(protocol_version=1001, little_endian=True, type_sizes=dict(short=2, int=4, long=8))
        for header in (0x1950A86A20F9469CFC6C, 1001, sys_info):
            pickle.dump(header, f, protocol=2)
        f.write(state_dict_pickle(tensors, storages, legacy=True))
        keys = sorted(storages)
        pickle.dump(keys, f, protocol=2)
        for key in keys:
            f.write(struct.pack("<q", storages[key].size) + storages[key].tobytes())


def save_state_dict(path, state: dict[str, np.ndarray], fmt: str):
    """Each array in its own contiguous storage, as torch.save writes a state dict of separate tensors."""
    storages = {str(i): np.ascontiguousarray(a).reshape(-1) for i, a in enumerate(state.values())}
    tensors = [(name, str(i), 0, a.shape, _contiguous_strides(a.shape)) for i, (name, a) in enumerate(state.items())]
    write_torch_file(path, tensors, storages, fmt)


def _contiguous_strides(shape) -> tuple:
    return tuple(math.prod(shape[i + 1 :]) for i in range(len(shape)))


# ----------------------------------------------------------------------------- FIDInceptionV3's state dict, written out


def fid_inception_v3_shapes() -> dict[str, tuple]:
    """{name: shape} of pytorch-fid's FIDInceptionV3 state dict (num_batches_tracked aside), from torchvision's
    Inception3(num_classes=1008, aux_logits=False) constructor and pytorch-fid's replaced blocks."""
    convs = {}

    def conv(name, cin, cout, k):
        kh, kw = (k, k) if isinstance(k, int) else k
        convs[name] = (cout, cin, kh, kw)

    for name, cin, cout, k in [("Conv2d_1a_3x3", 3, 32, 3), ("Conv2d_2a_3x3", 32, 32, 3)]:
        conv(name, cin, cout, k)
    conv("Conv2d_2b_3x3", 32, 64, 3), conv("Conv2d_3b_1x1", 64, 80, 1), conv("Conv2d_4a_3x3", 80, 192, 3)
    for m, cin, pool in [("Mixed_5b", 192, 32), ("Mixed_5c", 256, 64), ("Mixed_5d", 288, 64)]:  # InceptionA
        conv(f"{m}.branch1x1", cin, 64, 1), conv(f"{m}.branch5x5_1", cin, 48, 1), conv(f"{m}.branch5x5_2", 48, 64, 5)
        conv(f"{m}.branch3x3dbl_1", cin, 64, 1), conv(f"{m}.branch3x3dbl_2", 64, 96, 3)
        conv(f"{m}.branch3x3dbl_3", 96, 96, 3), conv(f"{m}.branch_pool", cin, pool, 1)
    conv("Mixed_6a.branch3x3", 288, 384, 3), conv("Mixed_6a.branch3x3dbl_1", 288, 64, 1)  # InceptionB
    conv("Mixed_6a.branch3x3dbl_2", 64, 96, 3), conv("Mixed_6a.branch3x3dbl_3", 96, 96, 3)
    for m, c7 in [("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)]:  # InceptionC
        conv(f"{m}.branch1x1", 768, 192, 1), conv(f"{m}.branch7x7_1", 768, c7, 1)
        conv(f"{m}.branch7x7_2", c7, c7, (1, 7)), conv(f"{m}.branch7x7_3", c7, 192, (7, 1))
        conv(f"{m}.branch7x7dbl_1", 768, c7, 1), conv(f"{m}.branch7x7dbl_2", c7, c7, (7, 1))
        conv(f"{m}.branch7x7dbl_3", c7, c7, (1, 7)), conv(f"{m}.branch7x7dbl_4", c7, c7, (7, 1))
        conv(f"{m}.branch7x7dbl_5", c7, 192, (1, 7)), conv(f"{m}.branch_pool", 768, 192, 1)
    conv("Mixed_7a.branch3x3_1", 768, 192, 1), conv("Mixed_7a.branch3x3_2", 192, 320, 3)  # InceptionD
    conv("Mixed_7a.branch7x7x3_1", 768, 192, 1), conv("Mixed_7a.branch7x7x3_2", 192, 192, (1, 7))
    conv("Mixed_7a.branch7x7x3_3", 192, 192, (7, 1)), conv("Mixed_7a.branch7x7x3_4", 192, 192, 3)
    for m, cin in [("Mixed_7b", 1280), ("Mixed_7c", 2048)]:  # InceptionE
        conv(f"{m}.branch1x1", cin, 320, 1), conv(f"{m}.branch3x3_1", cin, 384, 1)
        conv(f"{m}.branch3x3_2a", 384, 384, (1, 3)), conv(f"{m}.branch3x3_2b", 384, 384, (3, 1))
        conv(f"{m}.branch3x3dbl_1", cin, 448, 1), conv(f"{m}.branch3x3dbl_2", 448, 384, 3)
        conv(f"{m}.branch3x3dbl_3a", 384, 384, (1, 3)), conv(f"{m}.branch3x3dbl_3b", 384, 384, (3, 1))
        conv(f"{m}.branch_pool", cin, 192, 1)
    shapes = {}
    for name, shape in convs.items():
        shapes[f"{name}.conv.weight"] = shape
        shapes.update({f"{name}.bn.{p}": shape[:1] for p in ("weight", "bias", "running_mean", "running_var")})
    return shapes | {"fc.weight": (1008, 2048), "fc.bias": (1008,)}


def random_state_dict(seed: int) -> dict[str, np.ndarray]:
    """Random FIDInceptionV3 weights that keep activations O(1): He-normal convs, BatchNorm statistics near 0 and 1,
    and the running_var positive; with num_batches_tracked, as torch's BatchNorm2d saves it."""
    rng = np.random.default_rng(seed)
    state = {}
    for name, shape in fid_inception_v3_shapes().items():
        if name.endswith("conv.weight") or name == "fc.weight":
            value = rng.normal(0, math.sqrt(2 / math.prod(shape[1:])), shape)
        elif name.endswith(("running_var", "bn.weight")):
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.normal(0, 0.1, shape)
        state[name] = value.astype(np.float32)
        if name.endswith("running_var"):
            state[name.replace("running_var", "num_batches_tracked")] = np.array(7, np.int64)
    return state


# ----------------------------------------------------------------------------- numpy references


def resize_reference(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """torch's upsample_bilinear2d (align_corners=False), pixel by pixel: source point
    s = max((i + 0.5) * in / out - 0.5, 0), taps s0 = int(s), s1 = s0 + (s0 < in - 1), weights 1 - (s - s0), s - s0.
    As torch's kernel does, s is in float32: the scale in float32, and s rounded once from the exact
    scale * (i + 0.5) - 0.5 (its fused multiply-add; rounding the product first moves outputs by up to 4e-6 at
    333 -> 299, float64 throughout by up to 3e-5 at 400 -> 299). The weighted sums are in float64."""
    in_h, in_w = image.shape[:2]

    def taps(i, n_in, n_out):
        scale = float(np.float32(n_in) / np.float32(n_out))
        s = max(float(np.float32(scale * (i + 0.5) - 0.5)), 0.0)
        s0 = int(s)
        return s0, s0 + (1 if s0 < n_in - 1 else 0), s - s0

    out = np.zeros((out_h, out_w, image.shape[2]))
    for oy in range(out_h):
        y0, y1, ly = taps(oy, in_h, out_h)
        for ox in range(out_w):
            x0, x1, lx = taps(ox, in_w, out_w)
            top = (1 - lx) * image[y0, x0] + lx * image[y0, x1]
            bottom = (1 - lx) * image[y1, x0] + lx * image[y1, x1]
            out[oy, ox] = (1 - ly) * top + ly * bottom
    return out


def conv_reference(x, kernel, stride=1, padding=(0, 0)):
    """x [N, H, W, I] * kernel [kh, kw, I, O]: zero padding, then sum over the window of patch @ kernel[i, j]."""
    kh, kw = kernel.shape[:2]
    xp = np.pad(x, ((0, 0), (padding[0],) * 2, (padding[1],) * 2, (0, 0)))
    out_h, out_w = (xp.shape[1] - kh) // stride + 1, (xp.shape[2] - kw) // stride + 1
    out = np.zeros((x.shape[0], out_h, out_w, kernel.shape[3]))
    for i in range(kh):
        for j in range(kw):
            out += xp[:, i : i + stride * out_h : stride, j : j + stride * out_w : stride] @ kernel[i, j]
    return out


def pool_reference(x, kind: str):
    """3x3 windows, stride 1, padding 1: the mean of the in-image pixels ('avg') or the max ('max')."""
    out = np.zeros_like(x)
    for y in range(x.shape[1]):
        for z in range(x.shape[2]):
            window = x[:, max(y - 1, 0) : y + 2, max(z - 1, 0) : z + 2]
            out[:, y, z] = window.mean(axis=(1, 2)) if kind == "avg" else window.max(axis=(1, 2))
    return out


def basic_conv_reference(variables, name, x, stride=1, padding=(0, 0)):
    """ReLU((conv(x) - running_mean) / sqrt(running_var + 0.001) * weight + bias)."""
    p, s = variables["params"][name], variables["batch_stats"][name]["bn"]
    y = conv_reference(x, np.asarray(p["conv"]["kernel"], np.float64), stride, padding)
    y = (y - np.asarray(s["mean"])) / np.sqrt(np.asarray(s["var"], np.float64) + 1e-3)
    return np.maximum(y * np.asarray(p["bn"]["scale"]) + np.asarray(p["bn"]["bias"]), 0)


def random_batch_stats(variables, seed):
    """The variables with BatchNorm scale, bias, mean and var drawn at random (init leaves them 1, 0, 0, 1)."""
    rng = np.random.default_rng(seed)
    draw = {"scale": (0.5, 1.5), "var": (0.5, 1.5)}

    def redraw(path, leaf):
        name = path[-1].key
        if name in draw:
            return rng.uniform(*draw[name], leaf.shape).astype(np.float32)
        return rng.normal(0, 0.1, leaf.shape).astype(np.float32) if name in ("bias", "mean") else leaf

    return jax.tree_util.tree_map_with_path(redraw, variables)


# ----------------------------------------------------------------------------- the input


def test_uint8_images_are_read_as_u_over_255_and_other_integers_refused():
    u = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
    np.testing.assert_array_equal(np.asarray(inception.to_unit_range(u)), u.astype(np.float32) / 255)
    floats = np.linspace(0, 1, 12, dtype=np.float64).reshape(1, 2, 2, 3)
    assert inception.to_unit_range(floats).dtype == np.float32
    with pytest.raises(ValueError, match="floats in \\[0, 1\\] or uint8.*int32"):
        inception.to_unit_range(u.astype(np.int32))
    np.testing.assert_allclose(np.asarray(inception.scale_to_inception(np.array([0.0, 0.5, 1.0]))), [-1, 0, 1])


@pytest.mark.parametrize(
    "in_hw, out_hw",
    [
        ((8, 8), (299, 299)),
        ((5, 7), (3, 11)),
        ((28, 28), (299, 299)),
        ((400, 333), (299, 299)),
        ((299, 299), (299, 299)),
    ],
)
def test_resize_is_torch_bilinear_align_corners_false(in_hw, out_hw):
    image = np.random.default_rng(0).uniform(size=(2, *in_hw, 3)).astype(np.float32)
    got = np.asarray(inception.resize_bilinear(image, out_hw))
    assert got.shape == (2, *out_hw, 3) and got.dtype == np.float32
    want = np.stack([resize_reference(im.astype(np.float64), *out_hw) for im in image])
    np.testing.assert_allclose(got, want, atol=2e-6)
    if in_hw == out_hw:
        np.testing.assert_array_equal(got, image)  # 299x299 input passes through unchanged, as in pytorch-fid


def _pil_resize(image: np.ndarray, out_hw) -> np.ndarray:
    """PIL's BILINEAR resize of each channel as a float32 ('F') image."""
    channels = [Image.fromarray(image[..., c]).resize(out_hw[::-1], Image.Resampling.BILINEAR) for c in range(3)]
    return np.stack([np.asarray(c) for c in channels], axis=-1)


def test_pil_agrees_when_upsampling_and_antialiases_when_downsampling():
    """PIL's bilinear filter has support 1 input pixel when upsampling: the same weights as torch's, borders included
    (PIL renormalises the weights inside the image, torch clamps the source point: both give the edge pixel). When
    downsampling PIL widens the filter by the scale (antialiasing) and torch does not, so FID inputs must not be
    resized with PIL."""
    rng = np.random.default_rng(1)
    small = rng.uniform(size=(1, 28, 21, 3)).astype(np.float32)
    ours = np.asarray(inception.resize_bilinear(small, (299, 299)))[0]
    np.testing.assert_allclose(ours, _pil_resize(small[0], (299, 299)), atol=1e-5)
    large = rng.uniform(size=(1, 512, 512, 3)).astype(np.float32)
    ours = np.asarray(inception.resize_bilinear(large, (299, 299)))[0]
    assert np.abs(ours - _pil_resize(large[0], (299, 299))).max() > 0.05


# ----------------------------------------------------------------------------- pools and blocks, layer by layer


def test_pools_match_windows_written_out():
    x = np.random.default_rng(2).normal(size=(2, 5, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(inception.avg_pool_3x3_inside(x)), pool_reference(x, "avg"), atol=1e-6)
    np.testing.assert_allclose(np.asarray(inception.max_pool_3x3_same(x)), pool_reference(x, "max"), atol=0)
    # the corner averages 4 pixels, not 9 (count_include_pad=False)
    np.testing.assert_allclose(np.asarray(inception.avg_pool_3x3_inside(x))[:, 0, 0], x[:, :2, :2].mean((1, 2)), 1e-6)
    stride2 = np.asarray(inception.max_pool_3x3_stride2(x))
    assert stride2.shape == (2, 2, 2, 3)
    np.testing.assert_allclose(stride2[:, 1, 1], x[:, 2:5, 2:5].max(axis=(1, 2)))


def _block_variables(block, x, seed):
    return random_batch_stats(jax.jit(block.init)(jax.random.key(seed), x), seed)


def test_inception_a_layer_by_layer():
    x = np.random.default_rng(3).normal(size=(2, 5, 5, 6)).astype(np.float32)
    block = inception.InceptionA(pool_features=8)
    v = _block_variables(block, x, 3)
    got = np.asarray(jax.jit(block.apply)(v, x))
    xd = x.astype(np.float64)
    b5 = basic_conv_reference(v, "branch5x5_2", basic_conv_reference(v, "branch5x5_1", xd), padding=(2, 2))
    b3 = basic_conv_reference(v, "branch3x3dbl_1", xd)
    b3 = basic_conv_reference(v, "branch3x3dbl_2", b3, padding=(1, 1))
    b3 = basic_conv_reference(v, "branch3x3dbl_3", b3, padding=(1, 1))
    bp = basic_conv_reference(v, "branch_pool", pool_reference(xd, "avg"))
    want = np.concatenate([basic_conv_reference(v, "branch1x1", xd), b5, b3, bp], axis=-1)
    assert got.shape == (2, 5, 5, 64 + 64 + 96 + 8)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize("pool", ["avg", "max"])  # E_1 (Mixed_7b) and E_2 (Mixed_7c)
def test_inception_e_layer_by_layer(pool):
    x = np.random.default_rng(4).normal(size=(1, 4, 3, 5)).astype(np.float32)
    block = inception.InceptionE(pool)
    v = _block_variables(block, x, 4)
    got = np.asarray(jax.jit(block.apply)(v, x))
    xd = x.astype(np.float64)
    row_and_col = lambda name, h: [  # the (1x3 | 3x1) pair of a branch
        basic_conv_reference(v, f"{name}a", h, padding=(0, 1)),
        basic_conv_reference(v, f"{name}b", h, padding=(1, 0)),
    ]
    b3 = row_and_col("branch3x3_2", basic_conv_reference(v, "branch3x3_1", xd))
    bd = basic_conv_reference(v, "branch3x3dbl_2", basic_conv_reference(v, "branch3x3dbl_1", xd), padding=(1, 1))
    bd = row_and_col("branch3x3dbl_3", bd)
    bp = basic_conv_reference(v, "branch_pool", pool_reference(xd, pool))
    want = np.concatenate([basic_conv_reference(v, "branch1x1", xd), *b3, *bd, bp], axis=-1)
    assert got.shape == (1, 4, 3, 320 + 768 + 768 + 192)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    other = np.asarray(jax.jit(inception.InceptionE("max" if pool == "avg" else "avg").apply)(v, x))
    assert np.abs(other[..., -192:] - got[..., -192:]).max() > 1e-3  # the pool branch is what tells them apart


# ----------------------------------------------------------------------------- names and shapes


def test_the_network_has_fid_inception_v3s_names_and_shapes():
    names = inception_weights.torch_names()
    assert {name: shape for name, (_, shape, _) in names.items()} == fid_inception_v3_shapes()
    assert len(names) == 94 * 5 + 2  # 94 BasicConv2d (conv + 4 BatchNorm tensors) and the fc's weight and bias
    assert names["Mixed_7c.branch3x3_2a.conv.weight"][0] == ("params", "Mixed_7c", "branch3x3_2a", "conv", "kernel")
    assert names["Mixed_5b.branch_pool.bn.running_var"][0] == ("batch_stats", "Mixed_5b", "branch_pool", "bn", "var")


# ----------------------------------------------------------------------------- the reader on small files


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_reader_reads_strides_offsets_shared_storages_and_dtypes(tmp_path, fmt):
    rng = np.random.default_rng(5)
    storages = {
        "0": rng.normal(size=24).astype(np.float32),
        "1": rng.normal(size=6),
        "2": rng.normal(size=4).astype(np.float16),
        "3": np.array([123456789012], np.int64),
    }
    tensors = [
        ("a.weight", "0", 0, (2, 3, 4), (12, 4, 1)),  # contiguous
        ("a.transposed", "0", 0, (4, 6), (1, 4)),  # a transpose: the same storage, other strides
        ("a.slice", "0", 5, (3,), (2,)),  # offset and step
        ("b.double", "1", 1, (5,), (1,)),
        ("c.half", "2", 0, (2, 2), (2, 1)),
        ("d.num_batches_tracked", "3", 0, (), ()),  # a scalar
        ("e.expanded", "1", 0, (3, 2), (0, 1)),  # a broadcast view (stride 0)
        ("f.empty", "1", 0, (0, 4), (4, 1)),
    ]
    path = tmp_path / f"small.{fmt}.pth"
    write_torch_file(path, tensors, storages, fmt)
    state = inception_weights.read_state_dict(str(path))
    flat = storages["0"]
    want = {
        "a.weight": flat.reshape(2, 3, 4),
        "a.transposed": flat.reshape(6, 4).T,
        "a.slice": flat[5:11:2],
        "b.double": storages["1"][1:6],
        "c.half": storages["2"].reshape(2, 2),
        "d.num_batches_tracked": np.array(123456789012, np.int64),
        "e.expanded": np.broadcast_to(storages["1"][:2], (3, 2)),
        "f.empty": np.zeros((0, 4)),
    }
    assert list(state) == list(want)
    for name, value in want.items():
        assert state[name].dtype == value.dtype and state[name].shape == value.shape, name
        np.testing.assert_array_equal(state[name], value)


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_reader_refuses_a_tensor_reaching_past_its_storage(tmp_path, fmt):
    path = tmp_path / "past.pth"
    write_torch_file(path, [("x", "0", 2, (3,), (1,))], {"0": np.zeros(4, np.float32)}, fmt)
    with pytest.raises(inception_weights.NotAStateDict, match="reaches past the end of storage 0"):
        inception_weights.read_state_dict(str(path))


def test_reader_runs_no_code_from_the_pickle(tmp_path):
    """A pickle naming os.system is refused by name; the command does not run."""
    marker = tmp_path / "ran"
    payload = b"\x80\x02" + _op_global("os", "system") + _op_tuple(_op_str(f"touch {marker}")) + b"R."
    with zipfile.ZipFile(tmp_path / "evil.pth", "w") as z:
        z.writestr("archive/data.pkl", payload)
    with pytest.raises(DataError, match="asks for os.system") as e:
        inception_weights.load_inception(str(tmp_path / "evil.pth"))
    assert not marker.exists() and "\n" not in str(e.value)


# ----------------------------------------------------------------------------- the full-size state dict


@pytest.fixture(scope="module")
def full_size(tmp_path_factory):
    """(state dict, {format: path}) of random FIDInceptionV3 weights saved in both formats."""
    state = random_state_dict(seed=6)
    folder = tmp_path_factory.mktemp("inception_weights")
    paths = {fmt: folder / f"pt_inception.{fmt}.pth" for fmt in ("zip", "legacy")}
    for fmt, path in paths.items():
        save_state_dict(path, state, fmt)
    return state, paths


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_full_size_state_dict_maps_onto_the_flax_tree(full_size, fmt):
    state, paths = full_size
    module, v = inception_weights.load_inception(str(paths[fmt]))
    assert isinstance(module, inception.InceptionV3) and set(v) == {"params", "batch_stats"}
    flax_of = {
        "Conv2d_1a_3x3.conv.weight": (v["params"]["Conv2d_1a_3x3"]["conv"]["kernel"], (2, 3, 1, 0)),
        "Mixed_6b.branch7x7_2.conv.weight": (v["params"]["Mixed_6b"]["branch7x7_2"]["conv"]["kernel"], (2, 3, 1, 0)),
        "Mixed_7c.branch_pool.bn.weight": (v["params"]["Mixed_7c"]["branch_pool"]["bn"]["scale"], None),
        "Mixed_5b.branch1x1.bn.bias": (v["params"]["Mixed_5b"]["branch1x1"]["bn"]["bias"], None),
        "Mixed_6e.branch_pool.bn.running_mean": (v["batch_stats"]["Mixed_6e"]["branch_pool"]["bn"]["mean"], None),
        "Mixed_7a.branch3x3_2.bn.running_var": (v["batch_stats"]["Mixed_7a"]["branch3x3_2"]["bn"]["var"], None),
        "fc.weight": (v["params"]["fc"]["kernel"], (1, 0)),
        "fc.bias": (v["params"]["fc"]["bias"], None),
    }
    for name, (value, transpose) in flax_of.items():
        np.testing.assert_array_equal(value, state[name] if transpose is None else state[name].transpose(transpose))
    assert v["params"]["Mixed_6b"]["branch7x7_2"]["conv"]["kernel"].shape == (1, 7, 128, 128)  # 1x7: H 1, W 7
    assert sum(x.size for x in jax.tree.leaves(v)) == sum(a.size for n, a in state.items() if a.ndim)


def test_full_size_weights_run_through_the_network(full_size):
    """Two small uint8 images through the whole graph (the resize makes them 299x299): pool features [2, 2048] and
    logits [2, 1008] = pool @ fc.weight^T + fc.bias."""
    state, paths = full_size
    module, v = inception_weights.load_inception(str(paths["zip"]))
    images = np.random.default_rng(7).integers(0, 256, size=(2, 12, 10, 3), dtype=np.uint8)
    pool, logits = jax.jit(functools.partial(inception.features, module))(v, images)
    assert pool.shape == (2, inception.POOL_FEATURES) and logits.shape == (2, inception.NUM_CLASSES)
    assert np.isfinite(pool).all() and (np.asarray(pool) >= 0).all() and np.asarray(pool).std() > 1e-2
    want = np.asarray(pool, np.float64) @ state["fc.weight"].T.astype(np.float64) + state["fc.bias"]
    np.testing.assert_allclose(logits, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


# ----------------------------------------------------------------------------- one-line errors


def _one_line_error(path, match):
    with pytest.raises(DataError, match=match) as e:
        inception_weights.load_inception(str(path))
    message = str(e.value)
    assert "\n" not in message and str(path) in message, message
    return message


def test_a_missing_file_is_one_line_naming_what_is_accepted(tmp_path):
    message = _one_line_error(tmp_path / "nothing.pth", "no such file")
    assert inception_weights.ACCEPTED in message


def test_files_of_other_kinds_are_one_line(tmp_path):
    (tmp_path / "text.pth").write_text("not a torch file\n")
    _one_line_error(tmp_path / "text.pth", "not a torch state dict.*neither a torch.save zip archive nor a legacy")
    buffer = io.BytesIO()
    np.savez(buffer, mu=np.zeros(3), sigma=np.eye(3))
    (tmp_path / "stats.npz").write_bytes(buffer.getvalue())
    _one_line_error(tmp_path / "stats.npz", "a zip archive whose members are not torch.save's")
    (tmp_path / "list.pth").write_bytes(pickle.dumps(0x1950A86A20F9469CFC6C, 2) + pickle.dumps(1001, 2))
    _one_line_error(tmp_path / "list.pth", "not a torch state dict.*cannot be unpickled")
    _one_line_error(tmp_path, "cannot be read")  # a folder


def _expanded_state_dict_file(path, shapes: dict[str, tuple], fmt: str):
    """Every tensor a zero-stride view of one 1-element storage: a complete state dict in a few kB."""
    write_torch_file(
        path, [(n, "0", 0, s, (0,) * len(s)) for n, s in shapes.items()], {"0": np.ones(1, np.float32)}, fmt
    )


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_a_missing_mis_shaped_or_unexpected_parameter_is_one_line(tmp_path, fmt):
    shapes = fid_inception_v3_shapes()
    _expanded_state_dict_file(tmp_path / "ok.pth", shapes, fmt)
    _, v = inception_weights.load_inception(str(tmp_path / "ok.pth"))
    assert np.all(np.asarray(v["params"]["fc"]["kernel"]) == 1)
    missing = {n: s for n, s in shapes.items() if n != "Mixed_7c.branch_pool.conv.weight"}
    _expanded_state_dict_file(tmp_path / "missing.pth", missing, fmt)
    _one_line_error(tmp_path / "missing.pth", "FIDInceptionV3.*: missing Mixed_7c.branch_pool.conv.weight$")
    _expanded_state_dict_file(tmp_path / "fc.pth", shapes | {"fc.weight": (1000, 2048)}, fmt)
    _one_line_error(tmp_path / "fc.pth", r"fc.weight has shape \[1000, 2048\], FIDInceptionV3's is \[1008, 2048\]")
    _expanded_state_dict_file(tmp_path / "aux.pth", shapes | {"AuxLogits.fc.weight": (1008, 768)}, fmt)
    _one_line_error(tmp_path / "aux.pth", "unexpected AuxLogits.fc.weight")
    _expanded_state_dict_file(tmp_path / "few.pth", {"fc.weight": (1008, 2048)}, fmt)
    _one_line_error(tmp_path / "few.pth", r"missing Conv2d_1a_3x3.conv.weight \(and 470 more\)")


def test_a_truncated_file_is_one_line(tmp_path, full_size):
    _, paths = full_size
    for fmt, path in paths.items():
        cut = tmp_path / f"cut.{fmt}.pth"
        cut.write_bytes(path.read_bytes()[:5_000_000])
        _one_line_error(cut, "not a torch state dict.*" + ("a damaged zip archive" if fmt == "zip" else "ends inside"))


# ----------------------------------------------------------------------------- against pytorch-fid (optional)


def test_features_equal_pytorch_fids_with_the_same_random_weights(tmp_path, monkeypatch):
    """pytorch-fid's InceptionV3([3], resize_input=True, normalize_input=True, use_fid_inception=True) on random
    weights (its download replaced), saved by torch.save in both formats and read back without torch: the pool
    features and the fc's logits agree to float32 rounding."""
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    fid = pytest.importorskip("pytorch_fid.inception")
    net = _random_fid_inception_v3(torch, torchvision, fid, monkeypatch)
    monkeypatch.setattr(fid, "fid_inception_v3", lambda: net)  # the wrapper takes its blocks from our network
    wrapper = fid.InceptionV3([3], resize_input=True, normalize_input=True, use_fid_inception=True).eval()
    images = np.random.default_rng(8).uniform(size=(3, 32, 40, 3)).astype(np.float32)
    with torch.no_grad():
        pool_torch = wrapper(torch.from_numpy(images.transpose(0, 3, 1, 2)))[0][:, :, 0, 0]
        logits_torch = net.fc(pool_torch).numpy()
    pool_torch = pool_torch.numpy()
    for fmt, legacy in (("zip", False), ("legacy", True)):
        path = tmp_path / f"fid.{fmt}.pth"
        torch.save(net.state_dict(), path, _use_new_zipfile_serialization=not legacy)
        assert zipfile.is_zipfile(path) != legacy
        module, v = inception_weights.load_inception(str(path))
        pool, logits = jax.jit(functools.partial(inception.features, module))(v, images)
        pool_diff = float(np.abs(np.asarray(pool) - pool_torch).max())
        logits_diff = float(np.abs(np.asarray(logits) - logits_torch).max())
        print(
            f"{fmt}: max |pool - torch| {pool_diff:.2e} (max |pool| {np.abs(pool_torch).max():.3f}), "
            f"max |logits - torch| {logits_diff:.2e} (max |logits| {np.abs(logits_torch).max():.3f})"
        )
        assert pool_diff < 1e-4 * max(1.0, np.abs(pool_torch).max())
        assert logits_diff < 1e-4 * max(1.0, np.abs(logits_torch).max())


def test_resize_equals_torchs_interpolate():
    """The resize against torch's own F.interpolate(mode='bilinear', align_corners=False), up and down."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    for in_hw in [(8, 8), (28, 21), (400, 333), (299, 299)]:
        image = rng.uniform(size=(2, *in_hw, 3)).astype(np.float32)
        nchw = torch.from_numpy(image.transpose(0, 3, 1, 2))
        want = torch.nn.functional.interpolate(nchw, size=(299, 299), mode="bilinear", align_corners=False)
        got = np.asarray(inception.resize_bilinear(image, (299, 299)))
        np.testing.assert_allclose(got, want.numpy().transpose(0, 2, 3, 1), atol=3e-7, err_msg=str(in_hw))


def _random_fid_inception_v3(torch, torchvision, fid, monkeypatch):
    """pytorch-fid's fid_inception_v3() with its weight download replaced by nothing, then random weights that keep
    activations O(1) (He-normal convs, BatchNorm statistics near 0 and 1), in eval mode."""
    monkeypatch.setattr(fid, "load_state_dict_from_url", lambda *args, **kwargs: {})
    monkeypatch.setattr(torchvision.models.Inception3, "load_state_dict", lambda self, *args, **kwargs: None)
    net = fid.fid_inception_v3()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                std = math.sqrt(2 / math.prod(m.weight.shape[1:]))
                m.weight.copy_(torch.randn(m.weight.shape, generator=generator) * std)
            elif isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=generator) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=generator) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=generator) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=generator) + 0.5)
    return net.eval()
