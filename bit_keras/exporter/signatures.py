"""The serving signatures of an exported BiT SavedModel (docs/design.md, "Exported SavedModels").

``serving_default`` takes float32 images in [0, 1]; ``image_bytes`` takes a batch of encoded
JPEG/PNG files, checks each one before decoding it (format, size) and resizes it to the
export's resolution; ``labels`` returns the embedded class list. Bad images fail the request
with an ``InvalidArgumentError`` that says what is wrong; they never crash a server.
"""

import tensorflow as tf

from bit_keras.data import headers

IMAGES_KEY = "images"
IMAGE_BYTES_KEY = "image_bytes"
OUTPUT_KEYS = {"feature_vector": "feature_vector", "classifier": "logits"}
# Decoding a 6000 x 6000 photo takes ~100 MB as uint8; beyond that a request is refused
# before anything is decoded, so one huge upload cannot take a server's memory.
MAX_IMAGE_PIXELS = 36_000_000
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# A PNG file stores width and height as big-endian uint32 at bytes 16..24 (the IHDR chunk).
_PNG_HEADER_BYTES = 24
# Every entry of an ``image_bytes`` request becomes an image_size^2 float image, and the
# whole batch runs through the network at once: a request is refused when its entries
# times image_size^2 exceed this (64 images at 224 x 224; 13 at 480), however small its
# files. The exporter can set another bound (``max_request_pixels``).
MAX_REQUEST_PIXELS = 64 * 224 * 224
# Up to ten entries are decoded at once (map_fn's parallel iterations), each up to
# MAX_IMAGE_PIXELS: the pixels that a request's headers declare, summed, are bounded too
# (4 x 36 MP, ~432 MB as uint8), before anything is decoded.
MAX_REQUEST_DECODED_PIXELS = 4 * MAX_IMAGE_PIXELS

IMAGES_SPEC = tf.TensorSpec([None, None, None, 3], tf.float32, name=IMAGES_KEY)
IMAGE_BYTES_SPEC = tf.TensorSpec([None], tf.string, name=IMAGE_BYTES_KEY)


def _first_bytes(data, n=8):
    """The first ``n`` bytes of ``data`` as numbers: an error message stays ASCII (a client
    decodes it as UTF-8, and raw bytes of a bad upload would make that fail)."""
    return tf.io.decode_raw(tf.strings.substr(data, 0, n), tf.uint8)


def check_images(images):
    """``images`` once its runtime shape is a non-empty ``[batch, height, width, 3]``.

    A signature's declared shape is not enforced at run time (TF Serving and a reloaded
    concrete function pass any shape through), and a kernel given a wrong rank can abort
    the whole server process. The shape is read at run time, so the check cannot be folded
    away from the declared one; the request fails with ``INVALID_ARGUMENT`` before any
    kernel runs.

    Non-finite values (NaN, Inf) are refused too: one NaN pixel would otherwise give finite,
    confident logits, and one Inf NaN logits with top labels. Values outside [0, 1] are
    served as they are (the model maps [0, 1] to [-1, 1] linearly and extrapolates).
    """
    shape = tf.shape(images)
    dims = tf.concat([shape, tf.ones([4], tf.int32)], 0)[:4]  # readable for any rank
    good = tf.logical_and(tf.equal(tf.size(shape), 4),
                          tf.logical_and(tf.reduce_all(dims[:3] >= 1), tf.equal(dims[3], 3)))
    check = tf.debugging.Assert(
        good, [f"{IMAGES_KEY}: expected float32 images [batch, height, width, 3] in [0, 1] "
               "with batch, height and width >= 1; received shape", shape], summarize=8)
    with tf.control_dependencies([check]):
        bad = tf.size(images) - tf.math.count_nonzero(tf.math.is_finite(images), dtype=tf.int32)
        finite = tf.debugging.Assert(
            tf.equal(bad, 0), [f"{IMAGES_KEY}: expected finite values (images in [0, 1]); "
                               "received NaN or Inf in", bad, "of", tf.size(images), "values"])
    with tf.control_dependencies([finite]):
        return tf.ensure_shape(tf.identity(images), [None, None, None, 3])


def check_image_bytes(image_bytes):
    """``image_bytes`` once it is a non-empty 1-D batch of strings (one file each)."""
    shape = tf.shape(image_bytes)
    good = tf.logical_and(tf.equal(tf.size(shape), 1), tf.reduce_prod(shape) >= 1)
    check = tf.debugging.Assert(
        good, [f"{IMAGE_BYTES_KEY}: expected a 1-D batch of at least one encoded JPEG or "
               "PNG file; received shape", shape], summarize=8)
    with tf.control_dependencies([check]):
        return tf.ensure_shape(tf.identity(image_bytes), [None])


def _checked(data, max_pixels):
    """``data`` after assertions on its format and size (the request fails if one fails)."""
    length = tf.strings.length(data)
    is_png = tf.logical_and(length >= _PNG_HEADER_BYTES,
                            tf.equal(tf.strings.substr(data, 0, 8), _PNG_MAGIC))
    is_jpeg = tf.io.is_jpeg(data)
    known = tf.debugging.Assert(
        tf.logical_or(is_png, is_jpeg),
        ["image_bytes: not a JPEG or PNG image (empty, truncated, corrupt or another format); "
         "the first bytes are", _first_bytes(data), "of", length, "bytes"], summarize=8)
    with tf.control_dependencies([known]):
        shape = tf.cond(is_jpeg,
                        lambda: tf.cast(tf.image.extract_jpeg_shape(data)[:2], tf.int64),
                        lambda: headers.png_shape(data))
    pixels = shape[0] * shape[1]
    small = tf.debugging.Assert(
        pixels <= max_pixels,
        ["image_bytes: image of height x width", shape, "is larger than the limit of",
         tf.constant(max_pixels, tf.int64), "pixels"], summarize=2)
    with tf.control_dependencies([small]):
        return tf.identity(data)


