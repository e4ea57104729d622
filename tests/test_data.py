"""bit_keras.data: sources from real image files, real TFDS builders, arrays and tf.data;
the deterministic, resumable, sharded training stream; the evaluation stream."""

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

import bit_keras
from bit_keras import data as bd
from bit_keras.data import folder as folder_module

RNG = np.random.default_rng(0)


def _write(path, array, fmt=None, mode=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = Image.fromarray(array, mode) if mode else Image.fromarray(array)
    image.save(path, fmt)


def _folder(root, classes=3, per_class=6, size=(12, 12)):
    for c in range(classes):
        for k in range(per_class):
            pixels = np.full(size + (3,), 10 * c + k, np.uint8)
            _write(str(root / f"class{c}" / f"img{k:02d}.png"), pixels)
    return str(root)


def _numpy_bilinear(image, size):
    """TF2 resize (half-pixel centres, bilinear, no antialias), in float64."""
    h, w = image.shape[:2]

    def axis(n_in, n_out):
        pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(pos).astype(int)
        return lo, np.minimum(lo + 1, n_in - 1), pos - lo
    y0, y1, fy = axis(h, size)
    x0, x1, fx = axis(w, size)
    image = image.astype(np.float64)
    top = image[y0][:, x0] * (1 - fx)[None, :, None] + image[y0][:, x1] * fx[None, :, None]
    bot = image[y1][:, x0] * (1 - fx)[None, :, None] + image[y1][:, x1] * fx[None, :, None]
    return top * (1 - fy)[:, None, None] + bot * fy[:, None, None]


def _take(ds, n):
    return [(x.numpy(), y.numpy()) for x, y in ds.take(n)]


def _index_source(n=10, size=8, classes=2):
    """Every image is constant, of value index / 255: an image tells which example it is."""
    images = np.repeat(np.arange(n, dtype=np.uint8), size * size * 3).reshape(n, size, size, 3)
    return bd.from_arrays(images, np.arange(n) % classes)


def _ids(batches):
    return [int(round(v)) for x, _ in batches for v in x[:, 0, 0, 0] * 255]


# --- folders ---------------------------------------------------------------------------

def test_folder_formats_modes_and_corrupt_files(tmp_path):
    rgb = RNG.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    gray = RNG.integers(0, 256, (16, 16), dtype=np.uint8)
    rgba = RNG.integers(0, 256, (16, 16, 4), dtype=np.uint8)
    _write(str(tmp_path / "a" / "1.jpg"), rgb, "JPEG")
    _write(str(tmp_path / "a" / "2.png"), gray, "PNG")
    _write(str(tmp_path / "a" / "3.png"), rgba, "PNG", "RGBA")
    _write(str(tmp_path / "b" / "4.bmp"), rgb, "BMP")
    _write(str(tmp_path / "b" / "5.gif"), rgb, "GIF")
    _write(str(tmp_path / "b" / "sub" / "6.tiff"), rgb, "TIFF")  # Pillow only; recursive
    Image.fromarray(rgb).quantize(16).save(tmp_path / "b" / "7.bmp")  # TF misreads palettes
    (tmp_path / "b" / "bad.jpg").write_bytes(b"not an image at all")
    (tmp_path / "a" / "cut.png").write_bytes((tmp_path / "a" / "2.png").read_bytes()[:60])
    (tmp_path / "a" / "notes.txt").write_text("ignored")
    source = bd.from_folder(tmp_path)  # lists the files, decodes none
    assert source.class_names == ["a", "b"] and source.num_examples == 9
    np.testing.assert_array_equal(source.labels, [0, 0, 0, 0, 1, 1, 1, 1, 1])
    # The evaluation meets the two bad files, leaves them out and reports them.
    log = tmp_path.parent / f"{tmp_path.name}_skipped.txt"
    (images, labels), = _take(bd.eval_dataset(source, 16, crop=16, skipped_log=str(log)), 1)
    assert sorted(log.read_text().split()) == [str(tmp_path / "a" / "cut.png"),
                                               str(tmp_path / "b" / "bad.jpg")]
    np.testing.assert_array_equal(labels, np.eye(2)[[0, 0, 0, 1, 1, 1, 1]])
    got = np.round(images * 255).astype(int)
    with Image.open(tmp_path / "a" / "1.jpg") as im:
        assert np.abs(got[0] - np.asarray(im.convert("RGB"), int)).max() <= 8  # two IDCTs
    np.testing.assert_array_equal(got[1], np.repeat(gray[..., None], 3, -1))
    np.testing.assert_array_equal(got[2], rgba[..., :3])
    np.testing.assert_array_equal(got[3], rgb)
    with Image.open(tmp_path / "b" / "5.gif") as im:
        np.testing.assert_array_equal(got[4], np.asarray(im.convert("RGB")))
    with Image.open(tmp_path / "b" / "7.bmp") as im:
        np.testing.assert_array_equal(got[5], np.asarray(im.convert("RGB")))
    np.testing.assert_array_equal(got[6], rgb)  # sub/6.tiff sorts last


def test_folder_median_area_is_of_the_original_images(tmp_path):
    sizes = [(10, 20), (30, 30), (8, 8), (50, 12), (16, 40)]
    for i, (h, w) in enumerate(sizes):
        _write(str(tmp_path / f"c{i % 2}" / f"{i}.png"), np.zeros((h, w, 3), np.uint8))
    source = bd.from_folder(tmp_path)
    assert source.median_image_area() == np.median([h * w for h, w in sizes])
    np.testing.assert_array_equal(np.sort(source.image_sizes()[:, 0]), sorted(h for h, _ in sizes))


def test_few_shot_is_deterministic_per_seed_and_ignores_listing_order(tmp_path, monkeypatch):
    root = _folder(tmp_path, classes=3, per_class=6)
    draw = lambda seed: list(bd.from_folder(root, examples_per_class=2, seed=seed)._store.paths)
    first = draw(0)
    assert len(first) == 6 and first == draw(0)
    assert any(draw(s) != first for s in (1, 2, 3))
    # The rule, computed independently: class c's sorted files, permuted by (seed, c).
    expected = []
    for c in range(3):
        files = sorted(os.path.join(root, f"class{c}", f"img{k:02d}.png") for k in range(6))
        expected += sorted(np.array(files)[np.random.default_rng([0, c]).permutation(6)[:2]])
    assert first == expected
    real_walk = os.walk
    monkeypatch.setattr(folder_module.os, "walk", lambda *a, **k: (
        (root_, dirs, names[::-1]) for root_, dirs, names in real_walk(*a, **k)))
    assert draw(0) == first


def test_few_shot_passes_over_unreadable_files(tmp_path):
    root = _folder(tmp_path, classes=2, per_class=3)
    (tmp_path / "class0" / "img00.png").write_bytes(b"broken")
    with pytest.warns(UserWarning, match="img00.png"):
        source = bd.from_folder(root, examples_per_class=2, seed=0)
    assert source.num_examples == 4
    assert not any(p.endswith(os.path.join("class0", "img00.png")) for p in source._store.paths)
    with pytest.warns(UserWarning, match="img00.png"):  # the warning tells why a class is short
        with pytest.raises(ValueError, match="class 'class0' has 2 readable"):
            bd.from_folder(root, examples_per_class=3, seed=0)


def test_folder_errors_name_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="path=.*missing"):
        bd.from_folder(tmp_path / "missing")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(NotADirectoryError, match="file.txt"):
        bd.from_folder(tmp_path / "file.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="one subfolder per class"):
        bd.from_folder(tmp_path / "empty")
    root = _folder(tmp_path / "few", classes=2, per_class=3)
    os.remove(os.path.join(root, "class1", "img00.png"))
    with pytest.raises(ValueError, match=r"examples_per_class=3 .*class 'class1' has 2"):
        bd.from_folder(root, examples_per_class=3)
    os.makedirs(os.path.join(root, "class2"))
    with pytest.raises(ValueError, match="'class2'"):
        bd.from_folder(root)
    with pytest.raises(ValueError, match="examples_per_class=0"):
        bd.from_folder(root, examples_per_class=0)
    with pytest.raises(ValueError, match="seed=-1"):
        bd.from_folder(root, seed=-1)


# --- arrays and tf.data ------------------------------------------------------------------

def test_from_arrays_converts_every_accepted_form():
    u8 = RNG.integers(0, 256, (4, 6, 6, 3), dtype=np.uint8)
    source = bd.from_arrays(u8.astype(np.float32) / 255, [0, 1, 2, 1], class_names="xyz")
    assert source.class_names == ["x", "y", "z"] and not source.multi_label
    (images, _), = _take(bd.eval_dataset(source, 4, crop=6), 1)
    np.testing.assert_allclose(images, u8 / 255, atol=1e-6)
    gray = bd.from_arrays(u8[..., 0], [0, 0, 1, 1])  # NHW
    (images, _), = _take(bd.eval_dataset(gray, 4, crop=6), 1)
    np.testing.assert_allclose(images * 255, np.repeat(u8[..., :1], 3, -1), atol=1e-4)
    rgba = bd.from_arrays(np.concatenate([u8, u8[..., :1]], -1), [0, 0, 1, 1])
    (images, _), = _take(bd.eval_dataset(rgba, 4, crop=6), 1)
    np.testing.assert_allclose(images * 255, u8, atol=1e-4)
    mixed_sizes = bd.from_arrays([u8[0], u8[1, :4], u8[2, :, :2]], [0, 1, 0])
    assert mixed_sizes.median_image_area() == 24
    one_hot = bd.from_arrays(u8, np.eye(3)[[0, 1, 2, 0]])
    assert not one_hot.multi_label and list(one_hot.labels) == [0, 1, 2, 0]
    multi = bd.from_arrays(u8, [[1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1]])
    assert multi.multi_label and multi.num_classes == 3
    np.testing.assert_array_equal(multi.one_hot_labels()[3], [1, 0, 1])


@pytest.mark.parametrize("images, labels, message", [
    (np.full((2, 4, 4, 3), 1.5, np.float32), [0, 1], r"\[0, 1\]"),
    (np.full((2, 4, 4, 3), 300, np.int32), [0, 1], "0..255"),
    (np.zeros((2, 4, 4, 2), np.uint8), [0, 1], "C in 1, 3, 4"),
    (np.zeros((2, 4, 4, 3), np.uint8), [0, 1, 2], r"labels must be \(2,\)"),
    (np.zeros((2, 4, 4, 3), np.uint8), [0, -1], r"labels must lie in \[0, 1\)"),
    (np.zeros((2, 4, 4, 3), np.uint8), [[0, 2], [1, 0]], "multi-hot labels must be 0 or 1"),
    (np.zeros((4, 4), np.uint8), [0], "NHWC"),
])
def test_from_arrays_errors(images, labels, message):
    with pytest.raises(ValueError, match=message):
        bd.from_arrays(images, labels)


def test_from_dataset_reads_pairs_dicts_and_batches():
    images = RNG.integers(0, 256, (6, 5, 5, 3), dtype=np.uint8)
    labels = np.array([0, 1, 2, 0, 1, 2])
    pairs = bd.from_dataset(tf.data.Dataset.from_tensor_slices((images, labels)).batch(4))
    assert pairs.num_examples == 6 and pairs.num_classes == 3
    (got, one_hot), = _take(bd.eval_dataset(pairs, 6, crop=5), 1)
    np.testing.assert_allclose(got * 255, images, atol=1e-4)
    np.testing.assert_array_equal(one_hot.argmax(1), labels)
    dicts = bd.from_dataset(tf.data.Dataset.from_tensor_slices(
        {"image": images, "label": labels}), num_classes=3, examples_per_class=1, seed=0)
    assert dicts.num_classes == 3 and dicts.num_examples == 3
    wider = bd.from_dataset(tf.data.Dataset.from_tensor_slices((images, labels)), num_classes=5)
    assert wider.class_names == ["0", "1", "2", "3", "4"]
    with pytest.raises(ValueError, match=r"class '3' has 0, class '4' has 0"):
        bd.from_dataset(tf.data.Dataset.from_tensor_slices((images, labels)), num_classes=5,
                        examples_per_class=1)
    with pytest.raises(ValueError, match="finite"):
        bd.from_dataset(tf.data.Dataset.from_tensor_slices((images, labels)).repeat())


# --- TFDS: real builders, prepared in a temporary data_dir, no network ------------------

class BitKerasTestImages(tfds.core.GeneratorBasedBuilder):
    """Twelve PNG images of varied sizes in three classes; a six-image test split."""
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self, features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3)),
                "label": tfds.features.ClassLabel(names=["ant", "bee", "cat"])}),
            supervised_keys=("image", "label"))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(12, 0), "test": self._generate_examples(6, 1)}

    def _generate_examples(self, n, seed):
        for i in range(n):
            yield i, {"image": _tfds_image(seed, i), "label": i % 3}


