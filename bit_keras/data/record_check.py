"""What TensorFlow's TFRecord reader does not say: a shard cut mid-record, records without an
image or with bytes of no image format, labels that would build a head of any size.

A shard cut inside a record's 12-byte header ends early without an error (the reader takes
it for the end of the file); cut later, it fails only when a stream reaches it. So the
record index (``records.py``) walks every file's record headers (lengths, not data: the
reader checks the CRCs) and indexes the whole records only. The damage found is named, file
and record, and ``bad_records`` decides: ``"warn"`` (the default) logs it and trains on the
rest (a record without a usable image is dropped when a stream meets it, as an undecodable
one is); ``"stop"`` raises a ValueError before anything is built.
"""

import os
import struct
import warnings

import numpy as np
import tensorflow as tf

BAD_RECORDS = ("warn", "stop")
# Without class names, the largest label sets the width of the one-hot labels and of the
# head: one record labelled 10^9 would build a 10^9-way head. Beyond this bound, labels need
# class_names (a name per class); BiT's largest label space, ImageNet-21k, has 21,843.
MAX_CLASSES = 100_000
_NAMED = 20  # damaged records named in a message; the count covers them all
OK, NO_IMAGE, NOT_AN_IMAGE = 0, 1, 2


def whole_records(path):
    """``(count, offset)``: the number of whole records at the start of a TFRecord file, and
    the byte offset of a record cut short (None when the file ends after a whole record)."""
    size, count, offset = os.path.getsize(path), 0, 0
    with open(path, "rb") as f:
        while offset < size:
            f.seek(offset)
            head = f.read(12)  # uint64 length, uint32 masked CRC of the length
            if len(head) < 12:
                return count, offset
            end = offset + 12 + struct.unpack("<Q", head[:8])[0] + 4
            if end > size:
                return count, offset
            offset, count = end, count + 1
    return count, None


def image_codes(images):
    """int8 per record: ``OK``, ``NO_IMAGE`` (empty or missing) or ``NOT_AN_IMAGE`` (no JPEG,
    PNG, GIF or BMP signature), from the first bytes of a batch of encoded images."""
    known = tf.reduce_any(tf.stack([
        tf.equal(tf.strings.substr(images, 0, 2), b"\xff\xd8"),
        tf.equal(tf.strings.substr(images, 0, 8), b"\x89PNG\r\n\x1a\n"),
        tf.equal(tf.strings.substr(images, 0, 4), b"GIF8"),
        tf.equal(tf.strings.substr(images, 0, 2), b"BM")]), axis=0)
    empty = tf.equal(tf.strings.length(images), 0)
    return tf.where(empty, tf.constant(NO_IMAGE, tf.int8),
                    tf.where(known, tf.constant(OK, tf.int8), tf.constant(NOT_AN_IMAGE, tf.int8)))


def describe_codes(path, codes, image_key):
    """Lines naming the records of ``path`` whose code is not ``OK``."""
    what = {NO_IMAGE: f"no {image_key!r} bytes", NOT_AN_IMAGE: "bytes of no image format"}
    return [f"{path} record {i}: {what[int(codes[i])]}" for i in np.flatnonzero(codes)]


def report(damage, bad_records):
    """Logs (``"warn"``) or raises (``"stop"``) the damage found, if any."""
    if not damage:
        return
    more = f"; and {len(damage) - _NAMED} more" if len(damage) > _NAMED else ""
    text = f"{len(damage)} damaged TFRecord record(s): " + "; ".join(damage[:_NAMED]) + more
    if bad_records == "stop":
        raise ValueError(text + ". Repair or remove them, or pass bad_records='warn' to train "
                         "on the whole, readable records")
    warnings.warn(text + ". Using the whole records; a record without a usable image is "
                  "dropped when a stream meets it (bad_records='stop' refuses)", stacklevel=3)


def check_labels(labels, counts, files, class_names):
    """Refuses a label that no class name, or (without names) ``MAX_CLASSES``, allows, naming
    the file and the record, before anything is built."""
    if not labels.size:
        return
    bound = MAX_CLASSES if class_names is None else len(class_names)
    position = int(np.argmax(labels))
    if labels[position] < bound:
        return
    f = int(np.searchsorted(np.cumsum(counts), position, side="right"))
    record = position - int(np.sum(counts[:f]))
    accepted = (f"< {MAX_CLASSES:,} without class_names; pass class_names= to name more classes"
                if class_names is None else f"< {bound}, the number of class_names")
    raise ValueError(f"labels must be {accepted}. Received: label {int(labels[position])} in "
                     f"{files[f]} record {record}")
