"""Reading BiT checkpoints of every supported format into the official key layout.

Formats: official ``.npz`` (primary; numbered ``standardized_conv2d_N`` names too),
big_vision ``bit_paper`` ``.npz`` checkpoints, official bit_tf2 Keras 2 ``.h5``, and timm
ResNetV2 state dicts as ``.safetensors`` or ``.npz``. Nothing here unpickles: a pickle in a
checkpoint is code.
"""

import os
import zipfile

import numpy as np

from bit_keras.checkpoints import keys
from bit_keras.utils import atomic

SUFFIXES = (".npz", ".h5", ".hdf5", ".safetensors")
# The most values a checkpoint may declare when its architecture is not known: BiT's largest,
# R152x4 with the 21,843-class head, has 1,107M. ``max_params=`` sets a tighter bound.
MAX_PARAMS = 1_200_000_000
LARGEST_HEAD = 21_843  # BiT-M's classes: the largest head a BiT checkpoint carries


def architecture_params(units, width, base_filters=64, head=LARGEST_HEAD):
    """An upper bound on the parameters of a BiT ResNet-v2 with a ``head``-class head (a
    checkpoint of it holds no more values)."""
    total, channels = 7 * 7 * 3 * base_filters * width, base_filters * width
    for block, count in enumerate(units):
        mid = base_filters * width * 2 ** block
        for unit in range(count):
            total += channels * mid + 9 * mid * mid + 4 * mid * mid + 2 * (channels + 2 * mid)
            total += channels * 4 * mid if unit == 0 else 0  # the projection
            channels = 4 * mid
    return total + 2 * channels + (channels + 1) * head


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or does not fit the model."""


def read_checkpoint(path, max_params=None):
    """Reads a checkpoint file into a dict official key -> float32 ``np.ndarray``.

    Args:
        path: a ``.npz`` (official, big_vision or timm layout), ``.h5`` (official bit_tf2) or
            ``.safetensors`` (timm layout) file.
        max_params: the most values its arrays may declare (what the architecture needs,
            ``architecture_params``); default ``MAX_PARAMS``. The shapes in the ``.npy`` and
            HDF5 headers are checked before any array is read, so a zip bomb (a small file
            whose members expand to gigabytes) is refused having read a few bytes.

    Returns:
        dict in the official layout (``resnet/block1/unit01/a/...``), HWIO kernels.

    Raises:
        CheckpointError: the file is missing, of an unknown kind, truncated, corrupt,
            holds pickled objects, non-float or non-finite values, or keys of no known layout.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"Checkpoint file not found: {path}")
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in SUFFIXES:
        raise CheckpointError(
            f"Unknown checkpoint kind {suffix!r} for {path}. Accepted: {', '.join(SUFFIXES)}")
    limit = MAX_PARAMS if max_params is None else max_params
    try:
        if suffix == ".npz":
            raw, origin = _read_npz(path, limit)
        elif suffix == ".safetensors":  # not compressed: the file's size bounds it
            raw, origin = _read_safetensors(path), "timm"
        else:
            raw, origin = _read_h5(path, limit), "h5"
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - every reader failure becomes one clear error
        raise CheckpointError(
            f"Cannot read checkpoint {path}: the file is truncated or corrupt ({type(e).__name__}: {e})"
        ) from e
    return _to_official(raw, origin, path)


_NPY_MAGIC = b"\x93NUMPY"


