"""Reading data never lets a file decide the memory or hang the reader (docs/reliability.md):
an image over the pixel limit is skipped from its header, a FIFO or socket in a class folder
is no image, and training decodes JPEGs as serving does."""

import json
import os
import socket
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from bit_keras import data as bd
from bit_keras.data import headers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT}


def write_png_bomb(path, height, width):
    """A real, valid PNG of ``height x width`` black pixels, a few hundred KB on disk, written
    row by row (never held whole)."""
    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    packer, row = zlib.compressobj(9), b"\0" * (1 + 3 * width)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))
        data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
        f.write(chunk(b"IDAT", data) + chunk(b"IEND", b""))


def _small(path, value=10, size=8, fmt="PNG"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path, fmt)


# The child reports its peak memory growth (VmHWM, from /proc) over its resident size once
# TensorFlow is loaded and warm, and what it found.
_CHILD = """
import json, sys
import tensorflow as tf
import bit_keras
from bit_keras import data as bd

def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key)) * 1024

folder, what = sys.argv[1], sys.argv[2]
bd.scan(folder + "/../warm")
base = status("VmRSS:")
if what == "scan":
    found = sorted(bd.scan(folder).unreadable.items())
else:
    source = bd.from_folder(folder, cache_listing=False)
    ds = bd.eval_dataset(source, 4, crop=16)
    found = [int(len(labels)) for _, labels in ds]
print(json.dumps({"growth": status("VmHWM:") - base, "found": found}))
"""


@pytest.fixture(scope="module")
def bomb_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("bomb")
    _small(str(root / "warm" / "a" / "w.png"))
    os.makedirs(root / "data" / "a")
    write_png_bomb(str(root / "data" / "a" / "huge.png"), 12000, 12000)  # 432 MB decoded
    assert os.path.getsize(root / "data" / "a" / "huge.png") < 1_000_000
    _small(str(root / "data" / "a" / "ok.png"))
    _small(str(root / "data" / "b" / "ok.png"), 20)
    return str(root / "data")


