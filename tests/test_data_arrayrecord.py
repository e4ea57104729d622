"""TFDS datasets prepared as ArrayRecord: random access through TFDS's data source, no image
held, and the same stream, few-shot draw and exact resume as the TFRecord-prepared copy."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

import bit_keras
import bit_keras.datasets  # noqa: F401  registers bit_synthetic
from bit_keras import data as bd
from bit_keras.data.array_records import ArrayRecordStore

NAME = "bit_synthetic/tiny_downstream"


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("BIT_KERAS_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """``{file format: data_dir}``: the tiny downstream task prepared both ways."""
    dirs = {}
    for file_format in ("array_record", "tfrecord"):
        data_dir = str(tmp_path_factory.mktemp(file_format))
        tfds.builder(NAME, data_dir=data_dir, file_format=file_format).download_and_prepare()
        dirs[file_format] = data_dir
    return dirs


def _pixels(ds, batches):
    return [(images.numpy(), labels.numpy()) for images, labels in ds.take(batches)]


def test_an_array_record_split_holds_no_image_and_reads_as_the_tfrecord_one(prepared):
    random_access = bd.from_tfds(NAME, "train", data_dir=prepared["array_record"])
    in_memory = bd.from_tfds(NAME, "train", data_dir=prepared["tfrecord"])
    store = random_access._store
    assert isinstance(store, ArrayRecordStore) and not random_access.streaming
    assert not hasattr(store, "blobs")  # the TFRecord copy holds its encoded images
    np.testing.assert_array_equal(random_access.labels, in_memory.labels)
    assert random_access.class_names == in_memory.class_names
    assert random_access.median_image_area() == in_memory.median_image_area() == 32 * 32
    for ds_a, ds_b in ((bd.eval_dataset(random_access, 50, crop=32),
                        bd.eval_dataset(in_memory, 50, crop=32)),
                       (bd.train_dataset(random_access, 8, resize=40, crop=32, seed=3),
                        bd.train_dataset(in_memory, 8, resize=40, crop=32, seed=3))):
        for (images_a, labels_a), (images_b, labels_b) in zip(_pixels(ds_a, 4), _pixels(ds_b, 4)):
            np.testing.assert_array_equal(images_a, images_b)
            np.testing.assert_array_equal(labels_a, labels_b)


def test_a_resumed_stream_and_a_slice_read_the_records_they_name(prepared):
    source = bd.from_tfds(NAME, "train", data_dir=prepared["array_record"])
    whole = _pixels(bd.train_dataset(source, 8, resize=40, crop=32, seed=1), 5)
    resumed = _pixels(bd.train_dataset(source, 8, resize=40, crop=32, seed=1, start_step=3), 2)
    for (images_a, labels_a), (images_b, labels_b) in zip(whole[3:], resumed):
        np.testing.assert_array_equal(images_a, images_b)
        np.testing.assert_array_equal(labels_a, labels_b)
    half = bd.from_tfds(NAME, "train[50%:]", data_dir=prepared["array_record"])
    assert half.num_examples == source.num_examples // 2
    np.testing.assert_array_equal(half.labels, source.labels[source.num_examples // 2:])
    (tail_images, _), = _pixels(bd.eval_dataset(half, half.num_examples, crop=32), 1)
    (all_images, _), = _pixels(bd.eval_dataset(source, source.num_examples, crop=32), 1)
    np.testing.assert_array_equal(tail_images, all_images[source.num_examples // 2:])


def test_a_few_shot_draw_reads_labels_only_and_the_labels_are_cached(prepared, monkeypatch):
    source = bd.from_tfds(NAME, "train", data_dir=prepared["array_record"])
    few = source.per_class(2, seed=4)
    assert isinstance(few._store, ArrayRecordStore) and few.num_examples == 2 * 24
    assert (np.bincount(few.labels, minlength=24) == 2).all()
    np.testing.assert_array_equal(few.labels, source.labels[few._store.indices])
    calls = []
    monkeypatch.setattr(ArrayRecordStore, "records", lambda self: calls.append(1))
    again = bd.from_tfds(NAME, "train", data_dir=prepared["array_record"],
                         examples_per_class=2, seed=4)
    assert not calls  # the second source read its labels from the cache
    np.testing.assert_array_equal(again._store.indices, few._store.indices)


def test_fine_tune_on_array_records_resumes_to_the_uninterrupted_weights(prepared, tmp_path):
    import fine_tune_support as support
    import keras
    options = dict(steps=6, batch=6, resize=36, crop=32, base_lr=0.3, checkpoint_every=3,
                   eval_every=0, seed=2)
    train = bd.load_source("tfds:" + NAME, "train", data_dir=prepared["array_record"])

    def tune(run_dir):
        keras.utils.set_random_seed(0)
        model = bit_keras.build("R14x1-tiny", num_classes=24)
        return bit_keras.fine_tune(model, train, run_dir=str(run_dir), **options)

    support.resumes_to_uninterrupted_weights(tune, str(tmp_path), last_step=6, kill_step=3)
