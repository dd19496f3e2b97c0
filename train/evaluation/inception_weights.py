"""pytorch-fid's Inception weights, read without torch: its state dict file -> the variables of zoo.inception.

The FID network's weights are the file pytorch-fid downloads, `pt_inception-2015-12-05-6726825d.pth`
(FID_WEIGHTS_URL in pytorch_fid/inception.py): TensorFlow's 2015-12-05 Inception graph ported to torch, a state
dict of its FIDInceptionV3 named `Conv2d_1a_3x3.conv.weight`, `Mixed_5b.branch1x1.bn.running_mean`, ..., `fc.weight`.
Nothing downloads here: the user names the file. torch writes a state dict in one of two formats, both read here:

  zip (torch.save since torch 1.6)
      <name>/data.pkl     the pickled state dict: each tensor is torch._utils._rebuild_tensor_v2(storage, offset,
                          size, stride, requires_grad, hooks), each storage the persistent id
                          ('storage', torch.FloatStorage, key, location, numel)
      <name>/data/<key>   that storage's numel elements, raw little-endian bytes
  legacy (torch.save before 1.6, or _use_new_zipfile_serialization=False), one stream of
      pickle(0x1950a86a20f9469cfc6c)  the magic number
      pickle(1001)                    the protocol version
      pickle(sys_info)                {'protocol_version', 'little_endian', 'type_sizes'}
      pickle(state dict)              storages as persistent ids ('storage', type, key, location, numel, view)
      pickle(storage keys)            sorted
      per key: int64 numel (little-endian), then the storage's bytes

The pickles are read by a restricted unpickler: it resolves only collections.OrderedDict, torch's tensor rebuilds
and its storage types, each to a stand-in of this file, so a file can run no code and torch is never imported.
Then each name maps onto the Flax tree (conv OIHW -> HWIO, fc [out, in] -> [in, out], bn weight/bias -> scale/bias,
running_mean/var -> batch_stats mean/var), every name and shape of FIDInceptionV3 checked: a missing file, another
kind of file, a missing, mis-shaped or unexpected parameter is one DataError naming the file and what is accepted.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
import pickle
import zipfile

import flax.traverse_util
import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np

from train.core.errors import DataError
from zoo import inception

__all__ = ["ACCEPTED", "read_state_dict", "torch_names", "to_variables", "load_inception"]

ACCEPTED = (
    "a torch state dict of pytorch-fid's FIDInceptionV3 (its pt_inception-2015-12-05-6726825d.pth, in torch.save's "
    "zip or legacy format)"
)
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
# torch's storage types and the little-endian dtypes of their elements
STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype(ml_dtypes.bfloat16),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class NotAStateDict(ValueError):
    """Why a file is not what ACCEPTED names; load_inception turns it into one DataError line."""


# ----------------------------------------------------------------------------- stand-ins for torch's objects


@dataclasses.dataclass(frozen=True)
class StorageType:
    """torch.FloatStorage and its kin, as the pickle names them: the dtype of the elements."""

    name: str
    dtype: np.dtype


@dataclasses.dataclass
class Storage:
    """One storage of the file: its key, element dtype and count; its elements once read."""

    key: str
    dtype: np.dtype
    numel: int
    elements: np.ndarray | None = None

    def fill(self, raw: bytes) -> None:
        if len(raw) != self.numel * self.dtype.itemsize:
            raise NotAStateDict(
                f"storage {self.key} holds {len(raw)} bytes, its header says {self.numel} x {self.dtype.itemsize}"
            )
        self.elements = np.frombuffer(raw, self.dtype)


@dataclasses.dataclass
class Tensor:
    """A tensor as the pickle rebuilds it: a view (offset, size, stride, in elements) of a storage read later."""

    storage: Storage
    offset: int
    size: tuple
    stride: tuple

    def array(self) -> np.ndarray:
        """The view's elements, copied; its extent is checked against the storage first (no read past its end)."""
        size, stride, offset = self.size, self.stride, self.offset
        ints = [offset, *size, *stride]
        if len(size) != len(stride) or not all(isinstance(i, int) and i >= 0 for i in ints):
            raise NotAStateDict(f"a tensor has offset {offset}, size {size}, stride {stride}")
        elements = self.storage.elements
        if elements is None:
            raise NotAStateDict(f"storage {self.storage.key} has no data")
        if math.prod(size) == 0:
            return np.zeros(size, elements.dtype)
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= elements.size:
            raise NotAStateDict(f"a tensor of size {size} reaches past the end of storage {self.storage.key}")
        steps = [s * elements.dtype.itemsize for s in stride]
        return np.lib.stride_tricks.as_strided(elements[offset:], size, steps, writeable=False).copy()


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    """torch._utils._rebuild_tensor_v2's arguments, kept as a Tensor."""
    if not isinstance(storage, Storage):
        raise pickle.UnpicklingError(f"a tensor's storage is {type(storage).__name__}, not a storage")
    return Tensor(storage, offset, tuple(size), tuple(stride))


