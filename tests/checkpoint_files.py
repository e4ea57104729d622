"""Writers of the checkpoint layouts bit_keras reads, as other tools would write them."""

import h5py
import numpy as np

from bit_keras.checkpoints import keys as checkpoint_keys


def write_bit_tf2_h5(weights, path):
    """An official-bit_tf2-style Keras 2 weights file: layer groups with 'weight_names'."""
    groups = {}
    for key, value in weights.items():
        rest = key[len("resnet/"):]
        if rest.startswith("head/"):
            layer, name = "head", "resnet/head/dense/" + rest.rsplit("/", 1)[1]
            if value.ndim == 4:
                value = value.reshape(value.shape[2:])
        else:
            layer, name = rest.split("/", 1)[0], key
        groups.setdefault(layer, []).append((name + ":0", value))
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [n.encode() for n in groups]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.3.0"
        for layer, items in groups.items():
            g = f.create_group(layer)
            g.attrs["weight_names"] = [n.encode() for n, _ in items]
            for n, v in items:
                g.create_dataset(n, data=v)


def timm_state_dict(weights):
    return checkpoint_keys.official_to_timm(weights)


def write_timm_safetensors(weights, path):
    from safetensors.numpy import save_file
    save_file({k: np.ascontiguousarray(v) for k, v in timm_state_dict(weights).items()}, path)


def big_vision_params(weights):
    """The official dict as big_vision's ``bit_paper`` parameters (its own conversion,
    ``maybe_convert_big_transfer_format``, written out here), flattened with ``/``."""
    out = {"root_block/conv_root/kernel": weights["resnet/root_block/standardized_conv2d/kernel"],
           "norm-pre-head/scale": weights["resnet/group_norm/gamma"][None, None, None],
           "norm-pre-head/bias": weights["resnet/group_norm/beta"][None, None, None]}
    if "resnet/head/conv2d/kernel" in weights:
        out["head/kernel"] = weights["resnet/head/conv2d/kernel"][0, 0]
        out["head/bias"] = weights["resnet/head/conv2d/bias"]
    units = sorted({k.split("/")[1] + "/" + k.split("/")[2] for k in weights
                    if k.startswith("resnet/block")})
    for unit in units:
        for i, group in enumerate("abc", 1):
            base = f"resnet/{unit}/{group}/"
            out[f"{unit}/conv{i}/kernel"] = weights[base + "standardized_conv2d/kernel"]
            out[f"{unit}/gn{i}/scale"] = weights[base + "group_norm/gamma"][None, None, None]
            out[f"{unit}/gn{i}/bias"] = weights[base + "group_norm/beta"][None, None, None]
        proj = f"resnet/{unit}/a/proj/standardized_conv2d/kernel"
        if proj in weights:
            out[f"{unit}/conv_proj/kernel"] = weights[proj]
    return out


def numbered_convolutions(weights):
    """The official dict with its convolutions numbered in key order, as some official
    files name them (``.../standardized_conv2d_3/kernel``; the first has no number)."""
    out, n = {}, 0
    for key, value in sorted(weights.items()):
        if "/standardized_conv2d/" in key:
            if n:
                key = key.replace("/standardized_conv2d/", f"/standardized_conv2d_{n}/")
            n += 1
        out[key] = value
    return out
