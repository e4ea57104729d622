"""Image sizes from file headers, and the pixel limit checked before anything is decoded.

A 20000 x 20000 PNG of one colour is 1.2 MB on disk and 1.2 GB decoded: memory must be
bounded by what is read, never by what a header declares (docs/reliability.md). So every
decode (training folders, ``scan``, TFRecords' size estimate, the ``image_bytes`` serving
signature) first reads the header and refuses an image over ``max_pixels``.

The default limit is ``MAX_IMAGE_PIXELS`` (36,000,000: a 6000 x 6000 photo, ~108 MB as
uint8), or the environment variable ``BIT_KERAS_MAX_IMAGE_PIXELS``; the data functions also
take ``max_pixels=``.
"""

import io
import os

import tensorflow as tf

MAX_IMAGE_PIXELS = 36_000_000
ENV_VAR = "BIT_KERAS_MAX_IMAGE_PIXELS"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def max_pixels(value=None):
    """The pixel limit: ``value`` if given, else ``$BIT_KERAS_MAX_IMAGE_PIXELS``, else
    ``MAX_IMAGE_PIXELS``; a positive int (ValueError naming where it came from)."""
    from bit_keras.utils import checks
    if value is not None:
        return checks.positive_int(value, "max_pixels")
    text = os.environ.get(ENV_VAR)
    if text is None or not text.strip():
        return MAX_IMAGE_PIXELS
    try:
        number = int(text)
    except ValueError:
        number = text
    return checks.positive_int(number, ENV_VAR)


def _big_endian(raw, start, n):
    value = tf.constant(0, tf.int64)
    for k in range(n):
        value = value * 256 + raw[start + k]
    return value


def _little_endian(raw, start, n):
    value = tf.constant(0, tf.int64)
    for k in reversed(range(n)):
        value = value * 256 + raw[start + k]
    return value


def png_shape(data):
    """``[height, width]`` (int64) of a PNG from its IHDR chunk (bytes 16..24)."""
    raw = tf.cast(tf.io.decode_raw(tf.strings.substr(data, 16, 8), tf.uint8), tf.int64)
    return tf.stack([_big_endian(raw, 4, 4), _big_endian(raw, 0, 4)])


def encoded_shape(data):
    """``[height, width]`` (int64) of an encoded image from its header, in the graph:
    JPEG (its SOF marker; an invalid one fails), PNG, GIF (the logical screen, which
    bounds every frame's buffer) and BMP; ``[0, 0]`` for other formats, which go to
    Pillow (``check_pillow`` checks them there)."""
    head = tf.strings.substr(tf.strings.join([data, b"\0" * 32]), 0, 32)
    raw = tf.cast(tf.io.decode_raw(head, tf.uint8), tf.int64)
    first = tf.strings.substr(data, 0, 8)
    is_png = tf.equal(first, _PNG_MAGIC)
    is_gif = tf.equal(tf.strings.substr(data, 0, 4), b"GIF8")
    is_bmp = tf.equal(tf.strings.substr(data, 0, 2), b"BM")

    def bmp():
        height = _little_endian(raw, 22, 4)
        height = tf.where(height >= 2 ** 31, 2 ** 32 - height, height)  # top-down: negative
        return tf.stack([height, _little_endian(raw, 18, 4)])

    return tf.case([
        (tf.io.is_jpeg(data), lambda: tf.cast(tf.image.extract_jpeg_shape(data)[:2], tf.int64)),
        (is_png, lambda: tf.stack([_big_endian(raw, 20, 4), _big_endian(raw, 16, 4)])),
        (is_gif, lambda: tf.stack([_little_endian(raw, 8, 2), _little_endian(raw, 6, 2)])),
        (is_bmp, bmp)], default=lambda: tf.zeros([2], tf.int64), exclusive=True)


def check_encoded(data, limit, name="image"):
    """``data`` once its header's height x width is at most ``limit`` pixels (an assertion:
    the op fails with ``INVALID_ARGUMENT`` naming the size and the limit)."""
    shape = encoded_shape(data)
    small = tf.debugging.Assert(
        shape[0] * shape[1] <= limit,
        [f"{name}: image of height x width", shape, "is larger than the limit of",
         tf.constant(limit, tf.int64), f"pixels (max_pixels, or ${ENV_VAR})"], summarize=2)
    with tf.control_dependencies([small]):
        return tf.identity(data)


def check_pillow(image, limit):
    """Raises ValueError when an opened Pillow image (its pixels not decoded yet) is larger
    than ``limit`` pixels."""
    width, height = image.size
    if width * height > limit:
        raise ValueError(f"image of {height} x {width} pixels is larger than the limit of "
                         f"{limit} pixels (max_pixels, or ${ENV_VAR})")


def check_bytes(data, limit):
    """Raises ValueError when encoded ``data``'s header declares more than ``limit`` pixels
    (read here for JPEG, PNG, GIF and BMP, else by Pillow, which decodes nothing to say it);
    unknown formats pass."""
    from PIL import Image
    try:
        height, width = (int(n) for n in encoded_shape(tf.constant(data)).numpy())
    except tf.errors.OpError:  # a JPEG without a valid frame header: the decoder will say
        return
    if not height * width:
        try:
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
        except Exception:  # noqa: BLE001 - not identified here; the decoder will say why
            return
    if height * width > limit:
        raise ValueError(f"image of {height} x {width} pixels is larger than the limit of "
                         f"{limit} pixels (max_pixels, or ${ENV_VAR})")


# One JPEG setting for training and serving: libjpeg's accurate integer DCT, the default of
# PIL and OpenCV. TensorFlow's default (its fast DCT) is up to 4/255 away from it on the
# same file, so a model would be served pixels that it was not trained on.
JPEG_DCT_METHOD = "INTEGER_ACCURATE"


def decode(data, limit=None):
    """float32 ``[height, width, 3]`` in [0, 1] from an encoded JPEG, PNG, GIF (first frame)
    or BMP, after its header is checked against ``limit`` pixels (default ``max_pixels()``)."""
    data = check_encoded(data, max_pixels(limit))
    image = tf.cond(
        tf.io.is_jpeg(data),
        lambda: tf.io.decode_jpeg(data, channels=3, dct_method=JPEG_DCT_METHOD),
        lambda: tf.io.decode_image(data, channels=3, expand_animations=False))
    image.set_shape([None, None, 3])
    return tf.cast(image, tf.float32) / 255.0
