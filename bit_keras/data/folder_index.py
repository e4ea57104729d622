"""The file list of an image folder, listed once and cached.

Listing a million files takes minutes on network storage, and a run lists its folders again
at every resume and for every evaluation source. The list (classes, files, labels) is kept
in ``$BIT_KERAS_HOME/folder_index/<hash of the folder's real path>.txt`` with the
modification time of every directory it walked: a directory's time changes when a file or
folder is added, removed or renamed in it, so a cached list is used only while every one of
those directories is unchanged, and listed again otherwise.

The file: one JSON header line (``folder``, ``classes``, ``dirs``: relative path -> mtime_ns),
then one ``label<TAB>relative path`` line per file, sorted.
"""

import hashlib
import json
import os

from absl import logging

from bit_keras.checkpoints.cache import cache_dir
from bit_keras.utils import atomic

INDEX_DIR = "folder_index"
_VERSION = 2  # 2: regular files only


def index_path(folder):
    key = hashlib.sha256(os.path.realpath(folder).encode("utf-8", "surrogateescape"))
    return os.path.join(cache_dir(), INDEX_DIR, key.hexdigest()[:32] + ".txt")


def list_folder(folder, extensions, use_cache=True):
    """``(classes, relative paths, labels)`` of ``folder/<class>/**/<image file>``, sorted.

    Classes are the non-hidden subfolders, sorted; files are found recursively (hidden
    files and folders left out), by extension, and sorted within their class. Only regular
    files count, after following links: a FIFO named ``pipe.jpg`` would block its reader
    forever, and a socket or device is no image.
    """
    folder = os.fspath(folder)
    path = index_path(folder)
    if use_cache:
        cached = _read(path, folder, extensions)
        if cached is not None:
            return cached
    classes = sorted(d.name for d in os.scandir(folder)
                     if d.is_dir() and not d.name.startswith("."))
    dirs = {".": os.stat(folder).st_mtime_ns}
    files, labels = [], []
    for label, name in enumerate(classes):
        found = []
        for root, subdirs, names in os.walk(os.path.join(folder, name)):
            subdirs[:] = [d for d in subdirs if not d.startswith(".")]
            rel_root = os.path.relpath(root, folder)
            dirs[rel_root] = os.stat(root).st_mtime_ns
            found += [os.path.join(rel_root, n) for n in names
                      if not n.startswith(".") and n.lower().endswith(extensions)
                      and os.path.isfile(os.path.join(root, n))]
        found.sort()
        files += found
        labels += [label] * len(found)
    if use_cache:
        _write(path, folder, extensions, classes, dirs, files, labels)
    return classes, files, labels


def _header(folder, extensions, classes, dirs):
    return {"version": _VERSION, "folder": os.path.realpath(folder),
            "extensions": list(extensions), "classes": classes, "dirs": dirs}


def _write(path, folder, extensions, classes, dirs, files, labels):
    lines = [json.dumps(_header(folder, extensions, classes, dirs))]
    lines += [f"{label}\t{name}" for label, name in zip(labels, files)]
    try:
        atomic.write_text(path, "\n".join(lines) + "\n")
    except OSError as error:  # a read-only home: list again next time
        logging.warning("Could not cache the file list of %s in %s: %s", folder, path, error)


def _read(path, folder, extensions):
    """The cached listing, or None when there is none or a directory changed."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            header = json.loads(f.readline())
            if (header.get("version") != _VERSION
                    or header.get("folder") != os.path.realpath(folder)
                    or header.get("extensions") != list(extensions)):
                return None
            for rel, mtime in header["dirs"].items():
                if os.stat(os.path.join(folder, rel)).st_mtime_ns != mtime:
                    return None
            files, labels = [], []
            for line in f:
                label, name = line.rstrip("\n").split("\t", 1)
                labels.append(int(label))
                files.append(name)
    except (OSError, ValueError, KeyError, AttributeError):
        return None  # missing, changed or damaged: list again
    logging.info("Using the cached file list of %s (%d files): %s", folder, len(files), path)
    return header["classes"], files, labels