def _rebuild_tensor(storage, offset, size, stride):
    """torch._utils._rebuild_tensor (torch < 0.4)."""
    return _rebuild_tensor_v2(storage, offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, hooks=None):
    """torch._utils._rebuild_parameter: an nn.Parameter is its tensor (a state dict saved with keep_vars=True)."""
    return data


class StateDictUnpickler(pickle.Unpickler):
    """Resolves only OrderedDict, torch's tensor rebuilds and storage types; storages become Storage stand-ins
    collected in `storages` (by key) for their bytes to be read after the pickle."""

    GLOBALS = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    }

    def __init__(self, file, storages: dict[str, Storage] | None = None):
        super().__init__(file)
        self.storages = {} if storages is None else storages

    def find_class(self, module, name):
        if module == "torch" and name in STORAGE_DTYPES:
            return StorageType(name, STORAGE_DTYPES[name])
        if (module, name) in self.GLOBALS:
            return self.GLOBALS[module, name]
        raise pickle.UnpicklingError(f"its pickle asks for {module}.{name}, which a state dict of tensors does not use")

    def persistent_load(self, pid):
        # zip: ('storage', type, key, location, numel); legacy: the same and view metadata (None since torch 0.4)
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"its pickle refers to {str(pid)[:80]}, not to a torch storage")
        _, storage_type, key, _location, numel, *view = pid
        if not isinstance(storage_type, StorageType) or not isinstance(numel, int) or numel < 0:
            raise pickle.UnpicklingError(f"a storage has type {storage_type} and {numel} elements")
        if view and view[0] is not None:
            raise pickle.UnpicklingError("it holds storage views (torch < 0.4), which are not read")
        storage = self.storages.setdefault(str(key), Storage(str(key), storage_type.dtype, numel))
        if (storage.dtype, storage.numel) != (storage_type.dtype, numel):
            raise pickle.UnpicklingError(f"storage {key} is declared twice, differently")
        return storage