def check_npz_file(path, crc=True):
    """Raises a ``CheckpointError`` unless ``path`` is a zip archive of ``.npy`` members
    (what ``np.savez`` writes) whose CRCs check (``crc=True`` reads the whole file once;
    reading the arrays checks them anyway). Unpickles nothing."""
    with open(path, "rb") as f:
        head = f.read(8)
    if not zipfile.is_zipfile(path):
        if head.startswith(b"PK"):
            raise CheckpointError(f"Cannot read checkpoint {path}: the file is truncated or "
                                  "corrupt, not a valid .npz (zip) file (no zip directory at "
                                  "its end)")
        if head.startswith(_NPY_MAGIC):
            kind = "a single .npy array, not an .npz archive; save it with np.savez"
        elif head[:1] == b"\x80":
            kind = "a pickle, which bit_keras never loads (a pickle is code)"
        elif head.lstrip()[:1] == b"<":
            kind = "an HTML or XML page (a failed download?)"
        else:
            kind = f"of unknown format; it starts with bytes {list(head)}"
        raise CheckpointError(f"Checkpoint {path} is not a valid .npz (zip) file: it is {kind}. "
                              "A .npz checkpoint is a zip of .npy arrays (np.savez).")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip() if crc else None
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise CheckpointError(f"Cannot read checkpoint {path}: the file is truncated or corrupt, "
                              f"not a valid .npz (zip) file ({e})") from e
    others = [n for n in names if not n.endswith(".npy")]
    if bad is not None or others:
        raise CheckpointError(
            f"Checkpoint {path} is not a valid .npz (zip) file: "
            + (f"member {bad!r} is corrupt (CRC mismatch)" if bad is not None
               else f"members {others[:5]} are not .npy arrays"))


def _declared(path):
    """{array name: shape} from each ``.npy`` member's header (a few bytes each)."""
    sizes = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            with archive.open(info) as f:
                version = np.lib.format.read_magic(f)
                read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                        else np.lib.format.read_array_header_2_0)
                shape = read(f)[0]
            sizes[info.filename[:-len(".npy")]] = tuple(shape)
    return sizes


def _check_declared(path, shapes, limit):
    sizes = {k: int(np.prod(s, dtype=np.float64)) for k, s in shapes.items()}
    total = sum(sizes.values())
    if total > limit:
        biggest = max(sizes, key=sizes.get)
        official = {keys.unnumbered(k): s for k, s in shapes.items() if k.startswith(keys.PREFIX)}
        looks = (f" It looks like: {keys.describe_architecture(official)}."
                 if keys.ROOT_KEY in official else "")
        raise CheckpointError(
            f"Checkpoint {path} declares {total:,} values ({biggest!r} alone {sizes[biggest]:,}), "
            f"more than the {limit:,} the architecture can hold (max_params); it is not a "
            f"checkpoint of this model, or it is damaged. Nothing was read.{looks}")


def _read_npz(path, limit):
    check_npz_file(path, crc=False)
    try:
        sizes = _declared(path)
        prefix = next((p for p in keys.BIG_VISION_PREFIXES
                       if p + "root_block/conv_root/kernel" in sizes), None)
        if prefix is not None:  # big_vision: the parameters only, not the optimizer state
            sizes = {k: v for k, v in sizes.items() if k.startswith(prefix)}
        _check_declared(path, sizes, limit)
        with np.load(path, allow_pickle=False) as data:
            raw = {}
            for k in sizes:
                raw[k] = data[k]
    except ValueError as e:
        if "allow_pickle" in str(e) or "Object arrays" in str(e) or "pickled" in str(e):
            raise CheckpointError(
                f"Checkpoint {path} contains pickled objects; bit_keras never unpickles "
                "checkpoints (a pickle is code). Save plain float arrays instead.") from e
        raise
    except zipfile.BadZipFile as e:
        raise CheckpointError(f"Cannot read checkpoint {path}: the file is truncated or corrupt, "
                              f"not a valid .npz (zip) file ({e})") from e
    if any(k.startswith(("stem.", "stages.", "module.stem.")) for k in raw):
        return raw, "timm"
    for prefix in keys.BIG_VISION_PREFIXES:
        if prefix + "root_block/conv_root/kernel" in raw:
            # A big_vision checkpoint: its parameters; the optimizer state and the other
            # trees beside them are not weights and are not read.
            return {k[len(prefix):]: v for k, v in raw.items() if k.startswith(prefix)}, "big_vision"
    return raw, "official"


def _read_safetensors(path):
    from safetensors.numpy import load_file
    return load_file(path)