class BitKerasTestMultiLabel(tfds.core.GeneratorBasedBuilder):
    """Four images, each with a set of labels (ImageNet-21k style)."""
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(8, 8, 3)),
            "labels": tfds.features.Sequence(tfds.features.ClassLabel(num_classes=4))}),
            supervised_keys=("image", "labels"))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for i, labels in enumerate([[0, 1], [2], [1, 3], []]):
            yield i, {"image": np.full((8, 8, 3), i, np.uint8), "labels": labels}


def _tfds_image(seed, i):
    return np.random.default_rng([seed, i]).integers(0, 256, (8 + i, 10, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    for builder in (BitKerasTestImages, BitKerasTestMultiLabel):
        builder(data_dir=data_dir).download_and_prepare()
    return data_dir


def test_from_tfds_reads_images_labels_and_sizes(tfds_dir):
    source = bd.from_tfds("bit_keras_test_images", split="test", data_dir=tfds_dir)
    assert source.num_examples == 6 and source.class_names == ["ant", "bee", "cat"]
    # TFDS orders records by a hash of their keys; image i is the one of height 8 + i.
    generated = source.image_sizes()[:, 0] - 8
    assert sorted(generated) == list(range(6)) and np.all(source.image_sizes()[:, 1] == 10)
    np.testing.assert_array_equal(source.labels, generated % 3)
    assert source.median_image_area() == np.median([(8 + i) * 10 for i in range(6)])
    load = source.image_loader()
    for index, i in enumerate(generated):
        np.testing.assert_allclose(load(tf.constant(index, tf.int64)).numpy() * 255,
                                   _tfds_image(1, i), atol=1e-4)
    few = bd.from_tfds("bit_keras_test_images", data_dir=tfds_dir, examples_per_class=2, seed=3)
    assert few.num_examples == 6 and np.bincount(few.labels).tolist() == [2, 2, 2]
    assert bd.load_source("tfds:bit_keras_test_images", "train[:4]", data_dir=tfds_dir,
                          ).num_examples == 4


def test_from_tfds_multi_label(tfds_dir):
    source = bd.load_source("bit_keras_test_multi_label", data_dir=tfds_dir)
    assert source.multi_label and source.num_classes == 4
    (images, labels), = _take(bd.eval_dataset(source, 4, crop=8), 1)
    generated = np.round(images[:, 0, 0, 0] * 255).astype(int)  # image i has value i
    expected = np.array([[1, 1, 0, 0], [0, 0, 1, 0], [0, 1, 0, 1], [0, 0, 0, 0]])
    np.testing.assert_array_equal(source.labels, expected[generated])
    np.testing.assert_array_equal(labels, expected[generated])
    assert source.median_image_area() == 64
    with pytest.raises(ValueError, match="multi-label"):
        source.per_class(1)
    (_, labels), = _take(bd.train_dataset(source, 4, resize=8, crop=8), 1)
    assert sorted(map(tuple, labels)) == sorted(map(tuple, source.labels))


def test_from_tfds_errors(tfds_dir):
    with pytest.raises(ValueError, match=r"name='cifar11'.*'cifar10'.*list_builders"):
        bd.from_tfds("cifar11", data_dir=tfds_dir)
    with pytest.raises(ValueError, match=r"split must be one of \['test', 'train'\].*valid"):
        bd.from_tfds("bit_keras_test_images", split="valid", data_dir=tfds_dir)
    with pytest.raises(ValueError, match=r"examples_per_class=5 .*class 'ant' has 4"):
        bd.from_tfds("bit_keras_test_images", data_dir=tfds_dir, examples_per_class=5)
    with pytest.raises(ValueError, match="not prepared.*download=False"):
        bd.from_tfds("bit_keras_test_images", data_dir=tfds_dir + "_empty", download=False)
    with pytest.raises(ValueError, match="Received: name=3"):
        bd.from_tfds(3)
    with pytest.raises(TypeError, match="ds must be a tf.data.Dataset"):
        bd.from_dataset([1, 2])


def test_load_source_dispatch(tmp_path, tfds_dir):
    _folder(tmp_path / "train", classes=2, per_class=2)
    _folder(tmp_path / "test", classes=2, per_class=1)
    assert bd.load_source(str(tmp_path), "test").num_examples == 2
    assert bd.load_source(tmp_path / "train").num_examples == 4
    plain = _folder(tmp_path / "plain", classes=2, per_class=3)
    assert bd.load_source(plain, examples_per_class=1).num_examples == 2
    with pytest.raises(FileNotFoundError, match="split 'test'"):
        bd.load_source(plain, "test")
    source = _index_source(4)
    assert bd.load_source(source) is source
    assert bd.load_source((np.zeros((3, 4, 4, 3), np.uint8), [0, 1, 1])).num_classes == 2
    assert bd.load_source(tf.data.Dataset.from_tensor_slices(
        (np.zeros((3, 4, 4, 3), np.uint8), [0, 1, 1]))).num_examples == 3
    with pytest.raises(ValueError, match="Unknown argument.*data_dir"):
        bd.load_source(plain, data_dir=tfds_dir)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        bd.load_source(str(tmp_path / "nowhere" / "x"))
    with pytest.raises(ValueError, match="Unknown TFDS dataset name.*'no_such_set/config'"):
        bd.load_source("no_such_set/config", data_dir=tfds_dir)  # TFDS names hold "/"
    with pytest.raises(TypeError, match="Received: int"):
        bd.load_source(3)
    assert bit_keras.data.from_folder is bd.from_folder


# --- the training stream -----------------------------------------------------------------

@pytest.mark.parametrize("augment, mixup", [("hyperrule", 0.5), ("inception", 0.0)])
def test_train_stream_resumes_exactly(augment, mixup):
    source = bd.from_arrays(RNG.integers(0, 256, (7, 12, 12, 3), dtype=np.uint8),
                            [0, 1, 2, 0, 1, 2, 0])
    kw = dict(resize=12, crop=8, mixup_alpha=mixup, seed=5, augment=augment)
    full = _take(bd.train_dataset(source, 3, **kw), 6)
    tail = _take(bd.train_dataset(source, 3, start_step=4, **kw), 2)
    for (x, y), (x2, y2) in zip(full[4:], tail):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
    assert full[0][0].shape == (3, 8, 8, 3) and full[0][1].shape == (3, 3)
    assert all(x.min() >= 0 and x.max() <= 1 for x, _ in full)
    other = _take(bd.train_dataset(source, 3, **dict(kw, seed=6)), 6)
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(full, other))


def test_train_stream_visits_every_example_once_per_epoch():
    source = _index_source(10)
    ids = _ids(_take(bd.train_dataset(source, 5, resize=8, crop=8, seed=1), 6))
    epochs = [ids[0:10], ids[10:20], ids[20:30]]
    assert all(sorted(e) == list(range(10)) for e in epochs)
    assert epochs[0] != epochs[1] and epochs[0] != list(range(10))
    (x, y), = _take(bd.train_dataset(source, 5, resize=8, crop=8, seed=1), 1)
    np.testing.assert_array_equal(y, np.eye(2)[np.array(ids[:5]) % 2])


def test_input_context_shards_the_examples():
    source = _index_source(11)
    shards = []
    for i in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=i,
                                             num_replicas_in_sync=2)
        ids = _ids(_take(bd.train_dataset(source, 3, resize=8, crop=8, input_context=context), 4))
        shards.append(set(ids[:len(range(i, 11, 2))]))
        assert set(ids) <= set(range(i, 11, 2))
        evaluated = _ids(_take(bd.eval_dataset(source, 4, crop=8, input_context=context), 9))
        assert evaluated == list(range(i, 11, 2))
    assert shards[0] | shards[1] == set(range(11)) and not shards[0] & shards[1]
    with pytest.raises(ValueError, match="num_input_pipelines=12"):
        bd.train_dataset(source, 1, resize=8, crop=8, input_context=tf.distribute.InputContext(
            num_input_pipelines=12, input_pipeline_id=11))


