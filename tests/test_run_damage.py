"""A damaged or shared run folder: resume from what restores, refuse what would lose work.

One short reference run (8 steps, checkpoints at 4 and 8) is copied and damaged in each
case; the rerun must end with the reference run's weights.
"""

import json
import os
import shutil
import signal

import fine_tune_support as support
import keras
import numpy as np
import pytest

import bit_keras
from bit_keras import training
from bit_keras.training import checkpointing, run_lock

RUN = {**support.RUN, "steps": 8, "eval_every": 4, "checkpoint_every": 4}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("run_damage")
    support.write_task(str(root / "task"), train_per_class=4, test_per_class=2)
    support.write_tiny_model(str(root / "tiny.keras"))
    return root


def _tune(workdir, run_dir, **options):
    model = keras.saving.load_model(str(workdir / "tiny.keras"))
    return bit_keras.fine_tune(model, str(workdir / "task"), run_dir=str(run_dir),
                               **{**RUN, **options})


@pytest.fixture(scope="module")
def reference(workdir):
    result = _tune(workdir, workdir / "reference")
    names = sorted(p.name for p in (workdir / "reference" / "checkpoints").iterdir())
    assert names == ["checkpoint", "ckpt-4.data-00000-of-00001", "ckpt-4.index",
                     "ckpt-8.data-00000-of-00001", "ckpt-8.index"]
    return result


def _copy(reference, workdir, name):
    target = workdir / name
    shutil.copytree(reference.run_dir, target)
    (target / "weights.npz").unlink()
    return target


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


