"""Where official weights live on disk: fetched once through ``keras.utils.get_file``
(progress bar), moved into the cache only when whole, and checked against the SHA-256
recorded beside them (``NAME.sha256``, ``sha256sum`` format) on every later load."""

import hashlib
import os
import shutil
import tempfile
import urllib.error

from absl import logging

from bit_keras.checkpoints.formats import CheckpointError, check_npz_file
from bit_keras.utils import atomic

HASH_SUFFIX = ".sha256"


def cache_dir():
    """``$BIT_KERAS_HOME``, or ``~/.keras/bit_keras``."""
    return os.environ.get("BIT_KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras", "bit_keras")


def base_url(default):
    """``$BIT_KERAS_WEIGHTS_URL`` (a mirror of the official bucket), or the bucket."""
    url = os.environ.get("BIT_KERAS_WEIGHTS_URL") or default
    return url if url.endswith("/") else url + "/"


def cached_path(variant):
    return os.path.join(cache_dir(), *variant.weights_path.split("/"))


def fetch(variant, default_base_url):
    """Returns the local path of ``variant``'s weights, downloading them if needed.

    A cached file is checked against the SHA-256 recorded when it was downloaded (or first
    used, for a file put there by hand). A file with no record that is not a valid ``.npz``
    (a cache entry of an older bit_keras) is downloaded again.

    Raises:
        CheckpointError: the variant has no released weights; the download failed (the
            message gives the URL, the cache path and the ``weights=`` way); or the cached
            file no longer has its recorded SHA-256 (the message names it and says how to
            download it again).
    """
    if variant.weights_path is None:
        raise CheckpointError(
            f"{variant.name} has no released weights ({variant.note or 'none were published'}). "
            f"Use bit_keras.build({variant.name!r}) for the architecture, or pass weights=PATH.")
    path = cached_path(variant)
    if os.path.isfile(path):
        if os.path.isfile(path + HASH_SUFFIX):
            verify(path)
            return path
        try:
            check_npz_file(path)
            record_hash(path)
            return path
        except CheckpointError as e:  # a cache entry of an older bit_keras: fetch it again
            logging.warning("Removing the cached %s and downloading it again: %s", path, e)
            os.remove(path)
    url = base_url(default_base_url) + variant.weights_path
    try:
        download(url, path)
    except (OSError, urllib.error.URLError, ValueError) as e:  # CheckpointError included
        raise CheckpointError(
            f"Could not download the {variant.name} weights from {url} ({e}). Download that "
            f"file yourself and pass weights=PATH to bit_keras.load, or put it at {path} "
            "(the cache folder is $BIT_KERAS_HOME, default ~/.keras/bit_keras).") from e
    return path


def download(url, path):
    """Downloads ``url`` to ``path`` with ``keras.utils.get_file`` (its progress bar) into
    a hidden folder beside ``path``, checks a ``.npz`` (a zip of ``.npy`` arrays, CRCs
    intact), then renames it into place and records its SHA-256 beside it. A short or wrong
    download (an HTML error page) never lands in the cache."""
    import keras

    path = os.path.abspath(path)
    parent, name = os.path.split(path)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{name}.download-", dir=parent)
    try:
        try:
            got = keras.utils.get_file(name, url, cache_dir=staging, cache_subdir="")
        except Exception as e:  # noqa: BLE001 - get_file wraps HTTP errors in Exception
            raise OSError(str(e)) from e
        if path.endswith(".npz"):
            check_npz_file(got)
        digest = sha256(got)
        os.chmod(got, atomic.file_mode())
        os.replace(got, path)
        _write_hash(path, digest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def sha256(path, chunk=1 << 22):
    """The SHA-256 of a file, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _write_hash(path, digest):
    atomic.write_text(path + HASH_SUFFIX, f"{digest}  {os.path.basename(path)}\n")


def record_hash(path):
    """Records ``path``'s SHA-256 beside it (``path.sha256``), for later ``verify``."""
    _write_hash(path, sha256(path))


def verify(path):
    """Raises ``CheckpointError`` unless ``path`` still has the SHA-256 recorded beside it."""
    with open(path + HASH_SUFFIX) as f:
        recorded = f.read().split()[:1]
    actual = sha256(path)
    if recorded != [actual]:
        raise CheckpointError(
            f"The cached weights file {path} is damaged: its SHA-256 is {actual}, but "
            f"{recorded[0] if recorded else 'nothing readable'} was recorded in "
            f"{path + HASH_SUFFIX} when it was downloaded. Delete both files to download it "
            "again on the next load, or pass weights=PATH to bit_keras.load.")
