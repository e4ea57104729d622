"""The commands: ``bit-keras COMMAND`` and ``python -m bit_keras COMMAND``, one error line."""

import json
import os
import shutil
import subprocess
import sys

import pytest

import bit_keras

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)


def _run(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "bit_keras", *args], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def _bit_lines(stderr):
    """Lines the command printed itself (TensorFlow's C++ start-up lines left out)."""
    return [line for line in stderr.splitlines() if ": error:" in line or "Traceback" in line]


@pytest.mark.parametrize("command", ["demo", "fine_tune", "pretrain", "fewshot", "export", "scan",
                                     "data_service", "distill", "vtab"])
def test_a_bad_flag_is_one_line_and_status_1(command):
    done = _run(command, "--no_such_flag=3")
    assert done.returncode == 1, done.stderr[-2000:]
    assert _bit_lines(done.stderr) == [f"{command}: error: Unknown command line flag "
                                       "'no_such_flag'"], done.stderr[-2000:]


def test_positional_arguments_are_refused_in_one_line():
    done = _run("fewshot", "stray", "--saved_model=x")
    assert done.returncode == 1
    lines = _bit_lines(done.stderr)
    assert len(lines) == 1 and lines[0].startswith("fewshot: error: unexpected arguments"), lines


def test_an_unknown_command_lists_the_commands():
    done = _run("fine-tunes")
    assert done.returncode == 1
    assert _bit_lines(done.stderr) == ["bit-keras: error: unknown command 'fine-tunes'. Commands: "
                                       "demo, fine_tune, pretrain, fewshot, export, scan, "
                                       "data_service, distill, vtab, preset"]


def test_usage_lists_every_command():
    done = _run("--help")
    assert done.returncode == 0
    for command in ("demo", "fine_tune", "pretrain", "fewshot", "export", "scan", "data_service",
                    "distill", "vtab", "preset"):
        assert f"  {command} " in done.stdout


def test_console_script_runs_the_main_job(tmp_path):
    script = shutil.which("bit-keras")
    assert script, "pip install -e . installs the bit-keras console script"
    out = tmp_path / "demo"
    done = subprocess.run([script, "demo", "--tiny", f"--out={out}"], env=ENV,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[1/6]" in done.stdout and "Pre-trained above scratch" in done.stdout
    assert "hub.KerasLayer" in done.stdout
    for path in ("pretrain/weights.npz", "export/feature_vector/saved_model.pb", "results.json",
                 "fewshot.png"):
        assert (out / path).exists(), path
    saved = json.loads((out / "results.json").read_text())
    assert sorted(saved["table"]) == ["fine_tune", "linear_probe"]
    for method in ("linear_probe", "fine_tune"):
        for name in ("pretrained", "scratch"):
            accs = saved["table"][method][name]
            assert sorted(accs) == ["1", "5"] and all(0 <= a <= 1 for a in accs.values())
    assert saved["details"]["linear_probe"]["pretrained"]["num_classes"] == 24


def test_vtab_refuses_an_unknown_task_in_one_line(tmp_path):
    done = _run("vtab", f"--logdir={tmp_path}", "--name=v", "--tasks=dtd,imagenet")
    assert done.returncode == 1
    accepted = ", ".join(bit_keras.vtab.TASKS)
    assert _bit_lines(done.stderr) == ["vtab: error: --tasks has unknown VTAB-1k tasks "
                                       f"['imagenet']. Accepted: {accepted}"], done.stderr[-2000:]
    assert not (tmp_path / "v").exists()
