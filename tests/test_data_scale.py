"""Folders at any size: listed (and the list cached), decoded lazily, bad files skipped
mid-stream without breaking exact resume, ``scan`` for the up-front check."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import bit_keras
from bit_keras import data as bd
from bit_keras.data import folder_index

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 8


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("BIT_KERAS_HOME", str(tmp_path / "home"))


def _constant_folder(root, classes=2, per_class=5):
    """Each file a constant image whose grey level names it: 10 * class + k + 1."""
    for c in range(classes):
        os.makedirs(root / f"c{c}", exist_ok=True)
        for k in range(per_class):
            level = 10 * c + k + 1
            Image.fromarray(np.full((SIZE, SIZE, 3), level, np.uint8)).save(
                root / f"c{c}" / f"{k}.png")
    return root


def _levels(ds, batches):
    out = []
    for images, _ in ds.take(batches):
        out += [int(round(float(v))) for v in images.numpy()[:, 0, 0, 0] * 255]
    return out


def test_a_folder_source_decodes_nothing_when_made(tmp_path):
    root = _constant_folder(tmp_path / "f")
    (root / "c0" / "9.png").write_bytes(b"not an image")
    source = bd.from_folder(root)  # no warning, no error: nothing is decoded yet
    assert source.num_examples == 11 and source.may_fail
    os.remove(root / "c1" / "0.png")  # gone before the stream reaches it: still fine
    ds = bd.eval_dataset(source, 4, crop=SIZE, skipped_log=str(tmp_path / "skipped.txt"))
    levels = sorted(_levels(ds, 10))
    assert levels == [1, 2, 3, 4, 5, 12, 13, 14, 15]
    assert sorted((tmp_path / "skipped.txt").read_text().split()) == [
        str(root / "c0" / "9.png"), str(root / "c1" / "0.png")]


def test_a_bad_file_mid_stream_is_replaced_and_resume_stays_exact(tmp_path):
    root = _constant_folder(tmp_path / "f", per_class=6)
    bad = root / "c1" / "3.png"
    bad.write_bytes(bad.read_bytes()[:30])  # truncated: only decoding finds out
    source = bd.from_folder(root)
    log = tmp_path / "skipped.txt"
    n, batch = source.num_examples, 4

    def stream(start_step=0):
        return bd.train_dataset(source, batch, resize=SIZE, crop=SIZE, seed=5,
                                start_step=start_step, skipped_log=str(log))

    levels = _levels(stream(), 3 * n // batch)  # three epochs
    good = sorted({10 * c + k + 1 for c in range(2) for k in range(6)} - {14})
    for epoch in range(3):
        seen = levels[epoch * n:(epoch + 1) * n]
        assert 14 not in seen
        assert sorted(set(seen)) == good  # every good file, one of them twice
        assert len(seen) == len(good) + 1
    assert set(log.read_text().split()) == {str(bad)}
    assert _levels(stream(start_step=5), 4) == levels[5 * batch:9 * batch]


def test_too_many_bad_files_in_a_row_stop_the_stream_with_a_message(tmp_path):
    root = _constant_folder(tmp_path / "f", per_class=1)
    for c in range(2):
        (root / f"c{c}" / "0.png").write_bytes(b"broken")
    ds = bd.train_dataset(bd.from_folder(root), 2, resize=SIZE, crop=SIZE)
    with pytest.raises(Exception, match=r"image files in a row could not be decoded.*"
                                        r"bit_keras.data.scan"):
        next(iter(ds))


def test_the_file_list_is_cached_until_a_directory_changes(tmp_path, monkeypatch):
    root = _constant_folder(tmp_path / "f")
    first = bd.from_folder(root)
    index = folder_index.index_path(str(root))
    assert os.path.isfile(index)

    def no_walk(*args, **kwargs):
        raise AssertionError("listed again")

    monkeypatch.setattr(folder_index.os, "walk", no_walk)
    again = bd.from_folder(root)
    assert again._store.paths == first._store.paths
    np.testing.assert_array_equal(again.labels, first.labels)
    monkeypatch.undo()
    Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(root / "c1" / "new.png")
    assert bd.from_folder(root).num_examples == first.num_examples + 1
    os.makedirs(root / "c2")
    Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(root / "c2" / "x.png")
    assert bd.from_folder(root).class_names == ["c0", "c1", "c2"]
    with open(index, "w") as f:
        f.write("damaged")  # a damaged index is listed again, not trusted
    assert bd.from_folder(root).num_examples == first.num_examples + 2


def test_median_area_of_a_large_folder_comes_from_a_sample(tmp_path, monkeypatch):
    from bit_keras.data import files
    monkeypatch.setattr(files, "SIZE_SAMPLE", 4)
    for i, side in enumerate([4, 4, 4, 4, 4, 4, 4, 4, 40, 40]):
        os.makedirs(tmp_path / "f" / f"c{i % 2}", exist_ok=True)
        Image.fromarray(np.zeros((side, side, 3), np.uint8)).save(tmp_path / "f" / f"c{i % 2}" / f"{i}.png")
    source = bd.from_folder(tmp_path / "f")
    opened = []
    real = files.header_size
    monkeypatch.setattr(files, "header_size", lambda p: opened.append(p) or real(p))
    assert source.median_image_area() in (16.0, 880.0, 1600.0)
    assert len(opened) == 4


def test_scan_lists_every_unreadable_file(tmp_path):
    root = _constant_folder(tmp_path / "f")
    (root / "c0" / "bad.jpg").write_bytes(b"\xff\xd8 truncated jpeg")
    (root / "c1" / "empty.png").write_bytes(b"")
    report = bd.scan(root, workers=2)
    assert report.num_files == 12 and not report.ok
    assert sorted(report.unreadable) == [os.path.join("c0", "bad.jpg"),
                                         os.path.join("c1", "empty.png")]
    done = subprocess.run([sys.executable, "-m", "bit_keras", "scan", f"--folder={root}",
                           "--strict"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT})
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert [line.split("\t")[0] for line in lines[:-1]] == sorted(report.unreadable)
    assert json.loads(lines[-1]) == {"folder": str(root), "files": 12, "unreadable": 2}


def test_fine_tune_on_a_folder_with_a_bad_file_reports_it_in_the_run(tmp_path):
    import fine_tune_support as support
    support.write_task(str(tmp_path / "task"), train_per_class=4, test_per_class=2)
    bad = tmp_path / "task" / "train" / "red" / "red00.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    model = bit_keras.build("R14x1-tiny", num_classes=3)
    result = bit_keras.fine_tune(model, str(tmp_path / "task"), run_dir=str(tmp_path / "run"),
                                 steps=4, batch=6, resize=36, crop=32, base_lr=0.1)
    assert result.step == 4
    assert bit_keras.training.read_skipped(str(tmp_path / "run")) == [str(bad)]
