"""The files exports, archives and downloads leave: readable modes, no clobbered versions, no
links out of an export, every target checked first, no bad download kept."""

import contextlib
import os
import pickle
import stat
import tarfile

import numpy as np
import pytest

import bit_keras
from bit_keras.checkpoints import CheckpointError
from bit_keras.checkpoints import cache as weights_cache
from bit_keras.cli import run_export


@pytest.fixture(scope="module")
def model():
    return bit_keras.build("R14x1-tiny", num_classes=3)


@pytest.fixture(scope="module")
def export(model, tmp_path_factory):
    return bit_keras.export(model, tmp_path_factory.mktemp("fv") / "fv", image_size=32)


@contextlib.contextmanager
def umask(mask):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def _tree(path):
    return {os.path.relpath(os.path.join(r, f), path): open(os.path.join(r, f), "rb").read()
            for r, _, files in os.walk(path) for f in files}


def test_an_unversioned_overwrite_of_a_serving_folder_is_refused(model, tmp_path):
    serving = tmp_path / "serving"
    for version in (1, 2):
        bit_keras.export(model, serving, version=version, image_size=32)
    before = _tree(serving)
    with pytest.raises(ValueError, match=r"TF Serving model folder that holds versions \[1, 2\].*"
                                         r"Pass version="):
        bit_keras.export(model, serving, overwrite=True, image_size=32)
    assert _tree(serving) == before
    with pytest.raises(ValueError, match=r"holds versions \[1, 2\]"):
        run_export.run("R14x1-tiny", str(serving), overwrite=True)  # before any loading
    # One version is replaced, the other kept.
    bit_keras.export(model, serving, version=2, overwrite=True, image_size=32)
    assert sorted(os.listdir(serving)) == ["1", "2"]
    assert _tree(serving / "1") == {k[2:]: v for k, v in before.items() if k.startswith("1/")}


@pytest.mark.parametrize("mask, folder, file", [(0o022, 0o755, 0o644), (0o077, 0o700, 0o600)])
def test_written_files_get_the_modes_of_the_umask(model, export, tmp_path, mask, folder, file):
    with umask(mask):
        saved = bit_keras.export(model, tmp_path / "clf", kind="classifier", version=1,
                                 image_size=32)
        archive = bit_keras.publish(export, tmp_path / "public", name="fv")
        tflite = bit_keras.export_tflite(model, tmp_path / "fv.tflite")
        weights = bit_keras.save_npz(model, tmp_path / "w.npz")
    assert _mode(saved) == folder and _mode(os.path.join(saved, "variables")) == folder
    assert _mode(os.path.join(saved, "saved_model.pb")) == file
    for path in (archive, tmp_path / "public" / "fv.md", tflite, weights):
        assert _mode(path) == file, path


def test_a_link_out_of_the_export_is_refused_and_one_inside_is_stored_as_a_file(export, tmp_path):
    import shutil
    copy = tmp_path / "export"
    shutil.copytree(export, copy)
    (copy / "assets").mkdir(exist_ok=True)
    secret = tmp_path / "secret.txt"
    secret.write_text("not for publishing")
    os.symlink(secret, copy / "assets" / "x")
    with pytest.raises(ValueError, match=r"symbolic link 'assets/x' -> .*secret.txt.*outside"):
        bit_keras.publish(copy, tmp_path / "public", name="m")
    assert not (tmp_path / "public").exists() or not os.listdir(tmp_path / "public")
    os.remove(copy / "assets" / "x")
    (copy / "assets" / "notes.txt").write_text("inside")
    os.symlink("notes.txt", copy / "assets" / "x")
    archive = bit_keras.publish(copy, tmp_path / "public", name="m")
    with tarfile.open(archive) as tar:
        member = tar.getmember("assets/x")
        assert member.isfile() and not any(m.issym() or m.islnk() for m in tar.getmembers())
        assert tar.extractfile(member).read() == b"inside"


