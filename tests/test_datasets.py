"""The ``bit_synthetic`` dataset: disjoint class groups over shared primitives, determinism
per seed, the real TFDS builder against the NumPy generator, and the task's difficulty."""

import itertools

import numpy as np
import pytest

import bit_keras.datasets as ds
from bit_keras import fewshot
from bit_keras.datasets import drawing


def test_groups_are_disjoint_and_share_every_primitive():
    up, down = ds.CLASSES["upstream"], ds.CLASSES["downstream"]
    assert (len(up), len(down)) == (168, 24)
    assert not set(up) & set(down)
    assert set(up) | set(down) == set(itertools.product(drawing.COLOURS, drawing.TEXTURES,
                                                        drawing.SHAPES))
    for colour, texture, shape in down:  # every pair of a downstream class is seen upstream
        assert any(c == colour and t == texture for c, t, _ in up)
        assert any(t == texture and s == shape for _, t, s in up)
        assert any(c == colour and s == shape for c, _, s in up)
    assert ds.class_names("downstream")[0] == "_".join(down[0])
    colour, texture, shape = ds.factors("downstream", [0, 23])
    assert [drawing.SHAPES[s] for s in shape] == [down[0][2], down[23][2]]


def test_generate_is_deterministic_per_seed():
    images, labels = ds.generate("downstream", "train", 2, image_size=32, seed=3)
    again, _ = ds.generate("downstream", "train", 2, image_size=32, seed=3)
    other, _ = ds.generate("downstream", "train", 2, image_size=32, seed=4)
    test, _ = ds.generate("downstream", "test", 2, image_size=32, seed=3)
    assert images.shape == (48, 32, 32, 3) and images.dtype == np.uint8
    assert labels.tolist() == list(range(24)) * 2
    assert np.array_equal(images, again)
    assert not np.array_equal(images, other)
    assert not any(np.array_equal(a, b) for a, b in zip(images, test))
    # An image depends only on its own (group, split, class, index, seed).
    assert np.array_equal(ds.render("downstream", "train", 5, 1, 32, 3), images[24 + 5])
    assert len({im.tobytes() for im in images}) == 48


@pytest.mark.parametrize("kwargs,message", [
    (dict(group="side"), "group must be one of"),
    (dict(split="validation"), "split must be one of"),
    (dict(examples_per_class=0), "examples_per_class must be a positive int"),
    (dict(image_size=8), "image_size must be an int of at least 16"),
])
def test_generate_errors(kwargs, message):
    args = dict(group="upstream", split="train", examples_per_class=1, image_size=32)
    with pytest.raises(ValueError, match=message):
        ds.generate(**{**args, **kwargs})


def test_tfds_load_builds_the_numpy_images(tmp_path):
    import tensorflow_datasets as tfds
    data_dir = str(tmp_path)
    splits = {}
    for split in ("train", "test"):
        examples = list(tfds.as_numpy(tfds.load("bit_synthetic/tiny_downstream", split=split,
                                                data_dir=data_dir)))
        images, labels = ds.generate("downstream", split, 5 if split == "train" else 2,
                                     image_size=32)
        assert len(examples) == len(images)
        for example in examples:
            row = int(example["id"].decode().split("/")[1])
            assert np.array_equal(example["image"], images[row])
            assert example["label"] == labels[row]
            colour, texture, shape = ds.CLASSES["downstream"][labels[row]]
            assert drawing.SHAPES[example["shape"]] == shape
            assert drawing.TEXTURES[example["texture"]] == texture
        splits[split] = examples
    info = tfds.builder("bit_synthetic/tiny_downstream", data_dir=data_dir).info
    assert info.features["label"].names == ds.class_names("downstream")
    upstream = tfds.builder("bit_synthetic/tiny_upstream", data_dir=data_dir).info
    assert not set(upstream.features["label"].names) & set(info.features["label"].names)


def test_tfds_seed_config_changes_the_pixels(tmp_path):
    import tensorflow_datasets as tfds
    config = ds.BitSyntheticConfig(name="seed7", group="downstream", image_size=16,
                                   train_per_class=1, test_per_class=1, seed=7)
    builder = tfds.builder("bit_synthetic", config=config, data_dir=str(tmp_path))
    builder.download_and_prepare()
    examples = list(tfds.as_numpy(builder.as_dataset(split="test")))
    images, _ = ds.generate("downstream", "test", 1, image_size=16, seed=7)
    seed0, _ = ds.generate("downstream", "test", 1, image_size=16, seed=0)
    for example in examples:
        row = int(example["id"].decode().split("/")[1])
        assert np.array_equal(example["image"], images[row])
        assert not np.array_equal(example["image"], seed0[row])


def test_raw_pixels_do_not_solve_the_task():
    """Above chance (colour shows in the pixels) but far from solved: the object's position,
    scale and rotation vary and the background is cluttered."""
    train, train_labels = ds.generate("downstream", "train", 5, image_size=32)
    test, test_labels = ds.generate("downstream", "test", 5, image_size=32)
    flat = lambda x: x.reshape(len(x), -1) / 255.0  # noqa: E731
    result = fewshot.evaluate_features(flat(train), train_labels, flat(test), test_labels,
                                       shots=(5,), seeds=1)
    assert 1 / 24 < result.mean(5) < 0.4
