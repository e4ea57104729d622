"""A command meets a full disk or a malformed checkpoint: one error line, never a traceback."""

import os
import subprocess
import tempfile

import fine_tune_support as support
import numpy as np
import numpy_bit
import pytest


def _lines(stderr):
    return [line for line in stderr.splitlines() if ": error:" in line or "Traceback" in line]


@pytest.fixture
def full_disk():
    """A real file system of 400 KB (a tmpfs; root can mount one): it fills up at once."""
    mount = tempfile.mkdtemp(prefix="bit_keras_full_")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", mount],
                          capture_output=True)
    if done.returncode != 0:
        os.rmdir(mount)
        pytest.skip("mounting a small tmpfs needs root: " + done.stderr.decode()[-200:])
    try:
        yield mount
    finally:
        subprocess.run(["umount", mount], check=False)
        os.rmdir(mount)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    weights = numpy_bit.random_weights((1, 1, 1, 1), 1, 5, base=16, seed=3)
    np.savez(root / "good.npz", **weights)
    bad = dict(weights)
    bad["resnet/root_block/standardized_conv2d/kernel"] = np.float32(1.0)  # a 0-d array
    np.savez(root / "zero_d.npz", **bad)
    return root


def test_a_0d_kernel_through_export_is_one_line(checkpoints, tmp_path):
    done = support.cli(["--model=R14x1-tiny", f"--weights={checkpoints / 'zero_d.npz'}",
                        f"--out={tmp_path / 'e'}"], command="export")
    _, err = done.communicate(timeout=300)
    assert done.returncode == 1
    assert _lines(err) == [
        f"export: error: Checkpoint {checkpoints / 'zero_d.npz'}: tensor "
        "resnet/root_block/standardized_conv2d/kernel has shape () (rank 0); expected rank 4"]


def test_a_full_disk_during_an_export_is_one_line(checkpoints, full_disk):
    done = support.cli(["--model=R14x1-tiny", f"--weights={checkpoints / 'good.npz'}",
                        f"--out={full_disk}/e"], command="export")
    _, err = done.communicate(timeout=300)
    assert done.returncode == 1
    lines = _lines(err)
    assert len(lines) == 1 and lines[0].startswith("export: error: "), err[-3000:]
    assert "No space left on device" in lines[0] and "function_node" not in lines[0]
    assert os.listdir(full_disk) == []  # the hidden sibling is removed


def test_a_full_disk_during_a_run_is_one_line(tmp_path, full_disk):
    support.write_task(str(tmp_path / "task"), train_per_class=2, test_per_class=1)
    support.write_tiny_model(str(tmp_path / "tiny.keras"))
    done = support.cli(support.cli_args(
        name="r", logdir=full_disk, model=tmp_path / "tiny.keras", dataset=tmp_path / "task",
        batch=4, base_lr=0.01, resize=support.RESIZE, crop=support.CROP, steps=2,
        eval_every=0, checkpoint_every=1))
    _, err = done.communicate(timeout=300)
    assert done.returncode == 1
    lines = _lines(err)
    assert len(lines) == 1 and lines[0].startswith("fine_tune: error: "), err[-3000:]
    assert "No space left on device" in lines[0]


COMMANDS = ["demo", "fine_tune", "pretrain", "fewshot", "export", "scan", "data_service",
            "distill", "vtab"]


def test_command_help_lists_the_command_s_own_flags():
    """``bit-keras COMMAND --help`` (absl's own help says only "Try --helpfull" here, since
    the ``__main__`` module defines no flag): two commands through the command line, all
    nine through the same function."""
    import importlib

    from absl import flags

    from bit_keras import cli
    from bit_keras.cli import common
    running = {c: support.cli(["--help"], command=c) for c in ("fine_tune", "scan")}
    for command in COMMANDS:
        fv = flags.FlagValues()
        module = importlib.import_module(f"bit_keras.cli.{cli.COMMANDS[command][0]}")
        module.define_flags(fv)
        if command in running:
            out, err = running[command].communicate(timeout=300)
            assert running[command].returncode == 0, err[-2000:]
        else:
            out = common.command_help(command, module.define_flags, set(fv), fv)
        assert out.startswith(f"usage: bit-keras {command} [--flag=value ...]"), out[:300]
        listed = {line.split(":")[0].strip()[2:] for line in out.splitlines()
                  if line.startswith("  --")}
        assert listed == set(fv), (command, sorted(set(fv) ^ listed))
