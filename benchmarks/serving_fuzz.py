"""Bad requests against an exported SavedModel, loaded the way a server loads it.

``python -m benchmarks.serving_fuzz --saved_model DIR [--cases 2000] [--seed 0]``

Sends, to the SavedModel's signatures in this one process (so a request that aborts the
process ends the run with its exit status):

- ``image_bytes``: mutations of real JPEG and PNG files (bit flips, byte overwrites,
  truncation, inserted and deleted runs, spliced headers, random bytes), an empty batch,
  a scalar and a 2-D string tensor;
- ``serving_default``: float tensors of rank 0 to 5, with zero-size dimensions and 1, 2 or
  4 channels.

After every bad request a good one must return the same outputs as before. A bad request
may succeed (a mutation can still be a valid image) or fail with ``InvalidArgumentError``
whose message is ASCII; anything else (another error type, a message that is not ASCII, a
changed answer to the good request) is counted as a failure. Prints the totals as one JSON
line; exits 1 when there are failures. bit_keras is not imported: the served side only
needs TensorFlow.
"""

import io
import json
import sys

import numpy as np


def real_images(rng, count=4):
    """JPEG and PNG files of random content and sizes, encoded by PIL (bytes)."""
    from PIL import Image

    files = []
    for i in range(count):
        h, w = rng.integers(8, 64, 2)
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        if i % 2:
            Image.fromarray(pixels).save(buffer, "JPEG", quality=int(rng.integers(50, 96)))
        else:
            Image.fromarray(pixels).save(buffer, "PNG")
        files.append(buffer.getvalue())
    return files


def mutate(data, rng, others):
    """One damaged copy of ``data`` (bytes)."""
    data = bytearray(data)
    kind = int(rng.integers(0, 8))
    if kind == 0:  # flip a few bits, often in the header
        for _ in range(int(rng.integers(1, 8))):
            limit = len(data) if rng.random() < 0.5 else min(len(data), 64)
            data[int(rng.integers(0, limit))] ^= 1 << int(rng.integers(0, 8))
    elif kind == 1:  # overwrite a run with random bytes
        start = int(rng.integers(0, len(data)))
        run = rng.integers(0, 256, int(rng.integers(1, 32)), dtype=np.uint8).tobytes()
        data[start:start + len(run)] = run
    elif kind == 2:  # truncate
        data = data[:int(rng.integers(0, len(data)))]
    elif kind == 3:  # insert random bytes
        start = int(rng.integers(0, len(data)))
        data[start:start] = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
    elif kind == 4:  # delete a run
        start = int(rng.integers(0, len(data)))
        del data[start:start + int(rng.integers(1, 64))]
    elif kind == 5:  # one file's header on another's body
        other = others[int(rng.integers(0, len(others)))]
        cut = int(rng.integers(1, min(len(data), len(other))))
        data = data[:cut] + bytearray(other[cut:])
    elif kind == 6:  # the signature alone, or a signature and noise
        data = data[:8] + rng.integers(0, 256, int(rng.integers(0, 40)), dtype=np.uint8).tobytes()
    else:  # random bytes of any value
        data = rng.integers(0, 256, int(rng.integers(0, 300)), dtype=np.uint8).tobytes()
    return bytes(data)


FLOAT_SHAPES = [(), (32,), (32, 32), (1, 32, 32), (32, 32, 3), (1, 1, 32, 32, 3), (0, 32, 32, 3),
                (1, 0, 32, 3), (1, 32, 0, 3), (1, 0, 0, 3), (1, 32, 32, 1), (1, 32, 32, 4),
                (2, 32, 32, 2), (1, 32, 32, 0)]


def _outcome(signature, request, stats):
    """Runs one bad request; returns None or a failure's description."""
    import tensorflow as tf

    try:
        signature(**request)
        stats["accepted"] += 1
        return None
    except tf.errors.InvalidArgumentError as error:
        message = error.message
        if not message.isascii():
            return f"non-ASCII message: {message[:200]!r}"
        stats["refused"] += 1
        return None
    except Exception as error:  # noqa: BLE001 - what the harness looks for
        return f"{type(error).__name__}: {str(error)[:200]!r}"


def run(saved_model, cases=200, seed=0):
    """Sends ``cases`` mutated files plus the fixed bad requests; returns the totals."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    model = tf.saved_model.load(saved_model)
    image_bytes = model.signatures["image_bytes"]
    serving = model.signatures["serving_default"]
    files = real_images(rng)
    good_bytes = tf.constant(files[:2])
    good_images = tf.constant(rng.uniform(0, 1, (2, 32, 32, 3)).astype(np.float32))
    want_bytes = {k: v.numpy() for k, v in image_bytes(image_bytes=good_bytes).items()}
    want_images = {k: v.numpy() for k, v in serving(images=good_images).items()}
    stats = {"cases": 0, "accepted": 0, "refused": 0, "failures": []}

    def check(name, signature, request):
        stats["cases"] += 1
        failure = _outcome(signature, request, stats)
        got = image_bytes(image_bytes=good_bytes)
        again = serving(images=good_images)
        if any(not np.array_equal(got[k].numpy(), v) for k, v in want_bytes.items()) or any(
                not np.array_equal(again[k].numpy(), v) for k, v in want_images.items()):
            failure = (failure or "") + " the next good request answered differently"
        if failure:
            stats["failures"].append(f"{name}: {failure}")

    for i in range(cases):
        data = mutate(files[i % len(files)], rng, files)
        check(f"mutation {i} ({len(data)} bytes)", image_bytes,
              {"image_bytes": tf.constant([data])})
    for name, value in (("empty batch", tf.constant([], tf.string)),
                        ("scalar string", tf.constant(files[0])),
                        ("2-D strings", tf.constant([[files[0]]]))):
        check(name, image_bytes, {"image_bytes": value})
    for shape in FLOAT_SHAPES:
        check(f"images of shape {list(shape)}", serving, {"images": tf.zeros(shape, tf.float32)})
    return stats


def main(argv):
    import argparse

    parser = argparse.ArgumentParser(prog="serving_fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--saved_model", required=True)
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    stats = run(args.saved_model, args.cases, args.seed)
    print(json.dumps(stats))
    return 1 if stats["failures"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