DAMAGE = {
    "data_truncated": lambda c: _truncate(c / "ckpt-8.data-00000-of-00001"),
    "data_empty": lambda c: (c / "ckpt-8.data-00000-of-00001").write_bytes(b""),
    "index_garbage": lambda c: (c / "ckpt-8.index").write_bytes(os.urandom(300)),
    "index_deleted": lambda c: (c / "ckpt-8.index").unlink(),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_newest_checkpoint_resumes_from_the_older_one(reference, workdir, damage):
    run_dir = _copy(reference, workdir, damage)
    DAMAGE[damage](run_dir / "checkpoints")
    # What a save killed midway leaves: a temp folder beside the kept checkpoints.
    (run_dir / "checkpoints" / "ckpt-12_temp").mkdir()
    (run_dir / "checkpoints" / "ckpt-12_temp" / "part-00000-of-00001.data").write_bytes(b"x")
    result = _tune(workdir, run_dir)
    assert result.resumed_from == str(run_dir / "checkpoints" / "ckpt-4")
    assert result.step == RUN["steps"]
    for a, b in zip(result.model.get_weights(), reference.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert not (run_dir / "checkpoints" / "ckpt-12_temp").exists()
    assert [r["step"] for r in training.read_metrics(str(run_dir))] == [4, 8]
    # The retrained step 8 replaced the damaged files: the folder restores as a whole again.
    again = _tune(workdir, run_dir)
    assert again.resumed_from == str(run_dir / "checkpoints" / "ckpt-8")


def test_a_garbage_state_file_and_a_torn_metrics_line_still_resume(reference, workdir, caplog):
    run_dir = _copy(reference, workdir, "state_garbage")
    (run_dir / "checkpoints" / "checkpoint").write_bytes(b"\x00\xffnot a state file {")
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write('{"step": 12, "lr": 0.0')  # an append cut short
    result = _tune(workdir, run_dir)
    assert result.resumed_from == str(run_dir / "checkpoints" / "ckpt-8")
    for a, b in zip(result.model.get_weights(), reference.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert [r["step"] for r in training.read_metrics(str(run_dir))] == [4, 8]
    assert (run_dir / "metrics.jsonl").read_text().endswith("}\n")  # the torn line is gone


def test_no_checkpoint_restores_is_an_error_naming_the_files(reference, workdir):
    run_dir = _copy(reference, workdir, "all_damaged")
    for n in (4, 8):
        _truncate(run_dir / "checkpoints" / f"ckpt-{n}.data-00000-of-00001")
    before = {p.name: p.read_bytes() for p in (run_dir / "checkpoints").iterdir()}
    with pytest.raises(checkpointing.CheckpointError) as error:
        _tune(workdir, run_dir)
    message = str(error.value)
    assert "no checkpoint in" in message and "ckpt-4" in message and "ckpt-8" in message
    assert "ckpt-8.data-00000-of-00001" in message and "use a new run_dir" in message
    assert {p.name: p.read_bytes() for p in (run_dir / "checkpoints").iterdir()} == before


def test_metrics_lines_that_do_not_parse_name_the_file_and_line(tmp_path, caplog):
    good = json.dumps({"step": 4, "loss": 1.0})
    (tmp_path / "metrics.jsonl").write_text(f"{good}\n{{oops\n{good}\n")
    with pytest.raises(ValueError, match=r"metrics.jsonl, line 2 does not parse"):
        training.read_metrics(str(tmp_path))
    (tmp_path / "metrics.jsonl").write_text(f"{good}\n{good[:9]}")
    assert training.read_metrics(str(tmp_path)) == [{"step": 4, "loss": 1.0}]
    assert "dropping its torn last line 2" in caplog.text


def test_a_run_json_that_does_not_parse_names_the_file(workdir, tmp_path):
    (tmp_path / "run.json").write_text('{"batch": 12,\n  "steps": ')
    with pytest.raises(ValueError, match=r"run.json, line 2 does not parse"):
        _tune(workdir, tmp_path)


@pytest.mark.parametrize("options, message", [
    (dict(crop=64, resize=36), "resize must be at least crop. Received: resize=36, crop=64"),
    (dict(base_lr=float("nan")), "base_lr must be a finite number > 0. Received: base_lr=nan"),
    (dict(base_lr=-0.1), "base_lr must be a finite number > 0. Received: base_lr=-0.1"),
    (dict(mixup_alpha=-1.0), "mixup_alpha must be a finite number >= 0"),
    (dict(eval_every=-2), "eval_every must be"),
])
def test_bad_settings_are_refused_before_run_json_is_written(workdir, tmp_path, options,
                                                             message):
    with pytest.raises(ValueError) as error:
        _tune(workdir, tmp_path / "run", **options)
    assert message in str(error.value)
    assert not (tmp_path / "run" / "run.json").exists()


def test_pretrain_refuses_bad_settings_before_anything(workdir, tmp_path):
    model = bit_keras.resnet_v2(num_classes=3, **support.TINY)
    with pytest.raises(ValueError, match=r"base_lr must be a finite number > 0"):
        bit_keras.pretrain(model, str(workdir / "task"), run_dir=str(tmp_path / "p"), steps=2,
                           batch=6, crop=32, base_lr=float("inf"))
    with pytest.raises(ValueError, match=r"resize must be at least crop"):
        bit_keras.pretrain(model, str(workdir / "task"), run_dir=str(tmp_path / "p"), steps=2,
                           batch=6, crop=32, resize=16, augment="hyperrule")
    assert not (tmp_path / "p").exists()


def test_a_single_class_folder_is_refused(workdir, tmp_path):
    shutil.copytree(workdir / "task" / "train" / "red", tmp_path / "one" / "red")
    model = bit_keras.resnet_v2(num_classes=3, **support.TINY)
    with pytest.raises(ValueError, match=r"at least two classes .* 1 class\(es\) \['red'\]"):
        bit_keras.fine_tune(model, str(tmp_path / "one"), steps=2, batch=4)
    with pytest.raises(ValueError, match=r"at least two classes"):
        bit_keras.pretrain(model, str(tmp_path / "one"), steps=2, batch=4, crop=32)


def test_multi_label_data_of_one_class_is_accepted(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (8, 32, 32, 3)).astype(np.float32)
    labels = rng.integers(0, 2, (8, 1)).astype(np.float32)
    model = bit_keras.resnet_v2(num_classes=1, **support.TINY)
    result = bit_keras.fine_tune(model, bit_keras.data.from_arrays(images, labels), steps=1,
                                 batch=4, resize=32, crop=32)
    assert result.step == 1


_HOLDER = """
import sys, time
from bit_keras.training import run_lock
with run_lock.hold(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_run_folder_is_held_by_one_process_at_a_time(workdir, tmp_path):
    run_dir = tmp_path / "shared"
    holder = support.python(_HOLDER.replace("sys.argv[1]", repr(str(run_dir))))
    try:
        assert holder.stdout.readline().strip() == "held", holder.stderr.read()[-2000:]
        with pytest.raises(run_lock.RunFolderBusy, match=rf"in use by another process \(pid {holder.pid}\)"):
            _tune(workdir, run_dir)
        assert not (run_dir / "run.json").exists() and not (run_dir / "checkpoints").exists()
        # The command line says the same in one line.
        cli = support.cli(support.cli_args(name="shared", logdir=tmp_path,
                                           model=workdir / "tiny.keras",
                                           dataset=workdir / "task", **RUN))
        _, err = cli.communicate(timeout=300)
        assert cli.returncode == 1
        errors = [line for line in err.splitlines() if line.startswith("fine_tune: error:")]
        assert len(errors) == 1 and f"(pid {holder.pid})" in errors[0], err[-2000:]
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.communicate()
    # A holder that died (SIGKILL: no clean-up ran) leaves no stale lock.
    with run_lock.hold(str(run_dir)):
        with run_lock.hold(str(run_dir)):  # re-entrant in one thread
            pass
    assert (run_dir / run_lock.LOCK_FILE).exists()


def test_the_cli_summary_says_where_it_resumed_from(reference, workdir):
    run_dir = _copy(reference, workdir, "cli_summary")
    (run_dir / "checkpoints" / "ckpt-8.index").unlink()
    # --batch_scaling: the API run's batch-scaled lr and schedule (the command's default is
    # the official train.py's, which run.json would refuse as "other settings").
    cli = support.cli(support.cli_args(name="cli_summary", logdir=workdir,
                                       model=workdir / "tiny.keras", dataset=workdir / "task",
                                       batch_scaling=True, **RUN))
    out, err = cli.communicate(timeout=300)
    assert cli.returncode == 0, err[-3000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["resumed_from"] == str(run_dir / "checkpoints" / "ckpt-4")
    assert sum("Resumed from" in line for line in err.splitlines()) == 1
