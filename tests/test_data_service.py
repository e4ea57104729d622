"""The tf.data service: a real dispatcher and two real workers (``bit-keras data_service``
processes on 127.0.0.1) make the training batches, each equal to the local stream's."""

import glob
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from bit_keras import data as bd


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(*flags):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.Popen([sys.executable, "-m", "bit_keras", "data_service", *flags],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=env)
    deadline = time.monotonic() + 120
    for line in process.stdout:  # the server prints its address once it listens
        if line.startswith("tf.data service"):
            return process
        if time.monotonic() > deadline:
            break
    process.kill()
    raise AssertionError(f"data_service {flags} did not start")


@pytest.fixture(scope="module")
def dispatcher():
    port = _free_port()
    processes = [_start("--role=dispatcher", f"--port={port}")]
    try:
        for _ in range(2):
            processes.append(_start("--role=worker", f"--dispatcher=localhost:{port}"))
        yield f"localhost:{port}"
    finally:
        for process in processes:
            process.kill()
            process.wait()


@pytest.fixture
def folder(tmp_path, monkeypatch):
    import fine_tune_support as support
    monkeypatch.setenv("BIT_KERAS_HOME", str(tmp_path / "home"))
    support.write_task(str(tmp_path / "task"), train_per_class=4, test_per_class=1)
    for bmp in glob.glob(str(tmp_path / "task" / "*" / "*" / "*.bmp")):
        os.remove(bmp)  # BMPs may be palette ones, which go to Pillow: not on a worker
    return str(tmp_path / "task")


@pytest.mark.parametrize("mixup_alpha", [0.0, 0.2])
def test_every_batch_from_the_service_is_the_local_streams_batch_once(dispatcher, folder,
                                                                       mixup_alpha):
    source = bd.from_folder(os.path.join(folder, "train"))
    options = dict(resize=36, crop=32, seed=5, mixup_alpha=mixup_alpha)
    served = list(bd.train_dataset(source, 4, start_step=3, data_service=dispatcher,
                                   **options).take(8))
    local = list(bd.train_dataset(source, 4, **options).take(20))
    found = []
    for images, labels in served:
        found += [b for b, (local_images, local_labels) in enumerate(local)
                  if np.array_equal(images, local_images) and np.array_equal(labels, local_labels)]
    assert len(found) == 8 and len(set(found)) == 8 and min(found) >= 3  # from step 3, once each


def test_fine_tune_command_trains_through_the_service(dispatcher, folder, tmp_path):
    import bit_keras
    bit_keras.build("R14x1-tiny", num_classes=3).save(tmp_path / "tiny.keras")
    completed = subprocess.run(
        [sys.executable, "-m", "bit_keras", "fine_tune", f"--model={tmp_path / 'tiny.keras'}",
         f"--dataset={folder}", f"--logdir={tmp_path}", "--name=run", "--steps=4", "--batch=6",
         "--resize=36", "--crop=32", f"--data_service={dispatcher}"],
        capture_output=True, text=True, timeout=600,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert completed.returncode == 0, completed.stderr[-2000:]
    summary = json.loads(completed.stdout.strip().splitlines()[-1])
    assert summary["step"] == 4 and os.path.isfile(summary["weights"])


def test_a_bad_or_unreachable_service_is_refused_before_the_run_starts(folder, tmp_path):
    import bit_keras
    source = bd.from_folder(os.path.join(folder, "train"))
    with pytest.raises(ValueError, match="'host:port' or 'grpc://host:port'"):
        bd.train_dataset(source, 4, resize=36, crop=32, data_service="localhost")
    model = bit_keras.build("R14x1-tiny", num_classes=3)
    port = _free_port()  # nothing listens there
    with pytest.raises(ConnectionError, match=f"no tf.data service dispatcher answers at "
                                              f"grpc://127.0.0.1:{port}"):
        bd.service.check_reachable(f"grpc://127.0.0.1:{port}", timeout=1)
    pillow = tmp_path / "tiff"
    for c in ("a", "b"):
        os.makedirs(pillow / c)
        from PIL import Image
        Image.new("RGB", (8, 8)).save(pillow / c / "x.tiff")
    with pytest.raises(ValueError, match="reads its images in Python"):
        bit_keras.fine_tune(model, str(pillow), run_dir=str(tmp_path / "run"), steps=2,
                            batch=2, resize=8, crop=8, data_service=f"127.0.0.1:{port}")
    assert not os.path.exists(tmp_path / "run")  # refused before anything was written
    with pytest.raises(ConnectionError, match="bit-keras data_service --role=dispatcher"):
        bit_keras.fine_tune(model, os.path.join(folder, "train"), run_dir=str(tmp_path / "run"),
                            steps=2, batch=2, resize=36, crop=32,
                            data_service=f"127.0.0.1:{port}")
    assert not os.path.exists(tmp_path / "run")
