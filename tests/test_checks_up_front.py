"""Every number a command or a function takes is checked before anything is read, downloaded
or written (docs/reliability.md): one check per kind, in bit_keras.utils.checks."""

import math

import fine_tune_support as support
import numpy as np
import pytest

import bit_keras
from bit_keras import data as bd
from bit_keras.fewshot import evaluation
from bit_keras.utils import checks

NOWHERE = "/nonexistent/bit_keras/data"  # a check that comes after reading the data fails here


@pytest.fixture(scope="module")
def model():
    return bit_keras.build("R14x1-tiny", num_classes=3)


FINE_TUNE = [("seed", -1, "seed must be an int >= 0"),
             ("examples_per_class_seed", -2, "examples_per_class_seed must be an int >= 0"),
             ("batch", 0, "batch must be a positive int"),
             ("batch_split", -1, "batch_split must be a positive int"),
             ("steps", 0, "steps must be a positive int or None"),
             ("resize", 0, "resize must be a positive int or None"),
             ("crop", -1, "crop must be a positive int or None"),
             ("mixup_alpha", math.nan, "mixup_alpha must be a finite number >= 0 or None"),
             ("base_lr", -1.0, "base_lr must be a finite number > 0"),
             ("eval_every", -1, "eval_every must be None or a non-negative int")]
UPSTREAM = [("seed", -1, "seed must be an int >= 0"),
            ("weight_decay", -1.0, "weight_decay must be a finite number >= 0"),
            ("weight_decay", math.inf, "weight_decay must be a finite number >= 0"),
            ("epochs", 0, "epochs must be a finite number > 0 or None"),
            ("steps", 0, "steps must be a positive int or None"),
            ("warmup_steps", -1, "warmup_steps must be None or a non-negative int"),
            ("resize", 0, "resize must be a positive int or None"),
            ("crop", 0, "crop must be a positive int")]
DISTILL = UPSTREAM + [("temperature", math.nan, "temperature must be a finite number > 0"),
                      ("clip_norm", 0, "clip_norm must be a finite number > 0"),
                      ("mixup_alpha", -1.0, "mixup_alpha must be a finite number >= 0")]


def _refused(tmp_path, call, message):
    run_dir = tmp_path / "run"
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        call(str(run_dir))
    assert not run_dir.exists()


@pytest.mark.parametrize("name,value,message", FINE_TUNE)
def test_fine_tune_checks_every_number_first(model, tmp_path, name, value, message):
    _refused(tmp_path, lambda run_dir: bit_keras.fine_tune(
        model, NOWHERE, run_dir=run_dir, **{name: value}), message)


@pytest.mark.parametrize("name,value,message", UPSTREAM)
def test_pretrain_checks_every_number_first(model, tmp_path, name, value, message):
    _refused(tmp_path, lambda run_dir: bit_keras.pretrain(
        model, NOWHERE, run_dir=run_dir, batch=8, **{name: value}), message)


@pytest.mark.parametrize("name,value,message", DISTILL)
def test_distill_checks_every_number_first(model, tmp_path, name, value, message):
    _refused(tmp_path, lambda run_dir: bit_keras.distill(
        model, model, NOWHERE, run_dir=run_dir, batch=8, **{name: value}), message)


@pytest.mark.parametrize("name,value,message", [
    ("batch", -4, "batch must be a positive int"), ("seed", -1, "seed must be an int >= 0"),
    ("steps", 0, "steps must be a positive int or None"),
    ("checkpoint_every", -1, "checkpoint_every must be None or a non-negative int")])
def test_vtab_checks_its_numbers_before_a_dataset_is_prepared(model, tmp_path, name, value,
                                                             message):
    _refused(tmp_path, lambda run_dir: bit_keras.vtab.run(
        model, run_dir, tasks=["dtd"], data_dir=NOWHERE, **{name: value}), message)


@pytest.mark.parametrize("name,value,message", [
    ("l2_reg", 0.0, "l2_reg must be a finite number > 0"),
    ("l2_reg", math.nan, "l2_reg must be a finite number > 0"),
    ("batch_size", 0, "batch_size must be a positive int"),
    ("image_size", -8, "image_size must be a positive int or None"),
    ("seeds", [-1], "seeds must be non-negative ints")])
def test_fewshot_checks_its_numbers_before_reading_data(name, value, message):
    with pytest.raises(ValueError, match="^" + message):
        evaluation.evaluate(lambda x: x, NOWHERE, NOWHERE, **{name: value})


def test_scan_and_the_data_service_check_their_numbers(tmp_path):
    with pytest.raises(ValueError, match="^workers must be a positive int or None"):
        bd.scan(NOWHERE, workers=0)
    with pytest.raises(ValueError, match=r"^port must be an int in \[0, 65535\]. Received: "
                                         "port=-1"):
        bd.service.serve("dispatcher", port=-1)


def test_one_check_per_kind():
    assert checks.seed(np.int64(3)) == 3
    for bad in (-1, 2 ** 63, True, 1.0, "1"):
        with pytest.raises(ValueError, match="seed must be an int >= 0"):
            checks.seed(bad)
    assert checks.finite_number(None, "x", allow_none=True) is None
    with pytest.raises(ValueError, match=r"^x must be a finite number > 0 or None. Received: "
                                         r"x=-inf"):
        checks.finite_number(-math.inf, "x", strictly_positive=True, allow_none=True)


@pytest.mark.parametrize("command,flags,message", [
    ("fine_tune", ["--model=MODEL", "--seed=-1"],
     "seed must be an int >= 0 (and < 2**63). Received: seed=-1"),
    ("pretrain", ["--model=R14x1-tiny", "--weight_decay=-1"],
     "weight_decay must be a finite number >= 0. Received: weight_decay=-1.0"),
])
def test_a_bad_number_on_the_command_line_writes_nothing(tmp_path, command, flags, message):
    support.write_task(str(tmp_path / "task"), train_per_class=2, test_per_class=1)
    support.write_tiny_model(str(tmp_path / "tiny.keras"))
    flags = [f.replace("MODEL", str(tmp_path / "tiny.keras")) for f in flags]
    done = support.cli([f"--logdir={tmp_path / 'logs'}", "--name=r",
                        f"--dataset={tmp_path / 'task'}", "--batch=4", *flags], command=command)
    _, err = done.communicate(timeout=300)
    assert done.returncode == 1
    lines = [line for line in err.splitlines() if ": error:" in line or "Traceback" in line]
    assert lines == [f"{command}: error: {message}"], err[-3000:]
    assert not (tmp_path / "logs" / "r").exists()