def test_flip_is_random_not_every_image():
    half = np.zeros((1, 8, 8, 3), np.uint8)
    half[:, :, 4:] = 255  # right half white: a flip moves it to the left
    source = bd.from_arrays(np.repeat(half, 4, 0), [0, 1, 0, 1])
    x = np.concatenate([x for x, _ in _take(bd.train_dataset(source, 16, resize=8, crop=8), 8)])
    flipped = x[:, 0, 0, 0] > 0.5
    np.testing.assert_array_equal(x[flipped], np.repeat(half[:, :, ::-1] / 255, flipped.sum(), 0))
    np.testing.assert_array_equal(x[~flipped], np.repeat(half / 255, (~flipped).sum(), 0))
    assert 40 <= flipped.sum() <= 88  # 128 fair coins: 64 +- 24 (4.2 sigma)


def test_hyperrule_is_resize_then_a_random_window():
    image = RNG.integers(0, 256, (1, 10, 14, 3), dtype=np.uint8)
    source = bd.from_arrays(image, [0])
    resized = _numpy_bilinear(image[0] / 255, 12)
    windows = {(r, c): resized[r:r + 8, c:c + 8] for r in range(5) for c in range(5)}
    seen = set()
    for x, _ in _take(bd.train_dataset(source, 8, resize=12, crop=8, seed=2), 4):
        for crop in x:
            match = [k for k, w in windows.items() if np.abs(w - crop).max() < 1e-5
                     or np.abs(w[:, ::-1] - crop).max() < 1e-5]
            assert match, "a training crop is no window of the resized image"
            seen.add(match[0])
    assert len(seen) >= 8  # 32 crops out of 25 windows land in many places


