"""``from_tfds``: a ``Source`` from a TensorFlow Datasets builder.

A dataset prepared as ArrayRecord (``file_format="array_record"``) is read by random
access through TFDS's data source (``array_records.py``): nothing is held but one int label
per example (one cached pass), and every guarantee of a folder holds. Of a dataset prepared
as TFRecord (TFDS's default), a split of up to 2 GiB (CIFAR-10: ~130 MB) is read once into
memory, encoded, and decoded by the pipelines (random access, as a folder); a larger one
(ImageNet's 140 GB), or any with ``stream=True``, is streamed from the prepared files: the
source keeps one int label per example (from one cached pass) and the pipelines read the
files as for ``from_tfrecords``, sharded by file, resumable by position.
"""

import difflib
import io
import os

import numpy as np
import tensorflow as tf

from bit_keras.data import sampling
from bit_keras.data.arrays import from_arrays
from bit_keras.data.source import EncodedStore, Source

STREAM_BYTES = 2 * 2**30  # splits larger than this are streamed by default


def from_tfds(name, split="train", data_dir=None, examples_per_class=None, seed=0,
              download=True, manual_dir=None, stream=None):
    """A ``Source`` from a TFDS dataset: its image and (multi-)label features.

    Args:
        name: a TFDS name, optionally with config and version (``"cifar10"``,
            ``"oxford_iiit_pet:4.*.*"``, ``"bit_synthetic/downstream"``). A builder defined
            in your own code must be imported first, so that TFDS has registered it.
        split: a TFDS split, slices included (``"train[:90%]"``).
        data_dir: where TFDS keeps its data (default ``~/tensorflow_datasets``).
        examples_per_class: keep K images per class (few-shot), drawn by ``seed``.
        seed: the few-shot draw's seed.
        download: prepare the dataset (download and convert) when it is not in
            ``data_dir`` yet; with False that is an error instead.
        manual_dir: where the files of a manually downloaded dataset are (ImageNet's
            ``ILSVRC2012_img_train.tar`` and ``ILSVRC2012_img_val.tar``), for preparing it.
        stream: for a dataset prepared as TFRecord: True streams the split from its files
            (sharded by file, as ``from_tfrecords``; one cached pass reads the labels),
            False reads the encoded split into memory, None (default) streams splits over
            2 GiB. A single-label dataset prepared as ArrayRecord is always read by random
            access (``builder.as_data_source``), holding no image.

    Returns:
        A ``bit_keras.data.Source``. A ``Sequence(ClassLabel)`` label gives a multi-label
        source with multi-hot labels.

    Raises:
        ValueError: an unknown name (with close matches and how to list the accepted ones),
            an unknown split, or a dataset without an image and a class label.

    Example:

    >>> source = bit_keras.data.from_tfds("cifar10", split="train", examples_per_class=5)
    """
    import tensorflow_datasets as tfds
    examples_per_class = sampling.check_examples_per_class(examples_per_class)
    seed = sampling.check_seed(seed)
    builder = _builder(tfds, name, data_dir)
    if not builder.is_prepared():
        if not download:
            raise ValueError(f"TFDS dataset {name!r} is not prepared in {builder.data_dir_root}. "
                             "Received: download=False; pass download=True or run "
                             f"`tfds build {name}`.")
        config = None if manual_dir is None else tfds.download.DownloadConfig(
            manual_dir=os.fspath(manual_dir))
        builder.download_and_prepare(download_config=config)
    image_key, label_key = _keys(tfds, builder.info, name)
    image_feature = builder.info.features[image_key]
    label_feature = builder.info.features[label_key]
    multi_label = isinstance(label_feature, tfds.features.Sequence)
    class_names = list((label_feature.feature if multi_label else label_feature).names)
    encoded = isinstance(image_feature, tfds.features.Image)
    if encoded and not multi_label and _array_record(builder):
        source = _random_access_source(tfds, builder, split, image_key, label_key,
                                       class_names, f"tfds {name} {split}")
        return source if examples_per_class is None else source.per_class(examples_per_class,
                                                                            seed)
    if _streams(builder, split, name, stream, encoded, multi_label):
        source = _stream_source(tfds, builder, split, image_key, label_key, class_names,
                                f"tfds {name} {split}")
        return source if examples_per_class is None else source.per_class(examples_per_class,
                                                                            seed)
    decoders = {image_key: tfds.decode.SkipDecoding()} if encoded else None
    try:
        ds = builder.as_dataset(split=split, decoders=decoders, shuffle_files=False)
    except (ValueError, KeyError) as e:
        raise ValueError(f"split must be one of {sorted(builder.info.splits)} (slices such as "
                         f"'train[:10%]' allowed) for TFDS dataset {name!r}. Received: "
                         f"split={split!r} ({e})") from None
    images, labels = [], []
    for example in ds.as_numpy_iterator():
        images.append(example[image_key])
        labels.append(_label_row(example[label_key], len(class_names), multi_label))
    labels = np.stack(labels) if labels else np.zeros([0], np.int64)
    description = f"tfds {name} {split}"
    if not encoded:
        source = from_arrays(images, labels, class_names)
        source.description = description
    else:
        source = Source(EncodedStore([""] * len(images), images, _shapes(images, image_feature)),
                        labels, class_names, multi_label, description)
    if source.num_examples == 0:
        raise ValueError(f"split {split!r} of TFDS dataset {name!r} holds no examples.")
    if examples_per_class is not None:
        source = source.per_class(examples_per_class, seed)
    return source


