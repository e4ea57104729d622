"""Write beside, then rename: the one way bit_keras writes a file or a folder.

Readers (a TF Serving process watching ``<export_dir>/<version>/``, a resumed run, a user)
never see half a file: everything is written into a hidden sibling with a unique name
(``.NAME.tmp-XXXX``, so two processes writing the same folder do not collide) and renamed
into place at the end. A crash leaves at most that hidden sibling behind (TF Serving
ignores non-numeric names). What lands gets the modes the user's umask gives a normal
write (``mkstemp``/``mkdtemp`` alone would leave them private to the writer).
"""

import contextlib
import json
import os
import shutil
import tempfile


def check_target(target, overwrite):
    """Raises ``FileExistsError`` if ``target`` exists and ``overwrite`` is False."""
    if os.path.lexists(target) and not overwrite:
        raise FileExistsError(
            f"The target {target!r} already exists; it was left as it was. Pass "
            "overwrite=True to replace it, or choose another path or version.")


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode():
    """The mode the user's umask gives a newly written file (0o644 under umask 022)."""
    return 0o666 & ~_umask()


def _sibling(target):
    target = os.path.abspath(os.fspath(target))
    parent, name = os.path.split(target)
    os.makedirs(parent, exist_ok=True)
    return target, parent, name


@contextlib.contextmanager
def atomic_directory(target, overwrite=False):
    """Yields a temporary directory beside ``target`` that becomes ``target`` on success."""
    target, parent, name = _sibling(target)
    check_target(target, overwrite)
    tmp = tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=parent)
    try:
        yield tmp
        check_target(target, overwrite)
        os.chmod(tmp, 0o777 & ~_umask())
        if os.path.lexists(target):
            old = tempfile.mkdtemp(prefix=f".{name}.old-", dir=parent)
            os.rename(target, os.path.join(old, name))
            os.rename(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, target)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(target, overwrite=True):
    """Yields a temporary file path beside ``target`` that replaces ``target`` on success.

    Example:

    >>> with atomic_file("weights.npz") as tmp:
    ...     np.savez(tmp, **arrays)
    """
    target, parent, name = _sibling(target)
    check_target(target, overwrite)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.tmp-", dir=parent)
    os.close(fd)
    try:
        yield tmp
        check_target(target, overwrite)
        os.chmod(tmp, file_mode())
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path, text, overwrite=True):
    """Writes ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    with atomic_file(path, overwrite) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    return path


def write_json(path, payload, overwrite=True, indent=1):
    """Writes ``payload`` as JSON to ``path`` atomically; returns ``path``."""
    return write_text(path, json.dumps(payload, indent=indent), overwrite)