def test_eval_resizes_to_crop_like_numpy_and_keeps_order():
    images = [RNG.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(9, 13), (20, 6),
                                                                          (4, 4)]]
    source = bd.from_arrays(images, [2, 0, 1])
    batches = _take(bd.eval_dataset(source, 2, crop=7), 5)
    assert [len(x) for x, _ in batches] == [2, 1]
    got = np.concatenate([x for x, _ in batches])
    for image, resized in zip(images, got):
        np.testing.assert_allclose(resized, _numpy_bilinear(image / 255, 7), atol=1e-5)
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), np.eye(3)[[2, 0, 1]])


def test_mixup_mixes_the_batch_with_its_reverse():
    source = _index_source(8, classes=4)
    plain = _take(bd.train_dataset(source, 4, resize=8, crop=8, seed=3), 40)
    mixed = _take(bd.train_dataset(source, 4, resize=8, crop=8, seed=3, mixup_alpha=1.0), 40)
    weights = []
    for (x, y), (xm, ym) in zip(plain, mixed):
        first, last = y[0].argmax(), y[-1].argmax()
        w = ym[0, first] if first != last else None
        if w is None:
            continue
        weights.append(w)
        np.testing.assert_allclose(xm, w * x + (1 - w) * x[::-1], atol=1e-6)
        np.testing.assert_allclose(ym, w * y + (1 - w) * y[::-1], atol=1e-6)
    # Beta(1, 1) is uniform: mean 1/2, variance 1/12.
    assert len(weights) > 20
    assert abs(np.mean(weights) - 0.5) < 0.15 and abs(np.var(weights) - 1 / 12) < 0.04
    peaked = _take(bd.train_dataset(source, 4, resize=8, crop=8, seed=3, mixup_alpha=0.1), 30)
    near_edge = [min(y[0].max(), 1 - y[0].max()) < 0.1 for _, y in peaked]
    assert np.mean(near_edge) > 0.5  # Beta(0.1, 0.1) puts most weight near 0 and 1


