"""TFRecord shards of tf.train.Example: streamed, sharded by file, exact on resume."""

import io
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import bit_keras
from bit_keras import data as bd

SIZE, CLASSES, PER_FILE, FILES = 8, 3, 6, 4


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("BIT_KERAS_HOME", str(tmp_path / "home"))


def _png(level):
    buffer = io.BytesIO()
    Image.fromarray(np.full((SIZE, SIZE, 3), level, np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def write_records(folder, files=FILES, per_file=PER_FILE, offset=0, bad=None):
    """Example ``k`` is a constant image of grey level ``k + 1`` with label ``k % CLASSES``."""
    os.makedirs(folder, exist_ok=True)
    k = 0
    for f in range(files):
        with tf.io.TFRecordWriter(os.path.join(folder, f"train-{f:05d}-of-{files:05d}")) as w:
            for _ in range(per_file):
                label = k % CLASSES
                encoded = b"\x89PNG broken" if k == bad else _png(k + 1)
                w.write(tf.train.Example(features=tf.train.Features(feature={
                    "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
                    "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label + offset])),
                    "image/class/text": tf.train.Feature(bytes_list=tf.train.BytesList(
                        value=[f"class{label}".encode()])),
                })).SerializeToString())
                k += 1
    return os.path.join(folder, "train-*")


def _levels(ds, batches):
    return [int(round(float(v))) for images, _ in ds.take(batches)
            for v in images.numpy()[:, 0, 0, 0] * 255]


def test_a_tfrecord_source_keeps_labels_and_counts_only(tmp_path):
    source = bd.from_tfrecords(write_records(tmp_path / "r", offset=1), label_offset=1)
    n = FILES * PER_FILE
    assert source.num_examples == n and source.class_names == ["class0", "class1", "class2"]
    np.testing.assert_array_equal(source.labels, np.arange(n) % CLASSES)
    np.testing.assert_array_equal(source._store.counts, [PER_FILE] * FILES)
    assert source.median_image_area() == SIZE * SIZE
    (images, labels), = list(bd.eval_dataset(source, n, crop=SIZE))
    np.testing.assert_array_equal(np.round(images.numpy()[:, 0, 0, 0] * 255), np.arange(1, n + 1))
    np.testing.assert_array_equal(labels.numpy().argmax(1), np.arange(n) % CLASSES)
    with pytest.raises(ValueError, match=r"labels must be >= 0 after label_offset=2"):
        bd.from_tfrecords(str(tmp_path / "r" / "train-*"), label_offset=2)


def test_the_stream_sees_every_record_once_per_epoch_and_resumes_exactly(tmp_path):
    source = bd.from_tfrecords(write_records(tmp_path / "r"))
    n, batch = source.num_examples, 4

    def stream(start_step=0, seed=1):
        return bd.train_dataset(source, batch, resize=SIZE, crop=SIZE, seed=seed,
                                start_step=start_step)

    levels = _levels(stream(), 3 * n // batch)
    for epoch in range(3):
        assert sorted(levels[epoch * n:(epoch + 1) * n]) == list(range(1, n + 1))
    assert levels[:n] != levels[n:2 * n]  # each epoch its own order
    assert levels == _levels(stream(), 3 * n // batch)  # deterministic
    assert _levels(stream(start_step=7), 6) == levels[7 * batch:13 * batch]  # across an epoch
    assert _levels(stream(seed=2), n // batch) != levels[:n]


def test_two_pipelines_read_disjoint_files_that_cover_every_record(tmp_path):
    source = bd.from_tfrecords(write_records(tmp_path / "r"))
    n = source.num_examples
    shares = []
    for i in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=i)
        shares.append(_levels(bd.train_dataset(source, 3, resize=SIZE, crop=SIZE,
                                               input_context=context), n // 2 // 3))
    assert not set(shares[0]) & set(shares[1])
    assert sorted(shares[0] + shares[1]) == list(range(1, n + 1))
    context = tf.distribute.InputContext(num_input_pipelines=8, input_pipeline_id=0)
    with pytest.raises(ValueError, match=r"8 input pipelines need at least 8 files"):
        bd.train_dataset(source, 3, resize=SIZE, crop=SIZE, input_context=context)


def test_few_shot_reads_only_the_drawn_records_into_memory(tmp_path):
    source = bd.from_tfrecords(write_records(tmp_path / "r"), examples_per_class=2, seed=3)
    assert source.num_examples == 2 * CLASSES and not source.may_fail
    assert np.bincount(source.labels).tolist() == [2] * CLASSES
    (images, labels), = list(bd.eval_dataset(source, 10, crop=SIZE))
    levels = np.round(images.numpy()[:, 0, 0, 0] * 255).astype(int)
    np.testing.assert_array_equal((levels - 1) % CLASSES, labels.numpy().argmax(1))


def test_the_label_pass_is_cached_until_a_file_changes(tmp_path, monkeypatch):
    pattern = write_records(tmp_path / "r")
    bd.from_tfrecords(pattern)
    from bit_keras.data import records
    real = records.tf.data.TFRecordDataset
    opened = []
    monkeypatch.setattr(records.tf.data, "TFRecordDataset",
                        lambda *a, **k: opened.append(a) or real(*a, **k))
    bd.from_tfrecords(pattern)
    assert opened == []  # the cached labels and counts
    monkeypatch.undo()
    write_records(tmp_path / "r", files=FILES, per_file=PER_FILE + 1)
    assert bd.from_tfrecords(pattern).num_examples == FILES * (PER_FILE + 1)


def test_an_undecodable_record_is_dropped_from_the_stream(tmp_path, capfd):
    with pytest.warns(UserWarning, match=r"train-00000-of-00004 record 5: bytes of no image"):
        source = bd.from_tfrecords(write_records(tmp_path / "r", bad=5))
    log = tmp_path / "skipped.txt"
    levels = _levels(bd.train_dataset(source, 4, resize=SIZE, crop=SIZE, skipped_log=str(log)), 5)
    assert 6 not in levels and len(levels) == 20
    named = f"{tmp_path / 'r' / 'train-00000-of-00004'} record 5"
    err = capfd.readouterr().err
    assert "bit_keras: skipped undecodable record(s):" in err and named in err, err[-2000:]
    assert log.read_text().splitlines()[0] == named


def test_fine_tune_on_tfrecords_resumes_to_the_uninterrupted_weights(tmp_path):
    import fine_tune_support as support
    support.write_task(str(tmp_path / "task"), train_per_class=4, test_per_class=1)
    # The task's images as TFRecord shards, with its labels.
    source = bd.from_folder(str(tmp_path / "task" / "train"))
    os.makedirs(tmp_path / "rec")
    for f in range(3):
        with tf.io.TFRecordWriter(str(tmp_path / "rec" / f"train-{f}")) as w:
            for i in range(f, source.num_examples, 3):
                with open(source._store.paths[i], "rb") as image:
                    encoded = image.read()
                w.write(tf.train.Example(features=tf.train.Features(feature={
                    "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
                    "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(
                        value=[int(source.labels[i])]))})).SerializeToString())
    spec = f"tfrecords:{tmp_path / 'rec' / 'train-*'}"
    options = dict(steps=8, batch=6, resize=36, crop=32, base_lr=0.5, checkpoint_every=4,
                   eval_every=4, seed=2)

    def tune(run_dir):
        model = keras_tiny()
        return bit_keras.fine_tune(model, spec, run_dir=str(run_dir), **options)

    support.resumes_to_uninterrupted_weights(tune, str(tmp_path), last_step=8, kill_step=4)


def keras_tiny():
    import keras
    keras.utils.set_random_seed(0)
    return bit_keras.build("R14x1-tiny", num_classes=3)


def _example(label, encoded=None):
    feature = {"image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))}
    if encoded is not None:
        feature["image/encoded"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _shard(path, examples, cut=None):
    with tf.io.TFRecordWriter(str(path)) as w:
        for e in examples:
            w.write(e)
    if cut is not None:
        data = path.read_bytes()
        path.write_bytes(data[:cut(len(data))])
    return str(path)


def test_damaged_shards_and_records_are_named_and_skip_or_stop_is_an_option(tmp_path, capfd):
    folder = tmp_path / "r"
    folder.mkdir()
    good = [_example(k % CLASSES, _png(k + 1)) for k in range(6)]
    last = sum(len(e) + 16 for e in good[:5])  # a record: 12-byte header, data, 4-byte CRC
    broken = _example(1, _png(9)[:40])  # a PNG signature: only decoding finds it bad
    _shard(folder / "a-0", good[:2] + [_example(2), _example(0, b"hello"), broken] + good[5:])
    _shard(folder / "a-1", good, cut=lambda n: last + 5)  # in the last record's header
    _shard(folder / "a-2", good, cut=lambda n: n - 30)  # in the last record's data
    pattern = str(folder / "a-*")
    with pytest.warns(UserWarning) as caught:
        source = bd.from_tfrecords(pattern)
    message = str(caught[0].message)
    assert message.startswith("4 damaged TFRecord record(s): ")
    for named in (f"{folder}/a-0 record 2: no 'image/encoded' bytes",
                  f"{folder}/a-0 record 3: bytes of no image format",
                  f"{folder}/a-1 record 5: cut short at byte {last} of {last + 5} "
                  "(the file is truncated)",
                  f"{folder}/a-2 record 5: cut short at byte {last} of "
                  f"{last + len(good[5]) + 16 - 30}"):
        assert named in message, (named, message)
    assert source._store.counts.tolist() == [6, 5, 5]  # the whole records
    assert source.median_image_area() == SIZE * SIZE  # no traceback from the bad records
    images = [x for x, _ in bd.eval_dataset(source, 4, crop=SIZE)]
    assert sum(len(x) for x in images) == 13  # the three without a usable image are dropped
    err = capfd.readouterr().err  # the stream names them, the undecodable one included
    for record in (2, 3, 4):
        assert f"{folder}/a-0 record {record}" in err, err[-2000:]
    with pytest.warns(UserWarning, match="4 damaged TFRecord"):  # again, from the cache
        bd.from_tfrecords(pattern)
    with pytest.raises(ValueError, match=r"4 damaged TFRecord record\(s\): .*a-0 record 2: .*"
                                         r"pass bad_records='warn'"):
        bd.from_tfrecords(pattern, bad_records="stop")
    with pytest.raises(ValueError, match=r"4 damaged TFRecord record\(s\)"):
        bd.load_source(f"tfrecords:{folder}/{{split}}-*", "a", bad_records="stop")
    with pytest.raises(ValueError, match=r"bad_records must be one of \['warn', 'stop'\]"):
        bd.from_tfrecords(pattern, bad_records="ignore")


def test_a_label_beyond_every_class_name_is_refused_before_a_head_is_built(tmp_path):
    """One record labelled 10^9 would build a 10^9-way one-hot and head."""
    folder = tmp_path / "r"
    folder.mkdir()
    _shard(folder / "a-0", [_example(k % 3, _png(k + 1)) for k in range(4)])
    _shard(folder / "a-1", [_example(1, _png(1)), _example(10 ** 9, _png(2))])
    with pytest.raises(ValueError, match=r"labels must be < 100,000 without class_names; pass "
                       r"class_names= to name more classes. Received: label 1000000000 in "
                       r".*a-1 record 1$"):
        bd.from_tfrecords(str(folder / "a-*"))
    with pytest.raises(ValueError, match=r"labels must be < 3, the number of class_names. "
                                         r"Received: label 1000000000 in .*a-1 record 1$"):
        bd.from_tfrecords(str(folder / "a-*"), class_names=["x", "y", "z"])
