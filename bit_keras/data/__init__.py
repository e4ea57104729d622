"""Data for BiT: labelled image sources and the deterministic ``tf.data`` pipelines.

A ``Source`` is random-access labelled images (a folder, a TFDS dataset, arrays, a finite
``tf.data.Dataset``); ``train_dataset`` turns it into an infinite, resumable, augmented
stream and ``eval_dataset`` into a finite one. Images are float32 in [0, 1] throughout.

Example:

>>> import bit_keras
>>> source = bit_keras.data.load_source("flowers/", "train", examples_per_class=10)
>>> ds = bit_keras.data.train_dataset(source, batch_size=64, resize=160, crop=128)
"""

from bit_keras.data import service
from bit_keras.data.arrays import from_arrays, from_dataset
from bit_keras.data.augment import AUGMENTATIONS
from bit_keras.data.folder import IMAGE_EXTENSIONS, ScanReport, from_folder, scan
from bit_keras.data.loading import TFRECORDS, load_source
from bit_keras.data.pipeline import check_augmentation, eval_dataset, train_dataset
from bit_keras.data.records import from_tfrecords
from bit_keras.data.source import Source
from bit_keras.data.tfds_source import from_tfds

__all__ = ["AUGMENTATIONS", "IMAGE_EXTENSIONS", "TFRECORDS", "ScanReport", "Source",
           "check_augmentation", "eval_dataset", "from_arrays", "from_dataset", "from_folder", "from_tfds",
           "from_tfrecords", "load_source", "scan", "service", "train_dataset"]
