"""A served export survives any request: each bad one fails alone, with a message, in ASCII.

The SavedModels are loaded in child processes without bit_keras, as a server loads them, so
a request that aborts the process (a oneDNN check in a kernel) fails the test by its exit
status instead of killing pytest.
"""

import json
import os
import subprocess
import sys

import pytest

import bit_keras

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT}

_REQUEST = """
import json, sys
sys.modules["bit_keras"] = None  # the served side has TensorFlow only
import tensorflow as tf
model = tf.saved_model.load(sys.argv[1])
out = {}
one_nan = tf.tensor_scatter_nd_update(tf.zeros([2, 32, 32, 3]), [[1, 5, 7, 2]], [float("nan")])
one_inf = tf.tensor_scatter_nd_update(tf.zeros([1, 32, 32, 3]), [[0, 0, 0, 0]], [float("inf")])
tiny_png = tf.io.encode_png(tf.zeros([1, 1, 3], tf.uint8))
for name, signature, key, value in [
    ("2-D", "serving_default", "images", tf.zeros([32, 32])),
    ("3-D", "serving_default", "images", tf.zeros([1, 32, 32])),
    ("5-D", "serving_default", "images", tf.zeros([1, 1, 32, 32, 3])),
    ("0x0", "serving_default", "images", tf.zeros([1, 0, 0, 3])),
    ("empty batch", "serving_default", "images", tf.zeros([0, 32, 32, 3])),
    ("4 channels", "serving_default", "images", tf.zeros([1, 32, 32, 4])),
    ("scalar", "serving_default", "images", tf.zeros([])),
    ("no bytes", "image_bytes", "image_bytes", tf.constant([], tf.string)),
    ("scalar string", "image_bytes", "image_bytes", tf.constant("x")),
    ("2-D strings", "image_bytes", "image_bytes", tf.constant([["x"]])),
    ("PNG signature", "image_bytes", "image_bytes", tf.constant([b"\\x89PNG\\r\\n\\x1a\\n"])),
    ("random bytes", "image_bytes", "image_bytes", tf.constant([bytes(range(255, 0, -1))])),
    ("NaN pixel", "serving_default", "images", one_nan),
    ("Inf pixel", "serving_default", "images", one_inf),
    ("too many images", "image_bytes", "image_bytes", tf.fill([3137], tiny_png)),
    ("as many as allowed", "image_bytes", "image_bytes", tf.fill([4], tiny_png)),
]:
    try:
        model.signatures[signature](**{key: value})
        out[name] = None
    except tf.errors.InvalidArgumentError as error:
        out[name] = error.message
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving")
    model = bit_keras.build("R14x1-tiny", num_classes=3)
    return {"classifier": bit_keras.export(model, root / "clf", kind="classifier",
                                           image_size=32),
            "feature_vector": bit_keras.export(model, root / "fv", image_size=32)}


def _child(*args):
    proc = subprocess.run([sys.executable, *args], env=ENV, cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-3000:]}"
    return proc.stdout.strip().splitlines()[-1]


SHAPE_MESSAGE = ("images: expected float32 images [batch, height, width, 3] in [0, 1] with "
                 "batch, height and width >= 1; received shape] [{}]")


@pytest.mark.parametrize("kind", ["classifier", "feature_vector"])
def test_bad_requests_are_invalid_argument_naming_input_shape_and_accepted(exports, kind):
    messages = json.loads(_child("-c", _REQUEST, exports[kind]))
    for name, shape in (("2-D", "32 32"), ("3-D", "1 32 32"), ("5-D", "1 1 32 32 3"),
                        ("0x0", "1 0 0 3"), ("empty batch", "0 32 32 3"),
                        ("4 channels", "1 32 32 4"), ("scalar", "")):
        assert SHAPE_MESSAGE.format(shape) in messages[name], (name, messages[name])
    assert ("image_bytes: expected a 1-D batch of at least one encoded JPEG or PNG file; "
            "received shape] [0]") in messages["no bytes"]
    for name in ("scalar string", "2-D strings"):
        assert "image_bytes" in messages[name] and "expected shape [?]" in messages[name]
    for name, first in (("PNG signature", "137 80 78 71 13 10 26 10"),
                        ("random bytes", "255 254 253 252 251 250 249 248")):
        assert "image_bytes: not a JPEG or PNG image" in messages[name]
        assert f"the first bytes are] [{first}]" in messages[name]
    for name, count in (("NaN pixel", 6144), ("Inf pixel", 3072)):
        assert ("images: expected finite values (images in [0, 1]); received NaN or Inf in] "
                f"[1] [of] [{count}] [values]") in messages[name], messages[name]
    # 3136 images of 32 x 32 make the default bound (64 images at 224 x 224); the tiny
    # files decode to 3137 full-size float images unless the request is refused first
    assert ("image_bytes: a request of] [3137] [images, each resized to 32 x 32, is over the bound "
            "of this export, 3211264 pixels a request (3136 images)") in messages[
                "too many images"], messages["too many images"]
    assert messages["as many as allowed"] is None
    assert all(m is None or m.isascii() for m in messages.values())


def test_fuzzed_image_bytes_never_crash_or_change_the_next_answer(exports):
    """The short form of ``benchmarks/serving_fuzz.py`` (the closing note has the long one's
    totals): 150 mutated JPEG/PNG files and the fixed bad requests, a good one after each."""
    stats = json.loads(_child("-m", "benchmarks.serving_fuzz", "--saved_model",
                              exports["classifier"], "--cases", "150", "--seed", "1"))
    assert stats["failures"] == []
    assert stats["cases"] > 150  # the mutations, then the fixed bad requests
    assert stats["refused"] > 100 and stats["accepted"] + stats["refused"] == stats["cases"]


def test_request_bound_is_a_setting_of_the_signature():
    """The exporter can pass its own bound: here two 32 x 32 images a request."""
    import tensorflow as tf

    from bit_keras.exporter import signatures
    files = tf.fill([3], tf.io.encode_png(tf.zeros([1, 1, 3], tf.uint8)))
    assert signatures.decode_images(files[:2], 32, max_request_pixels=2048).shape == (2, 32, 32, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"2048 pixels a request \(2 images"):
        signatures.decode_images(files, 32, max_request_pixels=2048)


def test_a_request_is_bounded_by_the_pixels_its_headers_declare(tmp_path):
    """Five 6000 x 6000 PNGs (100 KB each, 540 MB decoded) pass the per-image limit but not
    the request's; nothing is decoded."""
    import tensorflow as tf
    from test_data_bounds import write_png_bomb

    from bit_keras.exporter import signatures
    write_png_bomb(str(tmp_path / "big.png"), 6000, 6000)
    big = tf.constant((tmp_path / "big.png").read_bytes())
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"image_bytes: the images of a request declare\] \[180000000\] "
                             r"\[pixels in all, over the bound of this export, 144000000 "
                             r"pixels decoded a request"):
        tf.function(lambda b: signatures.decode_images(b, 32))(tf.fill([5], big))
    tiny = tf.io.encode_png(tf.zeros([1, 1, 3], tf.uint8))
    assert signatures.decode_images(tf.fill([2], tiny), 32, max_decoded_pixels=2).shape[0] == 2
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"declare\W+3\W+b?'?pixels in all"):
        signatures.decode_images(tf.fill([3], tiny), 32, max_decoded_pixels=2)


def test_the_exporter_sets_the_request_bound(tmp_path):
    # bit_keras.export(max_request_pixels=) reaches the image_bytes signature.
    import io

    import tensorflow as tf
    from PIL import Image

    model = bit_keras.resnet_v2((1, 1, 1, 1), 1, num_classes=3, base_filters=16, groups=8)
    with pytest.raises(ValueError, match="max_request_pixels must be a positive int"):
        bit_keras.export(model, str(tmp_path / "bad"), max_request_pixels=0)
    path = bit_keras.export(model, str(tmp_path / "sm"), kind="classifier", image_size=32,
                            labels=False, max_request_pixels=2 * 32 * 32)
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG")
    serve = tf.saved_model.load(path).signatures["image_bytes"]
    assert serve(image_bytes=tf.constant([buffer.getvalue()] * 2))["logits"].shape == (2, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="2048 pixels a request"):
        serve(image_bytes=tf.constant([buffer.getvalue()] * 3))
