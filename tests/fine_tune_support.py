"""Shared pieces of the fine-tuning tests: a synthetic task on disk and a tiny BiT to tune."""

import os
import subprocess
import sys

import numpy as np
from conftest import TINY

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSES = ("red", "green", "blue")
SIZE = 40  # images on disk; training resizes to RESIZE and crops CROP
RESIZE, CROP = 36, 32
# Settings every fine-tuning test run shares, so runs can be compared weight for weight.
RUN = dict(batch=12, steps=24, base_lr=0.5, resize=RESIZE, crop=CROP, eval_every=8,
           checkpoint_every=4, freeze=1, seed=3)


def write_task(root, train_per_class=12, test_per_class=6, seed=0):
    """``root/{train,test}/<colour>/*.{png,jpg,bmp}``: the class is the dominant colour.

    Noise, a random bright square and a grey level make it a task, not a lookup.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    formats = ("png", "jpg", "bmp")
    for split, n in (("train", train_per_class), ("test", test_per_class)):
        for c, name in enumerate(CLASSES):
            folder = os.path.join(root, split, name)
            os.makedirs(folder, exist_ok=True)
            for i in range(n):
                image = rng.uniform(0.1, 0.5, (SIZE, SIZE, 3)) + rng.uniform(0, 0.2)
                image[..., c] += 0.35
                y, x = rng.integers(0, SIZE - 10, 2)
                image[y:y + 10, x:x + 10] += rng.uniform(0, 0.3)
                pixels = (np.clip(image, 0, 1) * 255).astype(np.uint8)
                ext = formats[i % len(formats)]
                options = {"quality": 95} if ext == "jpg" else {}
                Image.fromarray(pixels).save(os.path.join(folder, f"{name}{i:02d}.{ext}"), **options)
    return root


def write_tiny_model(path, seed=0):
    """A tiny BiT (R14, 16 base filters) with random weights, saved as a ``.keras`` file."""
    import keras

    import bit_keras

    keras.utils.set_random_seed(seed)
    model = bit_keras.resnet_v2(num_classes=len(CLASSES), **TINY)
    model.save(path)
    return path


def cli_args(**options):
    """``--key=value`` flags for ``python -m bit_keras fine_tune``."""
    return [f"--{k}={v}" for k, v in options.items()]


def cli(args, command="fine_tune", **popen):
    """Starts ``python -m bit_keras COMMAND`` with ``args``; returns the Popen."""
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow")
    return subprocess.Popen([sys.executable, "-m", "bit_keras", command, *args], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **popen)


def python(code, env=None, **popen):
    """Starts ``python -c code`` with bit_keras importable; returns the Popen."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.path.dirname(__file__)]),
               TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow", **(env or {}))
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def resumes_to_uninterrupted_weights(tune, root, last_step, kill_step):
    """Runs ``tune(run_dir)`` to the end in ``root/whole``; copies that run as if killed after
    ``kill_step`` (its ``ckpt-<last_step>`` files removed) and runs ``tune`` on the copy,
    which must resume from ``ckpt-<kill_step>`` and end with the same weights."""
    import shutil

    import numpy as np
    whole = tune(os.path.join(root, "whole"))
    killed = os.path.join(root, "killed")
    shutil.copytree(os.path.join(root, "whole"), killed)
    for name in os.listdir(os.path.join(killed, "checkpoints")):
        if name.startswith(f"ckpt-{last_step}"):
            os.remove(os.path.join(killed, "checkpoints", name))
    resumed = tune(killed)
    assert resumed.resumed_from.endswith(f"ckpt-{kill_step}")
    for a, b in zip(resumed.model.get_weights(), whole.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
