"""How the folder source scales: time to the first batch, peak RSS, stream rate.

``python -m benchmarks.data_scale --sizes 20000,200000 [--root /tmp/bit_scale]``

For each size, generates (once, then reused) a folder of 96x96 JPEGs in 100 classes, then
measures, each in a fresh process so that peak RSS is its own:

- ``bit_keras``: ``load_source`` + ``train_dataset`` (HyperRule augmentation, 128 px,
  batch 64) with a cold file-list cache, time and peak RSS to the first batch; the same
  with the cached list (a resume); then the stream rate over 60 batches;
- ``reference``: plain tf.data on the same files (``Dataset.list_files``, read, decode,
  resize, random crop, flip, batch): time to the first batch, rate.

Prints a table and writes the numbers as JSON (``--out``). Not part of the test suite.
"""

import json
import os
import resource
import subprocess
import sys
import time

from benchmarks import report

CLASSES, SIDE, BATCH, RESIZE, CROP, RATE_BATCHES = 100, 96, 64, 160, 128, 60


def generate(folder, count):
    """``count`` random JPEGs of SIDE x SIDE in CLASSES subfolders (kept for reuse)."""
    import numpy as np
    from PIL import Image

    done = os.path.join(folder, ".complete")
    if os.path.exists(done):
        return
    rng = np.random.default_rng(0)
    tiles = [rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8) for _ in range(64)]
    for c in range(CLASSES):
        os.makedirs(os.path.join(folder, f"class{c:03d}"), exist_ok=True)
    for i in range(count):
        c = i % CLASSES
        Image.fromarray(tiles[i % len(tiles)]).save(
            os.path.join(folder, f"class{c:03d}", f"{i:07d}.jpg"), quality=90)
    open(done, "w").close()


def _peak_rss_mib():
    """This process's peak RSS. ``VmHWM`` is the high-water mark of this process's own
    memory; ``ru_maxrss`` is not: Linux carries the parent's peak across ``exec``."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def table_line(size, route, *headers, measured=None):
    """One line of the scale tables: a header (``headers``) or a ``measured`` row."""
    if measured is None:
        first, rss, rate = headers
        return f"{size:>9} {route:<26} {first:>14} {rss:>13} {rate:>9}"
    return (f"{size:>9} {route:<26} {measured['first_batch_s']:>14.2f} "
            f"{measured['peak_rss_mib_at_first_batch']:>13.0f} {measured['images_per_s']:>9.0f}")


def first_batch_and_rate(ds, start):
    """Seconds from ``start`` to ``ds``'s first batch, peak RSS then, and images/second over
    the next ``RATE_BATCHES`` batches."""
    it = iter(ds)
    next(it)
    first = time.perf_counter() - start
    rss = _peak_rss_mib()
    t0 = time.perf_counter()
    for _ in range(RATE_BATCHES):
        next(it)
    rate = RATE_BATCHES * BATCH / (time.perf_counter() - t0)
    return {"first_batch_s": first, "peak_rss_mib_at_first_batch": rss, "images_per_s": rate}


def measure_bit_keras(folder):
    t0 = time.perf_counter()
    import bit_keras
    imported = time.perf_counter()
    source = bit_keras.data.load_source(folder)
    ds = bit_keras.data.train_dataset(source, BATCH, RESIZE, CROP)
    return {**first_batch_and_rate(ds, imported), "import_s": imported - t0,
            "examples": source.num_examples}


def measure_reference(folder):
    import tensorflow as tf
    t0 = time.perf_counter()
    files = tf.data.Dataset.list_files(os.path.join(folder, "*", "*.jpg"), shuffle=True, seed=0)

    def load(path):
        image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
        image = tf.image.resize(image, [RESIZE, RESIZE]) / 255.0
        image = tf.image.random_crop(image, [CROP, CROP, 3])
        return tf.image.random_flip_left_right(image)

    ds = files.repeat().map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(BATCH).prefetch(
        tf.data.AUTOTUNE)
    return first_batch_and_rate(ds, t0)


def _child(kind, folder, home):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "BIT_KERAS_HOME": home,
           "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    out = subprocess.run([sys.executable, "-m", "benchmarks.data_scale", "--child", kind,
                          "--root", folder], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv):
    import argparse
    import shutil

    parser = argparse.ArgumentParser(prog="data_scale")
    parser.add_argument("--sizes", default="20000,200000")
    parser.add_argument("--root", default="/tmp/bit_scale")
    parser.add_argument("--out", default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        measure = measure_bit_keras if args.child == "bit_keras" else measure_reference
        print(json.dumps(measure(args.root)))
        return 0
    results = {}
    for size in [int(s) for s in args.sizes.split(",")]:
        folder = os.path.join(args.root, f"jpegs_{size}")
        start = time.perf_counter()
        generate(folder, size)
        home = os.path.join(args.root, f"home_{size}")
        shutil.rmtree(home, ignore_errors=True)  # a cold file-list cache first
        results[size] = {"generate_s": time.perf_counter() - start,
                         "bit_keras_cold": _child("bit_keras", folder, home),
                         "bit_keras_cached_list": _child("bit_keras", folder, home),
                         "reference": _child("reference", folder, home)}
    print(table_line("files", "route", "first batch s", "peak RSS MiB", "images/s"))
    for size, row in results.items():
        for route in ("bit_keras_cold", "bit_keras_cached_list", "reference"):
            print(table_line(size, route, measured=row[route]))
    if args.out:
        report.write_json(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