def test_run_export_checks_every_target_before_writing_any(model, tmp_path):
    weights = bit_keras.save_npz(model, tmp_path / "w.npz")
    (tmp_path / "m.tflite").write_bytes(b"old")
    with pytest.raises(FileExistsError, match="m.tflite"):
        run_export.run("R14x1-tiny", str(tmp_path / "out"), weights=weights, num_classes=3,
                       tflite=str(tmp_path / "m.tflite"))
    assert not (tmp_path / "out").exists()
    (tmp_path / "public").mkdir()
    (tmp_path / "public" / "r14x1-tiny_feature_vector.md").write_text("old card")
    with pytest.raises(FileExistsError, match="r14x1-tiny_feature_vector.md"):
        run_export.run("R14x1-tiny", str(tmp_path / "out"), weights=weights, num_classes=3,
                       publish_dir=str(tmp_path / "public"))
    assert not (tmp_path / "out").exists()
    assert os.listdir(tmp_path / "public") == ["r14x1-tiny_feature_vector.md"]


@pytest.mark.parametrize("content, what", [
    (b"<!DOCTYPE html><html><body>Not Found</body></html>", "an HTML or XML page"),
    (b"\x93NUMPY\x01\x00v\x00" + b" " * 118, "a single .npy array"),
    (pickle.dumps({"a": 1}), "a pickle, which bit_keras never loads"),
    (bytes(range(40)), "of unknown format; it starts with bytes [0, 1, 2"),
])
def test_a_non_zip_npz_says_so(model, tmp_path, content, what):
    path = tmp_path / "w.npz"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as error:
        bit_keras.load_weights(model, str(path))
    assert "is not a valid .npz (zip) file" in str(error.value) and what in str(error.value)
    assert "pickled objects" not in str(error.value)


@pytest.fixture
def server(bucket):
    (bucket / "distill").mkdir()
    return bucket / "distill" / "R50x1_160.npz"


def test_a_download_that_is_not_an_npz_is_not_cached(server, tmp_path):
    variant = bit_keras.get_variant("BiT-M-R50x1-distilled-160")
    server.write_bytes(b"<html>Sign in to continue</html>")
    with pytest.raises(CheckpointError, match=r"Could not download .*an HTML or XML page"):
        weights_cache.fetch(variant, "unused")
    cached = tmp_path / "cache" / "distill"
    assert not cached.exists() or os.listdir(cached) == []
    # The server is fixed: the next fetch downloads the real file.
    np.savez(server, x=np.arange(10, dtype=np.float32))
    path = weights_cache.fetch(variant, "unused")
    with np.load(path, allow_pickle=False) as f:
        np.testing.assert_array_equal(f["x"], np.arange(10, dtype=np.float32))


def test_a_bad_file_in_the_cache_is_fetched_again(server, tmp_path):
    variant = bit_keras.get_variant("BiT-M-R50x1-distilled-160")
    np.savez(server, x=np.ones(3, np.float32))
    cached = tmp_path / "cache" / "distill" / "R50x1_160.npz"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"<html>an old bad download</html>")
    assert weights_cache.fetch(variant, "unused") == str(cached)
    with np.load(cached, allow_pickle=False) as f:
        np.testing.assert_array_equal(f["x"], np.ones(3, np.float32))


def test_run_export_int8_needs_representative_data_before_writing_anything(model, tmp_path):
    weights = bit_keras.save_npz(model, tmp_path / "w.npz")
    with pytest.raises(ValueError, match="--quantize=int8 \\(only it\\) needs "
                       "--representative_data=FOLDER"):
        run_export.run("R14x1-tiny", str(tmp_path / "out"), weights=weights, num_classes=3,
                       tflite=str(tmp_path / "m.tflite"), quantize="int8")
    assert not (tmp_path / "out").exists() and not (tmp_path / "m.tflite").exists()
    folder = tmp_path / "calibration" / "any"
    folder.mkdir(parents=True)
    from PIL import Image
    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(folder / f"{i}.png")
    written = run_export.run("R14x1-tiny", str(tmp_path / "out"), weights=weights,
                             num_classes=3, kind="classifier", tflite=str(tmp_path / "m.tflite"),
                             quantize="int8", representative_data=str(tmp_path / "calibration"),
                             image_size=16)
    assert written[1] == str(tmp_path / "m.tflite") and os.path.getsize(written[1]) > 0
