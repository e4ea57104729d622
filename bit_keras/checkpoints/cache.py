"""Where official weights live on disk, and fetching them once with a progress bar."""

import os
import sys
import urllib.error
import urllib.request

from absl import logging

from bit_keras.checkpoints.formats import CheckpointError, check_npz_file
from bit_keras.utils import atomic


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

    Raises:
        CheckpointError: the variant has no released weights, or the download failed
            (the message gives the URL, the cache path and the ``weights=`` way).
    """
    if variant.weights_path is None:
        raise CheckpointError(
            f"{variant.name} has no released weights ({variant.note or 'none were published'}). "
            f"Use bit_keras.build({variant.name!r}) for the architecture, or pass weights=PATH.")
    path = cached_path(variant)
    if os.path.isfile(path):
        try:
            check_npz_file(path)
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


def download(url, path, chunk=1 << 20):
    """Downloads ``url`` to ``path`` with a progress bar, writing beside it then renaming.

    A ``.npz`` is checked (a zip of ``.npy`` arrays, CRCs intact) before the rename, so a
    short or wrong download (an HTML error page) never lands in the cache.
    """
    with atomic.atomic_file(path) as tmp:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            while block := response.read(chunk):
                out.write(block)
                done += len(block)
                _progress(os.path.basename(path), done, total)
        if total and done != total:
            raise OSError(f"download stopped after {done} of {total} bytes")
        sys.stderr.write("\n")
        if path.endswith(".npz"):
            check_npz_file(tmp)
    return path


def _progress(name, done, total):
    if total:
        frac = done / total
        bar = "#" * int(30 * frac)
        sys.stderr.write(f"\r{name} [{bar:<30}] {done / 2**20:.1f}/{total / 2**20:.1f} MiB")
    else:
        sys.stderr.write(f"\r{name} {done / 2**20:.1f} MiB")
    sys.stderr.flush()
