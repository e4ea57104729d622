"""One home per helper: atomic writes (unique names, umask modes) and argument checks."""

import os
import stat
import threading

import pytest

from bit_keras.utils import atomic, checks


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_files_and_folders_get_the_umask_modes(tmp_path, umask_022):
    path = atomic.write_text(tmp_path / "a.txt", "hello")
    assert _mode(path) == 0o644 and open(path).read() == "hello"
    with atomic.atomic_directory(tmp_path / "export") as tmp:
        atomic.write_json(os.path.join(tmp, "meta.json"), {"a": 1})
    assert _mode(tmp_path / "export") == 0o755
    assert _mode(tmp_path / "export" / "meta.json") == 0o644


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    atomic.write_text(tmp_path / "run.json", "old")
    with pytest.raises(RuntimeError), atomic.atomic_file(tmp_path / "run.json") as tmp:
        with open(tmp, "w") as f:
            f.write("half")
        raise RuntimeError("crash while writing")
    assert os.listdir(tmp_path) == ["run.json"]
    assert (tmp_path / "run.json").read_text() == "old"


def test_two_writers_of_one_file_use_their_own_temporaries(tmp_path):
    target = tmp_path / "metrics.jsonl"
    seen, ready = [], threading.Barrier(2)

    def write(text):
        with atomic.atomic_file(target) as tmp:
            seen.append(tmp)
            ready.wait(timeout=10)  # both temporaries exist at once
            with open(tmp, "w") as f:
                f.write(text)

    threads = [threading.Thread(target=write, args=(t,)) for t in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == 2 and target.read_text() in ("a", "b")
    assert os.listdir(tmp_path) == ["metrics.jsonl"]


def test_no_overwrite_refuses_an_existing_target(tmp_path):
    atomic.write_text(tmp_path / "x", "1")
    with pytest.raises(FileExistsError, match="already exists"):
        atomic.write_text(tmp_path / "x", "2", overwrite=False)
    assert (tmp_path / "x").read_text() == "1"


@pytest.mark.parametrize("value", [True, False, 0, -2, 1.0, "3", None])
def test_positive_int_refuses_bools_and_non_positive_values(value):
    with pytest.raises(ValueError, match=r"steps must be a positive int. Received: steps="):
        checks.positive_int(value, "steps")


def test_positive_int_accepts_ints_and_none_when_allowed():
    import numpy as np
    assert checks.positive_int(np.int64(3), "k") == 3 and type(checks.positive_int(3, "k")) is int
    assert checks.positive_int(None, "k", allow_none=True) is None
    with pytest.raises(ValueError, match=r"k must be a positive int or None. Received: k=True"):
        checks.positive_int(True, "k", allow_none=True)
    with pytest.raises(ValueError, match=r"v must be a non-negative int. Received: v=-1"):
        checks.non_negative_int(-1, "v")