def _read_h5(path, limit):
    import h5py
    raw = {}
    with h5py.File(path, "r") as f:
        sizes = {}
        f.visititems(lambda name, obj: sizes.__setitem__(name, obj.shape or ())
                     if isinstance(obj, h5py.Dataset) else None)
        _check_declared(path, sizes, limit)
        root = f.get("model_weights", f)
        names = [n.decode() if isinstance(n, bytes) else n for n in root.attrs.get("layer_names", [])]
        if names:  # Keras 2 layer groups with 'weight_names' attributes
            for layer in names:
                group = root[layer]
                for w in group.attrs.get("weight_names", []):
                    w = w.decode() if isinstance(w, bytes) else w
                    raw[w] = np.asarray(group[w])
        else:
            root.visititems(lambda name, obj: raw.__setitem__(name, np.asarray(obj))
                            if isinstance(obj, h5py.Dataset) else None)
    return raw


def _to_official(raw, origin, path):
    out, unknown = {}, []
    for k, v in raw.items():
        if origin == "timm":
            name = k[len("module."):] if k.startswith("module.") else k
            key = keys.timm_to_official_key(name)
            value = None if key is None else keys.timm_to_official_value(key, v)
        elif origin == "h5":
            key = keys.h5_to_official_key(k)
            value = None if key is None else keys.h5_to_official_value(key, v)
        elif origin == "big_vision":
            key = keys.big_vision_to_official_key(k)
            value = None if key is None else keys.big_vision_to_official_value(key, v)
        else:
            key, value = (keys.unnumbered(k), v) if k.startswith(keys.PREFIX) else (None, None)
        if key is None:
            unknown.append(k)
            continue
        if key in out:
            raise CheckpointError(f"Checkpoint {path} holds two tensors for {key}")
        out[key] = value
    if not out:
        raise CheckpointError(
            f"Checkpoint {path} has no tensor of a known BiT layout (official 'resnet/...', "
            "big_vision 'root_block/conv_root/...' bare or under 'params/' or 'opt/target/', "
            f"bit_tf2 .h5 weight names, or timm 'stem./stages.'). First keys: {sorted(raw)[:5]}")
    if unknown:
        raise CheckpointError(
            f"Checkpoint {path} ({origin} layout) has keys that belong to no BiT weight: "
            f"{sorted(unknown)[:20]}")
    for k, v in out.items():
        if not np.issubdtype(v.dtype, np.floating):
            raise CheckpointError(f"Checkpoint {path}: tensor {k} has dtype {v.dtype}; expected floats")
        if not np.all(np.isfinite(v)):
            raise CheckpointError(f"Checkpoint {path}: tensor {k} has NaN or infinite values")
        ranks = ((2, 4) if k in keys.HEAD_KEYS else (4,)) if k.endswith("/kernel") else (1,)
        if v.ndim not in ranks:
            raise CheckpointError(f"Checkpoint {path}: tensor {k} has shape {v.shape} (rank "
                                  f"{v.ndim}); expected rank {' or '.join(map(str, ranks))}")
        out[k] = v.astype(np.float32, copy=False)
    _check_consistent(out, path)
    return out


# big_transfer issue #47: these official bit_tf2 files carry a stem of another model.
KNOWN_BROKEN_H5 = {"BiT-S-R50x3.h5", "BiT-S-R101x1.h5"}


def _check_consistent(weights, path):
    root = weights.get(keys.ROOT_KEY)
    first = weights.get(keys.PREFIX + "block1/unit01/a/standardized_conv2d/kernel")
    if root is None or first is None or root.shape[-1] == first.shape[2]:
        return
    hint = ""
    base = os.path.basename(path)
    if base in KNOWN_BROKEN_H5:
        hint = (f" {base} is one of the two official bit_tf2 files with a wrong stem "
                "(big_transfer issue #47).")
    raise CheckpointError(
        f"Checkpoint {path} is inconsistent: its stem kernel has shape {root.shape} "
        f"({root.shape[-1]} channels) but block1 expects {first.shape[2]} input channels.{hint} "
        f"Use the official .npz of the same model instead ({os.path.splitext(base)[0]}.npz).")


def write_npz(weights, path):
    """Writes a dict of arrays to ``path`` as .npz, beside the target then renamed."""
    with atomic.atomic_file(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **weights)
    return path
