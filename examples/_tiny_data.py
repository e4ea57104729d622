"""Small offline inputs for the examples' --tiny mode: a folder of images and a checkpoint."""

import os

import numpy as np


def write_image_folder(root, per_class=6, size=40, seed=0):
    """``root/<class>/*.png``: three colour classes with noise, as a user's folder would be."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c, name in enumerate(("red", "green", "blue")):
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for i in range(per_class):
            image = rng.uniform(0.1, 0.5, (size, size, 3))
            image[..., c] += 0.4
            Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8)).save(
                os.path.join(root, name, f"{name}{i}.png"))
    return root


def write_tiny_checkpoint(path, num_classes=10, seed=0):
    """A randomly initialized R14x1 in the official .npz layout (a stand-in for BiT-M-R50x1.npz)."""
    import keras

    import bit_keras

    keras.utils.set_random_seed(seed)
    model = bit_keras.build("R14x1", num_classes=num_classes)
    for w in model.weights:
        if w.path.endswith("kernel"):
            w.assign(np.random.default_rng(seed).normal(0, 0.05, w.shape).astype("float32"))
    return bit_keras.save_npz(model, path)