def test_inception_crop_boxes_obey_area_and_aspect_ranges():
    ramp = np.linspace(0, 1, 64, dtype=np.float32)
    image = np.stack([np.tile(ramp, (64, 1)), np.tile(ramp[:, None], (1, 64)),
                      np.zeros((64, 64), np.float32)], -1)  # channel 0 = x, channel 1 = y
    source = bd.from_arrays(image[None], [0])
    areas, aspects = [], []
    for x, _ in _take(bd.train_dataset(source, 16, crop=16, augment="inception", seed=4), 4):
        for crop in x:
            width = (np.ptp(crop[..., 0]) * 63 + 1) / 64
            height = (np.ptp(crop[..., 1]) * 63 + 1) / 64
            areas.append(width * height)
            aspects.append(width / height)
    assert min(areas) > 0.04 and max(areas) <= 1.0 + 1e-6 and np.ptp(areas) > 0.3
    assert min(aspects) > 0.7 and max(aspects) < 1.43


@pytest.mark.parametrize("kwargs, message", [
    (dict(batch_size=0), "batch_size=0"),
    (dict(resize=8, crop=12), "resize=8, crop=12"),
    (dict(augment="flip"), "augment='flip'"),
    (dict(mixup_alpha=-1.0), "mixup_alpha=-1.0"),
    (dict(start_step=-2), "start_step=-2"),
    (dict(seed=1.5), "seed=1.5"),
])
def test_train_dataset_errors(kwargs, message):
    kwargs = dict(dict(batch_size=2, resize=16, crop=8), **kwargs)
    with pytest.raises(ValueError, match=message):
        bd.train_dataset(_index_source(4), **kwargs)
    with pytest.raises(TypeError, match="bit_keras.data.Source"):
        bd.eval_dataset(np.zeros((2, 4, 4, 3)), 2)


