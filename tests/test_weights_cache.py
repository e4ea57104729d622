"""Finding official weights: the cache folder, a download with progress, and offline errors."""

import functools
import http.server
import os
import socket
import threading

import numpy as np
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


def test_download_once_into_cache(tmp_path, monkeypatch, capsys):
    served = tmp_path / "served"
    (served / "distill").mkdir(parents=True)
    payload = np.arange(1000, dtype=np.float32)
    np.savez(served / "distill" / "R50x1_160.npz", x=payload)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("BIT_KERAS_HOME", str(tmp_path / "cache"))
        monkeypatch.setenv("BIT_KERAS_WEIGHTS_URL", f"http://127.0.0.1:{server.server_port}/")
        variant = bit_keras.get_variant("BiT-M-R50x1-distilled-160")
        path = weights_cache.fetch(variant, "unused")
        assert path == str(tmp_path / "cache" / "distill" / "R50x1_160.npz")
        with np.load(path, allow_pickle=False) as f:
            np.testing.assert_array_equal(f["x"], payload)
        assert "R50x1_160.npz [" in capsys.readouterr().err  # the progress bar
        server.shutdown()
        assert weights_cache.fetch(variant, "unused") == path  # cached: no server needed
    finally:
        server.server_close()
