"""Write-beside-then-rename for export directories and files.

A server watching ``<export_dir>/<version>/`` must never see half a model: everything is
written into a hidden sibling (``.NAME.tmp-XXXX``) and renamed into place at the end. A
crash leaves at most that hidden sibling behind (TF Serving ignores non-numeric names).
"""

import contextlib
import os
import shutil
import tempfile


def check_target(target, overwrite):
    """Raises ``FileExistsError`` if ``target`` exists and ``overwrite`` is False."""
    if os.path.lexists(target) and not overwrite:
        raise FileExistsError(
            f"The export target {target!r} already exists; it was left as it was. Pass "
            "overwrite=True to replace it, or choose another directory or version.")


@contextlib.contextmanager
def atomic_directory(target, overwrite=False):
    """Yields a temporary directory beside ``target`` that becomes ``target`` on success."""
    target = os.path.abspath(os.fspath(target))
    check_target(target, overwrite)
    parent, name = os.path.split(target)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=parent)
    try:
        yield tmp
        check_target(target, overwrite)
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
def atomic_file(target, overwrite=False):
    """Yields a temporary file path beside ``target`` that replaces ``target`` on success."""
    target = os.path.abspath(os.fspath(target))
    check_target(target, overwrite)
    parent, name = os.path.split(target)
    os.makedirs(parent, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.tmp-", dir=parent)
    os.close(fd)
    try:
        yield tmp
        check_target(target, overwrite)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