_MIRRORED = """
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import bit_keras
images = np.repeat(np.arange(8, dtype=np.uint8), 4 * 4 * 3).reshape(8, 4, 4, 3)
source = bit_keras.data.from_arrays(images, np.arange(8) % 2)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
ds = strategy.distribute_datasets_from_function(lambda ctx: bit_keras.data.train_dataset(
    source, ctx.get_per_replica_batch_size(4), resize=4, crop=4, input_context=ctx))
it = iter(ds)
for _ in range(4):
    x, y = next(it)
    print(*[int(round(v * 255)) for t in strategy.experimental_local_results(x)
            for v in t.numpy()[:, 0, 0, 0]])
"""


def test_mirrored_strategy_feeds_two_replicas_every_example_per_epoch():
    import subprocess
    import sys
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(bit_keras.__file__)))
    out = subprocess.run([sys.executable, "-c", _MIRRORED], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    ids = [int(v) for line in out.stdout.split("\n") if line for v in line.split()]
    assert len(ids) == 16
    assert sorted(ids[:8]) == list(range(8)) and sorted(ids[8:]) == list(range(8))


class BitKerasTestManual(tfds.core.GeneratorBasedBuilder):
    """Images prepared from files a user downloaded by hand (as ImageNet's tars)."""
    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = "Put levels.txt (one grey level a line) in the manual dir."

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(4, 4, 3)),
            "label": tfds.features.ClassLabel(num_classes=2)}), supervised_keys=("image", "label"))

    def _split_generators(self, dl_manager):
        levels = (dl_manager.manual_dir / "levels.txt").read_text().split()
        return {"train": self._generate_examples([int(v) for v in levels])}

    def _generate_examples(self, levels):
        for i, level in enumerate(levels):
            yield i, {"image": np.full((4, 4, 3), level, np.uint8), "label": i % 2}


