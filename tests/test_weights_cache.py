"""Finding official weights: the cache folder, a download with progress, the SHA-256 kept
beside it, offline errors, and the VTAB-1k names."""

import hashlib
import os
import socket

import numpy as np
import numpy_bit
import pytest

import bit_keras
from bit_keras import CheckpointError
from bit_keras.checkpoints import cache as weights_cache


def test_bit_l_has_no_weights():
    with pytest.raises(CheckpointError, match="BiT-L-R50x1 has no released weights.*never released"):
        bit_keras.load("BiT-L-R50x1")


def test_offline_error_gives_url_and_weights_way(tmp_path, monkeypatch):
    with socket.socket() as s:  # bound, never listening: connections are refused, and no
        s.bind(("127.0.0.1", 0))  # other test (pytest-xdist worker) can take the port meanwhile
        port = s.getsockname()[1]
        monkeypatch.setenv("BIT_KERAS_HOME", str(tmp_path))
        monkeypatch.setenv("BIT_KERAS_WEIGHTS_URL", f"http://127.0.0.1:{port}/bit_models")
        with pytest.raises(CheckpointError) as e:
            bit_keras.load("BiT-M-R50x1")
    msg = str(e.value)
    assert f"http://127.0.0.1:{port}/bit_models/BiT-M-R50x1.npz" in msg
    assert "weights=PATH" in msg and str(tmp_path) in msg
    assert os.listdir(tmp_path) == [] or not any(f.endswith(".npz") for f in os.listdir(tmp_path))


def test_download_once_into_cache(bucket, tmp_path, capsys):
    (bucket / "distill").mkdir()
    payload = np.arange(1000, dtype=np.float32)
    np.savez(bucket / "distill" / "R50x1_160.npz", x=payload)
    variant = bit_keras.get_variant("BiT-M-R50x1-distilled-160")
    path = weights_cache.fetch(variant, "unused")
    assert path == str(tmp_path / "cache" / "distill" / "R50x1_160.npz")
    with np.load(path, allow_pickle=False) as f:
        np.testing.assert_array_equal(f["x"], payload)
    out = capsys.readouterr().out  # keras.utils.get_file's progress
    url = os.environ["BIT_KERAS_WEIGHTS_URL"]
    assert f"Downloading data from {url}distill/R50x1_160.npz" in out
    assert sorted(os.listdir(tmp_path / "cache" / "distill")) == ["R50x1_160.npz",
                                                                 "R50x1_160.npz.sha256"]
    os.remove(bucket / "distill" / "R50x1_160.npz")
    assert weights_cache.fetch(variant, "unused") == path  # cached: the bucket is not asked


def test_the_sha256_recorded_at_download_refuses_a_damaged_cached_file(bucket, tmp_path):
    (bucket / "distill").mkdir()
    np.savez(bucket / "distill" / "R50x1_160.npz", x=np.arange(4096, dtype=np.float32))
    variant = bit_keras.get_variant("BiT-M-R50x1-distilled-160")
    path = weights_cache.fetch(variant, "unused")
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert open(path + ".sha256").read() == f"{digest}  R50x1_160.npz\n"
    with open(path, "r+b") as f:  # one flipped byte inside an array: the zip still opens
        f.seek(os.path.getsize(path) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    damaged = open(path, "rb").read()
    with pytest.raises(CheckpointError) as error:
        weights_cache.fetch(variant, "unused")
    message = str(error.value)
    assert f"The cached weights file {path} is damaged" in message
    assert digest in message and "Delete both files to download it again" in message
    assert open(path, "rb").read() == damaged  # refused, not replaced behind the user's back
    os.remove(path)
    os.remove(path + ".sha256")
    assert weights_cache.fetch(variant, "unused") == path  # downloaded again, as the message says
    with open(path, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == digest


def test_a_file_put_in_the_cache_by_hand_is_recorded_on_first_use(bucket, tmp_path):
    variant = bit_keras.get_variant("BiT-M-R50x1-distilled-160")
    cached = tmp_path / "cache" / "distill" / "R50x1_160.npz"
    cached.parent.mkdir(parents=True)
    np.savez(cached, x=np.ones(8, np.float32))
    assert weights_cache.fetch(variant, "unused") == str(cached)
    assert (tmp_path / "cache" / "distill" / "R50x1_160.npz.sha256").exists()
    np.savez(cached, x=np.zeros(8, np.float32))  # replaced afterwards: refused
    with pytest.raises(CheckpointError, match="is damaged"):
        weights_cache.fetch(variant, "unused")


def test_a_vtab_name_loads_its_file_and_head(bucket, tmp_path):
    name = "BiT-M-R50x1-run1-dsprites-orientation"
    variant = bit_keras.get_variant(name)
    assert variant.vtab_task == "dsprites-orientation" and variant.num_classes == 16
    assert variant.weights_url == (
        "https://storage.googleapis.com/bit_models/vtab/BiT-M-R50x1-run1-dsprites-orientation.npz")
    weights = numpy_bit.random_weights((3, 4, 6, 3), 1, 16, seed=1)
    (bucket / "vtab").mkdir()
    np.savez(bucket / "vtab" / f"{name}.npz", **weights)
    model = bit_keras.load(name)
    assert model.num_classes == 16 and model.variant == name
    assert (tmp_path / "cache" / "vtab" / f"{name}.npz").exists()
    np.testing.assert_array_equal(model.get_layer("head").bias.numpy(),
                                  weights["resnet/head/conv2d/bias"])
    counts = {}
    for v in bit_keras.VARIANTS.values():
        if v.vtab_task:
            counts[v.vtab_task] = counts.get(v.vtab_task, 0) + 1
    assert len(counts) == 19 and set(counts.values()) == {15}  # 5 architectures x 3 runs