class PlainUnpickler(pickle.Unpickler):
    """The legacy header's pickles: numbers, strings, lists and dicts only."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"its header asks for {module}.{name}")


# ----------------------------------------------------------------------------- the two file formats


def _read_zip(path: str) -> tuple[object, dict[str, Storage]]:
    """The unpickled object and its storages, filled, of a torch.save zip archive."""
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: info for info in archive.infolist()}
        pickles = [name for name in members if name.endswith("/data.pkl") and name.count("/") == 1]
        if len(pickles) != 1:
            raise NotAStateDict(f"a zip archive whose members are not torch.save's (<name>/data.pkl: {len(pickles)})")
        prefix = pickles[0][: -len("data.pkl")]
        if prefix + "byteorder" in members and archive.read(prefix + "byteorder").strip() != b"little":
            raise NotAStateDict("written big-endian (its byteorder record is not 'little')")
        storages: dict[str, Storage] = {}
        with archive.open(pickles[0]) as f:
            obj = StateDictUnpickler(f, storages).load()
        for storage in storages.values():
            info = members.get(f"{prefix}data/{storage.key}")
            if info is None:
                raise NotAStateDict(f"the archive has no {prefix}data/{storage.key}")
            if info.file_size != storage.numel * storage.dtype.itemsize:  # checked before reading: no huge reads
                raise NotAStateDict(f"{info.filename} holds {info.file_size} bytes, its header says {storage.numel}")
            storage.fill(archive.read(info))
    return obj, storages


def _read_legacy(path: str) -> tuple[object, dict[str, Storage]]:
    """The unpickled object and its storages, filled, of a legacy torch.save stream."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        try:
            magic = PlainUnpickler(f).load()
        except Exception:
            magic = None
        if magic != LEGACY_MAGIC:
            raise NotAStateDict("neither a torch.save zip archive nor a legacy torch file (no magic number)")
        version, sys_info = PlainUnpickler(f).load(), PlainUnpickler(f).load()
        if version != LEGACY_PROTOCOL:
            raise NotAStateDict(f"a legacy torch file of protocol {version}, not {LEGACY_PROTOCOL}")
        if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
            raise NotAStateDict("a legacy torch file written big-endian, or without its sys_info")
        storages: dict[str, Storage] = {}
        obj = StateDictUnpickler(f, storages).load()
        keys = PlainUnpickler(f).load()
        if not isinstance(keys, list) or sorted(map(str, keys)) != sorted(storages):
            raise NotAStateDict("its list of storage keys is not that of its tensors")
        for key in map(str, keys):
            storage = storages[key]
            numel = int.from_bytes(f.read(8), "little", signed=True)
            if numel != storage.numel:
                raise NotAStateDict(f"storage {key} has {numel} elements in the file, {storage.numel} in its header")
            nbytes = numel * storage.dtype.itemsize
            if nbytes > size - f.tell():  # checked before reading: no huge reads
                raise NotAStateDict(f"the file ends inside storage {key}")
            storage.fill(f.read(nbytes))
    return obj, storages


def read_state_dict(path: str) -> dict[str, np.ndarray]:
    """{name: array} of a torch state dict file (zip or legacy format); NotAStateDict says why not, OSError when the
    file cannot be read."""
    with open(path, "rb") as f:
        is_zip = f.read(4) == b"PK\x03\x04"  # torch's own test: a zip's first local header, not a scan of the end
    try:
        obj, _ = _read_zip(path) if is_zip else _read_legacy(path)
    except (NotAStateDict, OSError):
        raise
    except zipfile.BadZipFile as e:
        raise NotAStateDict(f"a damaged zip archive ({e})") from None
    except Exception as e:  # a damaged or foreign pickle fails in many ways (opcodes, arities, truncation)
        raise NotAStateDict(f"it cannot be unpickled as a state dict ({type(e).__name__}: {str(e)[:120]})") from None
    if not isinstance(obj, dict) or not obj:
        raise NotAStateDict(f"it holds a {type(obj).__name__}, not a non-empty dict of tensors")
    state = {}
    for name, value in obj.items():
        if not isinstance(name, str) or not isinstance(value, Tensor):
            raise NotAStateDict(f"its entry {str(name)[:80]!r} is a {type(value).__name__}, not a tensor")
        state[name] = value.array()
    return state


# ----------------------------------------------------------------------------- names and layouts


# (collection, module, leaf) of a Flax variable -> (torch's last name part, the transpose torch -> Flax)
_LAYOUTS = {
    ("params", "conv", "kernel"): ("weight", (2, 3, 1, 0)),  # OIHW -> HWIO
    ("params", "bn", "scale"): ("weight", None),
    ("params", "bn", "bias"): ("bias", None),
    ("batch_stats", "bn", "mean"): ("running_mean", None),
    ("batch_stats", "bn", "var"): ("running_var", None),
    ("params", "fc", "kernel"): ("weight", (1, 0)),  # [out, in] -> [in, out]
    ("params", "fc", "bias"): ("bias", None),
}
_SUFFIX_ORDER = ("weight", "bias", "running_mean", "running_var")