def test_tfds_manual_dir_and_datadir_flags_prepare_and_read(tmp_path):
    from absl import flags

    from bit_keras.cli import common, run_fine_tune
    (tmp_path / "manual").mkdir()
    (tmp_path / "manual" / "levels.txt").write_text("10 20 30 40")
    fv = flags.FlagValues()
    run_fine_tune.define_flags(fv)
    fv(["fine_tune", "--dataset=bit_keras_test_manual", f"--datadir={tmp_path / 'tfds'}",
        f"--tfds_manual_dir={tmp_path / 'manual'}", "--eval_dataset=tfds:bit_keras_test_manual"])
    with pytest.raises(ValueError, match="split must be one of"):  # it has no test split
        common.data_specs(fv, bd)
    assert (tmp_path / "tfds" / "bit_keras_test_manual").is_dir()  # prepared from the manual dir
    fv.eval_dataset = None
    train, held_out = common.data_specs(fv, bd, default_eval=False)
    assert held_out is None
    (images, _), = _take(bd.eval_dataset(train, 4, crop=4), 1)
    assert sorted(np.round(images[:, 0, 0, 0] * 255).astype(int)) == [10, 20, 30, 40]


def test_the_official_splits_of_named_datasets(tfds_dir, monkeypatch):
    from bit_keras.data import loading
    assert loading.official_split("cifar10", "train") == "train[:98%]"
    assert loading.official_split("imagenet2012:5.1.0", "test") == "validation"
    assert loading.official_split("cifar10", "train[:100%]") == "train[:100%]"
    monkeypatch.setitem(loading.OFFICIAL_SPLITS, "bit_keras_test_images",
                        {"train": "train[:50%]", "test": "train[50%:]"})
    assert bd.load_source("bit_keras_test_images", "train", data_dir=tfds_dir).num_examples == 6
    assert bd.load_source("tfds:bit_keras_test_images", "test", data_dir=tfds_dir).num_examples == 6


