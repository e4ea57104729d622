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