def torch_names(module: inception.InceptionV3 | None = None) -> dict[str, tuple[tuple, tuple, tuple | None]]:
    """{torch name: (Flax path, torch shape, transpose torch -> Flax)} of every variable of the network, in the
    order of torch's state dict (module by module; conv, then bn weight, bias, running_mean, running_var)."""
    module = module or inception.InceptionV3()
    images = jax.ShapeDtypeStruct((1, inception.INPUT_SIZE, inception.INPUT_SIZE, 3), jnp.float32)
    flat = flax.traverse_util.flatten_dict(jax.eval_shape(module.init, jax.random.key(0), images))
    parents = list(dict.fromkeys(path[1:-2] for path in flat if path[0] == "params"))  # in creation order
    names, order = {}, {}
    for path, leaf in flat.items():
        collection, *modules, last = path
        suffix, transpose = _LAYOUTS[collection, modules[-1], last]
        torch_shape = leaf.shape if transpose is None else tuple(leaf.shape[i] for i in np.argsort(transpose))
        name = ".".join([*modules, suffix])
        names[name] = (path, torch_shape, transpose)
        order[name] = (parents.index(tuple(modules[:-1])), modules[-1] == "bn", _SUFFIX_ORDER.index(suffix))
    return {name: names[name] for name in sorted(names, key=order.get)}


def to_variables(state: dict[str, np.ndarray], module: inception.InceptionV3 | None = None) -> dict:
    """The Flax variables {'params', 'batch_stats'} of a FIDInceptionV3 state dict, in float32; NotAStateDict names
    the first missing, mis-shaped, non-float, unexpected or non-finite parameter."""
    names = torch_names(module)
    missing = [name for name in names if name not in state]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise NotAStateDict(f"missing {missing[0]}{more}")
    for name, (_, shape, _) in names.items():
        value = state[name]
        if value.shape != shape:
            raise NotAStateDict(f"{name} has shape {list(value.shape)}, FIDInceptionV3's is {list(shape)}")
        if not np.issubdtype(value.dtype, np.floating) and value.dtype != ml_dtypes.bfloat16:
            raise NotAStateDict(f"{name} holds {value.dtype}, not floats")
    # after the shapes, so torchvision's ImageNet weights are named by their 1000-way fc, not their aux classifier
    unexpected = [name for name in state if name not in names and not name.endswith(".bn.num_batches_tracked")]
    if unexpected:
        raise NotAStateDict(f"unexpected {unexpected[0]}, which FIDInceptionV3 does not have")
    flat = {}
    for name, (path, _, transpose) in names.items():
        value = state[name].astype(np.float32)
        if not np.isfinite(value).all():
            raise NotAStateDict(f"{name} holds NaN or Inf")
        flat[path] = jnp.asarray(value if transpose is None else value.transpose(transpose))
    return flax.traverse_util.unflatten_dict(flat)


def load_inception(path: str, module: inception.InceptionV3 | None = None) -> tuple[inception.InceptionV3, dict]:
    """(module, variables) of pytorch-fid's weights file, ready for zoo.inception.features; DataError when the file
    is missing or not ACCEPTED."""
    module = module or inception.InceptionV3()
    try:
        return module, to_variables(read_state_dict(path), module)
    except FileNotFoundError:
        raise DataError(f"inception weights {path!r}: no such file; accepted: {ACCEPTED}") from None
    except OSError as e:
        raise DataError(f"inception weights {path!r} cannot be read ({e.strerror}); accepted: {ACCEPTED}") from None
    except NotAStateDict as e:
        raise DataError(f"inception weights {path!r}: not {ACCEPTED}: {e}") from None
