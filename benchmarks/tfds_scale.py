"""How the TFDS sources scale: a 1k- and a 100k-image split, as ArrayRecord and as TFRecord.

``python -m benchmarks.tfds_scale --sizes 1000,100000 [--root /tmp/bit_tfds_scale]``

For each size, prepares (once, then reused) the ``bit_synthetic`` drawing at 64x64 in its
168 upstream classes as a TFDS dataset, once with ``file_format="array_record"`` and once
with ``"tfrecord"``, then measures, each in a fresh process so that peak RSS is its own:

- ``array_record``: ``from_tfds`` (random access through TFDS's data source) +
  ``train_dataset`` (HyperRule augmentation, 128 px, batch 64) with a cold label cache,
  time and peak RSS to the first batch; the same with the cached labels (a resume); the
  stream rate over 60 batches;
- ``tfrecord``: the same with ``stream=True`` (the route of splits over 2 GiB);
- ``reference_tfrecord``: plain ``tfds`` + ``tf.data`` on the TFRecord files
  (``as_dataset``, decode, the same resize, crop, flip, batch): time to the first batch,
  rate; ``reference_array_record``: the same on the ArrayRecord files (TFDS has no
  ``as_dataset`` for them: shuffled indices, each record read through the data source in
  ``tf.numpy_function``).

``--step`` also times the R50x1 fine-tuning step at 128 px (batch 32, random weights), the
consumption the stream has to outrun. Prints a table; ``--out`` writes the numbers as JSON.
Not part of the test suite.
"""

import functools
import json
import os
import subprocess
import sys
import time

from benchmarks import report
from benchmarks.data_scale import BATCH, CROP, RESIZE, first_batch_and_rate, table_line

CLASSES, SIDE = 168, 64
FORMATS = ("array_record", "tfrecord")


@functools.cache
def _builder_class():
    """``bit_scale``: the upstream drawing with one config per benchmark size."""
    from etils import epath

    from bit_keras.datasets import BitSynthetic, BitSyntheticConfig

    class BitScale(BitSynthetic):
        # TFDS looks for the builder's metadata beside its module, which may be __main__.
        code_path = epath.Path(__file__)
        pkg_dir_path = epath.Path(__file__).parent
        BUILDER_CONFIGS = [
            BitSyntheticConfig(name=f"n{size}", group="upstream", image_size=SIDE,
                               train_per_class=-(-size // CLASSES), test_per_class=1)
            for size in (1000, 10000, 100000, 1000000)]

    return BitScale


def dataset_name(size):
    return f"bit_scale/n{size}"


def prepare(root, size, file_format):
    """Prepares ``bit_scale/n{size}`` under ``root/{file_format}`` (kept for reuse)."""
    import tensorflow_datasets as tfds
    _builder_class()
    data_dir = os.path.join(root, file_format)
    builder = tfds.builder(dataset_name(size), data_dir=data_dir, file_format=file_format)
    builder.download_and_prepare()
    return data_dir


def measure_bit_keras(name, data_dir, file_format):
    t0 = time.perf_counter()
    import bit_keras
    _builder_class()
    imported = time.perf_counter()
    stream = True if file_format == "tfrecord" else None
    source = bit_keras.data.from_tfds(name, "train", data_dir=data_dir, stream=stream)
    ds = bit_keras.data.train_dataset(source, BATCH, RESIZE, CROP)
    return {**first_batch_and_rate(ds, imported), "import_s": imported - t0,
            "examples": source.num_examples, "description": source.description}


def measure_reference(name, data_dir):
    import numpy as np
    import tensorflow as tf
    import tensorflow_datasets as tfds
    _builder_class()
    t0 = time.perf_counter()
    builder = tfds.builder(name, data_dir=data_dir)
    if "array_record" in str(builder.info.file_format).lower():
        # TFDS has no as_dataset for ArrayRecord: shuffled indices, each record read in Python.
        records = builder.as_data_source("train").data_source
        features = builder.info.features

        def read(i):
            example = features.deserialize_example_np(records[int(i)], decoders={
                "image": tfds.decode.SkipDecoding()})
            return example["image"], np.int64(example["label"])

        ds = tf.data.Dataset.range(len(records)).shuffle(len(records), seed=0).map(
            lambda i: tf.numpy_function(read, [i], (tf.string, tf.int64)))
    else:
        ds = builder.as_dataset(split="train", shuffle_files=True, as_supervised=True,
                                decoders={"image": tfds.decode.SkipDecoding()})

    def load(encoded, label):
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        image = tf.image.resize(image, [RESIZE, RESIZE]) / 255.0
        image = tf.image.random_crop(image, [CROP, CROP, 3])
        return tf.image.random_flip_left_right(image), label

    ds = ds.repeat().map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(BATCH).prefetch(
        tf.data.AUTOTUNE)
    return first_batch_and_rate(ds, t0)


def measure_step(batch=32, reps=3):
    """R50x1 fine-tuning images/second at 128 px: the library's step, random weights."""
    from benchmarks import models, training
    arch = {"units": (3, 4, 6, 3), "width": 1, "base_filters": 64, "groups": 32,
            "num_classes": 10}
    model, _ = models.pair(arch, include_reference=False)
    images, labels = training.batch(arch, CROP, batch)
    step = training.train_step(model, images, labels)
    step()  # trace and warm up
    start = time.perf_counter()
    for _ in range(reps):
        step()
    return {"images_per_s": reps * batch / (time.perf_counter() - start), "batch": batch}


def _child(*args, home):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "BIT_KERAS_HOME": home,
           "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    out = subprocess.run([sys.executable, "-m", "benchmarks.tfds_scale", "--child", *args],
                         env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"child {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _child_main(args):
    kind, rest = args[0], args[1:]
    if kind == "step":
        return measure_step()
    if kind == "reference":
        return measure_reference(*rest)
    return measure_bit_keras(*rest, kind)


def main(argv):
    import argparse
    import shutil

    if argv[:1] == ["--child"]:
        print(json.dumps(_child_main(argv[1:])))
        return 0
    parser = argparse.ArgumentParser(prog="tfds_scale")
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--root", default="/tmp/bit_tfds_scale")
    parser.add_argument("--step", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    results = {}
    for size in [int(s) for s in args.sizes.split(",")]:
        name, row = dataset_name(size), {}
        for file_format in FORMATS:
            start = time.perf_counter()
            data_dir = prepare(args.root, size, file_format)
            row[f"prepare_{file_format}_s"] = time.perf_counter() - start
            home = os.path.join(args.root, f"home_{file_format}_{size}")
            shutil.rmtree(home, ignore_errors=True)  # a cold label cache first
            row[f"{file_format}_cold"] = _child(file_format, name, data_dir, home=home)
            row[f"{file_format}_cached_labels"] = _child(file_format, name, data_dir, home=home)
        for file_format in FORMATS:
            row[f"reference_{file_format}"] = _child(
                "reference", name, os.path.join(args.root, file_format), home=home)
        results[size] = row
    if args.step:
        results["r50x1_step_128px"] = _child("step", home=os.path.join(args.root, "home_step"))
    print(table_line("examples", "route", "first batch s", "peak RSS MiB", "images/s"))
    for size, row in results.items():
        if size == "r50x1_step_128px":
            print(f"R50x1 fine-tuning step at 128 px: {row['images_per_s']:.1f} images/s")
            continue
        for route, r in row.items():
            if isinstance(r, dict):
                print(table_line(size, route, measured=r))
    if args.out:
        report.write_json(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