def check_request_size(image_bytes, image_size, max_request_pixels=MAX_REQUEST_PIXELS,
                       max_decoded_pixels=MAX_REQUEST_DECODED_PIXELS, max_pixels=MAX_IMAGE_PIXELS):
    """``image_bytes`` once its entries times ``image_size``^2 are at most
    ``max_request_pixels``, and the pixels its headers declare at most
    ``max_decoded_pixels`` (checked before anything is decoded). An image over the
    per-image ``max_pixels`` is left out of the sum: its own decode refuses it, naming it."""
    entries = tf.cast(tf.size(image_bytes), tf.int64)
    per_image = image_size * image_size
    check = tf.debugging.Assert(
        entries * per_image <= max_request_pixels,
        [f"{IMAGE_BYTES_KEY}: a request of", entries, f"images, each resized to {image_size} x "
         f"{image_size}, is over the bound of this export, {max_request_pixels} pixels a "
         f"request ({max(1, max_request_pixels // per_image)} images); send fewer images a "
         "request"])
    with tf.control_dependencies([check]):
        sizes = tf.map_fn(lambda d: tf.reduce_prod(headers.encoded_shape(d)), image_bytes,
                          fn_output_signature=tf.int64)
        declared = tf.reduce_sum(tf.where(sizes <= max_pixels, sizes, tf.zeros_like(sizes)))
    small = tf.debugging.Assert(
        declared <= max_decoded_pixels,
        [f"{IMAGE_BYTES_KEY}: the images of a request declare", declared, "pixels in all, over "
         f"the bound of this export, {max_decoded_pixels} pixels decoded a request; send "
         "fewer or smaller images a request"])
    with tf.control_dependencies([small]):
        return tf.identity(image_bytes)


def decode_images(image_bytes, image_size, max_pixels=MAX_IMAGE_PIXELS,
                  max_request_pixels=MAX_REQUEST_PIXELS,
                  max_decoded_pixels=MAX_REQUEST_DECODED_PIXELS):
    """Decodes a batch of JPEG/PNG strings to float32 [0, 1] images of ``image_size``^2.

    Each image is resized (bilinear, as the BiT evaluation pipeline does) without keeping
    its aspect ratio; an image already of that size passes through unchanged. A request
    over ``max_request_pixels`` (entries x ``image_size``^2), or whose headers declare more
    than ``max_decoded_pixels`` in all, is refused before any decode.
    """

    def decode(data):
        data = _checked(data, max_pixels)
        # The accurate integer DCT, as the training pipelines decode (headers.JPEG_DCT_METHOD)
        image = tf.cond(tf.io.is_jpeg(data),
                        lambda: tf.io.decode_jpeg(data, channels=3,
                                                  dct_method=headers.JPEG_DCT_METHOD),
                        lambda: tf.io.decode_png(data, channels=3))
        image.set_shape([None, None, 3])
        image = tf.image.resize(image, [image_size, image_size], method="bilinear")
        return image / 255.0

    image_bytes = check_request_size(check_image_bytes(image_bytes), image_size,
                                     max_request_pixels, max_decoded_pixels, max_pixels)
    return tf.map_fn(decode, image_bytes,
                     fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.float32))


def outputs(values, kind, names=None, top_k=5, label_scores="softmax"):
    """The signature's output dict: the model output and, with ``names`` (a string tensor of
    the class names, a constant: OpenVINO converts no lookup table), the top classes."""
    if isinstance(values, dict):  # a feature pyramid: its block outputs by name
        return dict(values)
    result = {OUTPUT_KEYS[kind]: values}
    if names is not None:
        probabilities = tf.nn.softmax(values) if label_scores == "softmax" else tf.sigmoid(values)
        k = min(top_k, values.shape[-1])
        scores, indices = tf.math.top_k(probabilities, k=k)
        result["top_scores"] = scores
        result["top_indices"] = indices
        result["top_labels"] = tf.gather(names, indices)
    return result


def read_labels(path, num_classes):
    """Reads and checks a class-list file: one non-empty name per line, ``num_classes`` lines."""
    try:
        with open(path, encoding="utf-8") as f:
            names = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"labels must be a readable UTF-8 text file, one class name per line. "
                         f"Received: labels={path!r} ({e})") from None
    if names and names[-1] == "":
        names.pop()
    empty = [i for i, n in enumerate(names) if not n.strip()]
    if len(names) != num_classes or empty:
        raise ValueError(
            f"labels must have exactly one non-empty class name per line for the "
            f"{num_classes} classes of the head. Received: labels={path!r} with {len(names)} "
            f"lines" + (f", empty at lines {[i + 1 for i in empty[:5]]}" if empty else ""))
    return names


def check_labels(names, num_classes):
    """Checks a sequence of class names: ``num_classes`` non-empty strings on one line each."""
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise ValueError("labels must be a text file (one class name per line), a list of "
                         f"strings, None or False. Received: labels of type {type(names).__name__}")
    bad = [i for i, n in enumerate(names) if not n.strip() or "\n" in n or "\r" in n]
    if len(names) != num_classes or bad:
        raise ValueError(
            f"labels must hold exactly {num_classes} non-empty one-line class names, one per "
            f"class of the head. Received: {len(names)} names"
            + (f", empty or multi-line at positions {bad[:5]}" if bad else ""))
    return list(names)