def _split_info(builder, split, name):
    try:
        return builder.info.splits[split]
    except (ValueError, KeyError) as e:
        raise ValueError(f"split must be one of {sorted(builder.info.splits)} (slices such as "
                         f"'train[:10%]' allowed) for TFDS dataset {name!r}. Received: "
                         f"split={split!r} ({e})") from None


def _streams(builder, split, name, stream, encoded, multi_label):
    """Whether to stream: asked for, or by default when the split is large."""
    if stream is False:
        return False
    possible = (encoded and not multi_label
                and str(builder.info.file_format).lower().endswith("tfrecord"))
    if stream and not possible:
        raise ValueError(f"stream=True needs a single-label TFDS dataset of encoded images "
                         f"prepared as TFRecord files. Received: {name!r} "
                         f"({builder.info.file_format}, multi_label={multi_label})")
    return bool(stream) or (possible and _split_info(builder, split, name).num_bytes > STREAM_BYTES)


def _array_record(builder):
    return "array_record" in str(builder.info.file_format).lower()


def _file_key(builder, split, label_key, description):
    """A string naming the split's files and their versions, for the label cache."""
    instructions = _split_info(builder, split, description).file_instructions
    stats = []
    for i in instructions:
        st = os.stat(i.filename)
        stats.append((os.path.realpath(i.filename), i.skip, i.take, st.st_size, st.st_mtime_ns))
    return repr([stats, str(builder.info.version), label_key])


def _record_parser(tfds, builder, image_key, label_key):
    """``serialized TFDS example -> (encoded image, int64 label)``, no image decoded."""
    features, decoders = builder.info.features, {image_key: tfds.decode.SkipDecoding()}

    def parse(serialized):
        example = features.deserialize_example(serialized, decoders=decoders)
        return example[image_key], tf.cast(example[label_key], tf.int64)
    return parse


def _random_access_source(tfds, builder, split, image_key, label_key, class_names,
                          description):
    from bit_keras.data.array_records import ArrayRecordStore
    from bit_keras.data.records import label_pass
    key = _file_key(builder, split, label_key, description)  # checks the split too
    shape = tuple(builder.info.features[image_key].shape[:2])
    store = ArrayRecordStore(builder.as_data_source(split=split).data_source,
                             _record_parser(tfds, builder, image_key, label_key),
                             description, shape=shape)
    labels = label_pass(store, key)
    if not len(labels):
        raise ValueError(f"split {split!r} of {description} holds no examples.")
    return Source(store, labels, class_names, False, description + " (ArrayRecord)")


def _stream_source(tfds, builder, split, image_key, label_key, class_names, description):
    from bit_keras.data.records import RecordStore, label_pass
    instructions = _split_info(builder, split, description).file_instructions
    counts = [i.take if i.take >= 0 else i.examples_in_shard - i.skip for i in instructions]
    store = RecordStore([i.filename for i in instructions], counts,
                        _record_parser(tfds, builder, image_key, label_key),
                        [i.skip for i in instructions])
    key = _file_key(builder, split, label_key, description)
    return Source(store, label_pass(store, key), class_names, False, description + " (streamed)")


def _builder(tfds, name, data_dir):
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a TFDS dataset name. Received: name={name!r}")
    try:
        import bit_keras.datasets  # noqa: F401  registers this package's own builders
    except ImportError:
        pass
    try:
        return tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        pass
    known = tfds.list_builders(with_community_datasets=False)
    close = difflib.get_close_matches(name.split(":")[0], known, n=3)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(
        f"Unknown TFDS dataset name. Received: name={name!r}.{hint} "
        "`tensorflow_datasets.list_builders()` lists the accepted names (the catalog is at "
        "https://www.tensorflow.org/datasets/catalog); a builder of your own must be "
        "imported before it is named; a folder of images must be an existing path.")


def _keys(tfds, info, name):
    if info.supervised_keys and len(info.supervised_keys) == 2:
        image_key, label_key = info.supervised_keys
    else:
        image_key, label_key = "image", "label"
    features = info.features
    if image_key not in features or label_key not in features:
        raise ValueError(f"TFDS dataset {name!r} must have an image and a label feature (or "
                         f"supervised_keys). Received: features {sorted(features.keys())}")
    label = features[label_key]
    inner = label.feature if isinstance(label, tfds.features.Sequence) else label
    if not isinstance(inner, tfds.features.ClassLabel):
        raise ValueError(f"TFDS dataset {name!r} must label images with a ClassLabel (or a "
                         f"Sequence of them). Received: {label_key!r} is {type(label).__name__}")
    return image_key, label_key


def _label_row(label, num_classes, multi_label):
    if not multi_label:
        return np.int64(label)
    row = np.zeros([num_classes], np.float32)
    row[np.asarray(label, np.int64)] = 1.0
    return row


def _shapes(blobs, feature):
    """Original (height, width) of each encoded image: from the feature, or each header."""
    height, width = feature.shape[:2]
    if height is not None and width is not None:
        return np.tile(np.array([[height, width]], np.int64), (len(blobs), 1))
    from PIL import Image
    shapes = []
    for blob in blobs:
        with Image.open(io.BytesIO(blob)) as im:  # reads the header only
            shapes.append((im.height, im.width))
    return np.array(shapes, np.int64).reshape(-1, 2)
