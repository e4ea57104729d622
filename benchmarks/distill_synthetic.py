"""Does function matching work? A larger teacher distilled into the tiny BiT on bit_synthetic.

``python -m benchmarks.distill_synthetic [--root /tmp/bit_distill] [--steps 1000]
[--teacher_steps 4000]``

On the 168 ``bit_synthetic`` upstream classes (50 training and 10 test images per class,
32x32): a teacher (R26, 32 base channels: 5.3x the student's forward FLOPs) is pre-trained from the
labels with ``bit_keras.pretrain`` for ``--teacher_steps``; then the student (``R14x1-tiny``) is trained for the same
number of steps twice from the same start: from the labels (``pretrain``'s recipe, SGD) and by
``bit_keras.distill`` from the teacher (Adam, KL, MixUp views). Reports test accuracy, the
student/teacher top-1 agreement and the seconds each run took. Not part of the test suite.
"""

import os
import sys
import time

import numpy as np

from benchmarks import report

SIZE, TRAIN, TEST, BATCH = 32, 50, 10, 64


def _agreement(a, b, images):
    return float(np.mean(np.argmax(a.predict(images, verbose=0), -1)
                         == np.argmax(b.predict(images, verbose=0), -1)))


def main(argv):
    import argparse

    parser = argparse.ArgumentParser(prog="distill_synthetic")
    parser.add_argument("--root", default="/tmp/bit_distill")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--teacher_steps", type=int, default=4000)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    import bit_keras
    from bit_keras.datasets import synthetic

    train = synthetic.generate("upstream", "train", TRAIN, SIZE, 0)
    test = synthetic.generate("upstream", "test", TEST, SIZE, 0)
    images = test[0].astype(np.float32) / 255.0
    classes = len(synthetic.CLASSES["upstream"])
    common = dict(batch=BATCH, steps=args.steps, crop=SIZE, augment="hyperrule",
                  eval_every=args.steps, checkpoint_every=args.steps)
    rows = {}

    start = time.perf_counter()
    teacher = bit_keras.resnet_v2((2, 2, 2, 2), 1, num_classes=classes, base_filters=32,
                                  groups=8)
    up = bit_keras.pretrain(teacher, train, test, run_dir=os.path.join(args.root, "teacher"),
                            base_lr=0.3, **{**common, "steps": args.teacher_steps,
                                            "eval_every": args.teacher_steps,
                                            "checkpoint_every": args.teacher_steps})
    rows[f"teacher R26 (32 channels), labels, {args.teacher_steps} steps"] = {
        "accuracy": up.accuracy, "agreement": 1.0, "seconds": time.perf_counter() - start}

    start = time.perf_counter()
    labels_run = bit_keras.pretrain(
        bit_keras.build("R14x1-tiny", num_classes=classes), train, test,
        run_dir=os.path.join(args.root, "student_labels"), base_lr=0.3, **common)
    rows["student R14x1-tiny, labels"] = {
        "accuracy": labels_run.accuracy, "agreement": _agreement(labels_run.model, up.model, images),
        "seconds": time.perf_counter() - start}

    start = time.perf_counter()
    distilled = bit_keras.distill(
        up.model, bit_keras.build("R14x1-tiny", num_classes=classes), train, test,
        run_dir=os.path.join(args.root, "student_distilled"), base_lr=0.01, resize=36, **common)
    rows["student R14x1-tiny, distilled"] = {
        "accuracy": distilled.accuracy, "agreement": distilled.agreement,
        "seconds": time.perf_counter() - start}

    print(f"students {args.steps} steps, teacher {args.teacher_steps}, batch {BATCH}, "
          f"{classes} classes, {len(images)} test images")
    print(f"{'model':<36} {'accuracy':>9} {'agreement':>10} {'seconds':>8}")
    for name, r in rows.items():
        print(f"{name:<36} {r['accuracy']:>9.2%} {r['agreement']:>10.2%} {r['seconds']:>8.0f}")
    if args.out:
        report.write_json(args.out, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