def test_a_streamed_tfds_split_matches_the_in_memory_one(tfds_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("BIT_KERAS_HOME", str(tmp_path / "home"))
    for split in ("train", "train[:50%]", "test"):
        memory = bd.from_tfds("bit_keras_test_images", split, data_dir=tfds_dir, stream=False)
        streamed = bd.from_tfds("bit_keras_test_images", split, data_dir=tfds_dir, stream=True)
        assert streamed._store.streaming and not getattr(memory._store, "streaming", False)
        np.testing.assert_array_equal(streamed.labels, memory.labels)
        assert streamed.class_names == memory.class_names
        (a, la), = _take(bd.eval_dataset(memory, 32, crop=8), 1)
        (b, lb), = _take(bd.eval_dataset(streamed, 32, crop=8), 1)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)
    source = bd.from_tfds("bit_keras_test_images", data_dir=tfds_dir, stream=True)
    stream = lambda start: bd.train_dataset(source, 4, resize=8, crop=8, start_step=start)
    first = np.concatenate([x.numpy() for x, _ in stream(0).take(6)])
    assert np.array_equal(np.concatenate([x.numpy() for x, _ in stream(2).take(4)]), first[8:])
    few = bd.from_tfds("bit_keras_test_images", data_dir=tfds_dir, stream=True,
                       examples_per_class=2, seed=3)
    assert np.bincount(few.labels).tolist() == [2, 2, 2] and not few.may_fail
    with pytest.raises(ValueError, match="stream=True needs a single-label"):
        bd.from_tfds("bit_keras_test_multi_label", data_dir=tfds_dir, stream=True)