@pytest.mark.parametrize("what", ["scan", "eval"])
def test_an_image_over_the_pixel_limit_is_skipped_from_its_header(bomb_folder, what):
    proc = subprocess.run([sys.executable, "-c", _CHILD, bomb_folder, what], env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["growth"] < 150 * 2 ** 20, result  # decoding it takes 432 MB at least
    if what == "scan":
        assert result["found"] == [[os.path.join("a", "huge.png"),
                                    "image of 12000 x 12000 pixels is larger than the limit of "
                                    "36000000 pixels (max_pixels, or $BIT_KERAS_MAX_IMAGE_PIXELS)"]]
    else:
        assert result["found"] == [2]  # the two small images; the huge one is reported
        assert "huge.png" in proc.stderr


def test_the_pixel_limit_is_a_setting(tmp_path, monkeypatch, capfd):
    _small(str(tmp_path / "a" / "big.png"), size=20)
    _small(str(tmp_path / "a" / "big.tiff"), size=20, fmt="TIFF")  # read by Pillow
    _small(str(tmp_path / "a" / "small.jpg"), size=8, fmt="JPEG")
    _small(str(tmp_path / "b" / "small.gif"), size=8, fmt="GIF")
    _small(str(tmp_path / "b" / "big.bmp"), size=20, fmt="BMP")
    assert bd.scan(tmp_path).ok
    report = bd.scan(tmp_path, max_pixels=100)
    assert sorted(report.unreadable) == [os.path.join("a", "big.png"), os.path.join("a", "big.tiff"),
                                         os.path.join("b", "big.bmp")]
    monkeypatch.setenv(headers.ENV_VAR, "100")
    assert sorted(bd.scan(tmp_path).unreadable) == sorted(report.unreadable)
    source = bd.from_folder(tmp_path, cache_listing=False)
    (_, labels), = [(x, y) for x, y in bd.eval_dataset(source, 8, crop=8)]
    assert labels.shape[0] == 2
    err = capfd.readouterr().err
    assert "big.tiff" in err and "Traceback" not in err  # skipped and named, in one line
    monkeypatch.setenv(headers.ENV_VAR, "-3")
    with pytest.raises(ValueError, match=r"BIT_KERAS_MAX_IMAGE_PIXELS must be a positive int. "
                                         r"Received: BIT_KERAS_MAX_IMAGE_PIXELS=-3"):
        bd.scan(tmp_path)
    with pytest.raises(ValueError, match="max_pixels must be a positive int"):
        bd.from_folder(tmp_path, max_pixels=0)
    with pytest.raises(ValueError, match="max_pixels must be a positive int"):
        bd.load_source(str(tmp_path), "train", max_pixels=0)


def test_forged_jpeg_and_gif_headers_are_refused_by_their_size(tmp_path):
    """A small JPEG whose frame header says 30000 x 30000, a GIF whose screen says 65000^2."""
    import io
    jpeg, gif = io.BytesIO(), io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(jpeg, "JPEG")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(gif, "GIF")
    jpeg, gif = bytearray(jpeg.getvalue()), bytearray(gif.getvalue())
    sof = jpeg.find(b"\xff\xc0")
    jpeg[sof + 5:sof + 9] = struct.pack(">HH", 30000, 30000)
    gif[6:10] = struct.pack("<HH", 65000, 65000)
    os.makedirs(tmp_path / "a")
    (tmp_path / "a" / "j.jpg").write_bytes(bytes(jpeg))
    (tmp_path / "a" / "g.gif").write_bytes(bytes(gif))
    _small(str(tmp_path / "b" / "ok.png"))
    limit = "pixels is larger than the limit of 36000000 pixels"
    assert bd.scan(tmp_path).unreadable == {
        os.path.join("a", "g.gif"): f"image of 65000 x 65000 {limit} (max_pixels, or "
                                    "$BIT_KERAS_MAX_IMAGE_PIXELS)",
        os.path.join("a", "j.jpg"): f"image of 30000 x 30000 {limit} (max_pixels, or "
                                    "$BIT_KERAS_MAX_IMAGE_PIXELS)"}


def test_header_shapes_of_every_format_tensorflow_decodes(tmp_path):
    for fmt, suffix in (("PNG", "png"), ("JPEG", "jpg"), ("GIF", "gif"), ("BMP", "bmp")):
        path = str(tmp_path / f"x.{suffix}")
        Image.fromarray(np.zeros((7, 13, 3), np.uint8)).save(path, fmt)
        data = tf.io.read_file(path)
        assert headers.encoded_shape(data).numpy().tolist() == [7, 13], fmt


_FIFO_CHILD = """
import json, sys
from bit_keras import data as bd
folder = sys.argv[1]
report = bd.scan(folder)
source = bd.from_folder(folder)
labels = [int(len(y)) for _, y in bd.eval_dataset(source, 8, crop=8)]
print(json.dumps({"files": report.num_files, "unreadable": report.unreadable,
                  "examples": source.num_examples, "labels": labels}))
"""


def test_fifos_sockets_and_links_to_them_are_not_images(tmp_path):
    """A FIFO named like an image blocks whoever opens it until a writer comes: never."""
    _small(str(tmp_path / "a" / "real.png"))
    _small(str(tmp_path / "b" / "real.png"), 20)
    os.mkfifo(tmp_path / "a" / "pipe.jpg")
    os.symlink(tmp_path / "a" / "pipe.jpg", tmp_path / "b" / "link_to_pipe.png")
    os.symlink(tmp_path / "a" / "real.png", tmp_path / "b" / "link_to_real.png")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "a" / "sock.png"))
    try:
        proc = subprocess.run([sys.executable, "-c", _FIFO_CHILD, str(tmp_path)], env=ENV,
                              capture_output=True, text=True, timeout=120)
    finally:
        server.close()
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"files": 3, "unreadable": {}, "examples": 3, "labels": [3]}


def test_training_and_serving_decode_a_jpeg_to_the_same_pixels(tmp_path):
    """One DCT setting (headers.JPEG_DCT_METHOD) for both: the fast one is up to 4/255 off."""
    from bit_keras.exporter import signatures
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    _small(str(tmp_path / "a" / "x.jpg"), fmt="JPEG")
    Image.fromarray(pixels).save(tmp_path / "a" / "x.jpg", "JPEG", quality=90)
    _small(str(tmp_path / "b" / "y.png"))
    source = bd.from_folder(tmp_path, cache_listing=False)
    (images, _), = [(x.numpy(), y) for x, y in bd.eval_dataset(source, 8, crop=32)]
    data = (tmp_path / "a" / "x.jpg").read_bytes()
    served = signatures.decode_images(tf.constant([data]), 32).numpy()[0]
    np.testing.assert_array_equal(images[0], served)
    with Image.open(tmp_path / "a" / "x.jpg") as im:  # libjpeg's default, as PIL decodes
        np.testing.assert_array_equal(np.round(images[0] * 255), np.asarray(im.convert("RGB")))
