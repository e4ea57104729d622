"""One process at a time per run folder: an OS file lock on ``<run_dir>/.lock``.

The lock is ``fcntl.flock`` on an open file, so the kernel drops it when the holder exits,
however it exits (a SIGKILL, a crash, a lost machine): it is never stale. The holder writes
its pid into the file so that the process refused can say who holds the folder. The file
itself stays (deleting it would let two processes lock two different files of one name).

Holding is re-entrant in one thread (a caller's own ``hold`` around code that holds the
folder again; the runner holds it once, from ``run.json`` to the final weights). A ``gs://`` (or other URL) folder is not locked: the OS cannot lock it.
"""

import contextlib
import os
import threading

try:
    import fcntl
except ImportError:  # not POSIX: no OS lock to take
    fcntl = None

LOCK_FILE = ".lock"
_held = {}  # lock path -> [thread id, depth]
_guard = threading.Lock()


class RunFolderBusy(OSError):
    """Another process (or thread) holds the run folder."""


def _holder(fd):
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        pid = os.read(fd, 64).decode("ascii", "replace").strip()
    except OSError:
        pid = ""
    return pid if pid.isdigit() else "unknown"


def _busy(run_dir, pid):
    return RunFolderBusy(
        f"run_dir {run_dir!r} is in use by another process (pid {pid}); wait for it to end, "
        "stop it, or use another run_dir")


@contextlib.contextmanager
def hold(run_dir):
    """Holds ``run_dir`` for the ``with`` block; raises ``RunFolderBusy`` if another holds it.

    ``run_dir=None`` (nothing written) and URL folders hold nothing.

    Example:

    >>> with run_lock.hold("runs/flowers"):
    ...     train(...)
    """
    if run_dir is None or fcntl is None or "://" in os.fspath(run_dir):
        yield
        return
    run_dir = os.fspath(run_dir)
    os.makedirs(run_dir, exist_ok=True)
    path = os.path.realpath(os.path.join(run_dir, LOCK_FILE))
    me = threading.get_ident()
    with _guard:
        entry = _held.get(path)
        if entry is not None and entry[0] != me:
            raise _busy(run_dir, f"{os.getpid()}, another thread")
        if entry is not None:
            entry[1] += 1
    if entry is not None:
        try:
            yield
        finally:
            with _guard:
                entry[1] -= 1
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # not inherited by child processes
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(run_dir, _holder(fd)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        with _guard:
            _held[path] = [me, 1]
        try:
            yield
        finally:
            with _guard:
                _held.pop(path, None)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
