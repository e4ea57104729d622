"""What each TFLite variant keeps of a trained BiT: top-1 agreement, accuracy, file size.

``python -m benchmarks.tflite_accuracy [--root /tmp/bit_tflite] [--weights W.npz]``

The model is the demo's upstream: a tiny BiT (``R14x1-tiny``) pre-trained with
``bit_keras.pretrain`` on the ``bit_synthetic`` upstream classes (168, 32x32; the demo's
settings: 50 images per class, 1000 steps at batch 64), trained once into ``--root`` and
reused, or ``--weights``. Each variant of ``bit_keras.export_tflite(kind="classifier")``
(float32, float16, dynamic-range int8, full-integer int8 calibrated on 100 training
images) then classifies the test split (20 images per class), compared with the float
Keras model: top-1 agreement, top-1 accuracy, mean |logit difference|, file size.
Not part of the test suite.
"""

import os
import sys
import time

import numpy as np

from benchmarks import report

CLASSES_GROUP, SIZE, TRAIN_PER_CLASS, TEST_PER_CLASS = "upstream", 32, 50, 20
STEPS, BATCH, LR = 1000, 64, 0.3
VARIANTS = (None, "float16", "dynamic_int8", "int8")


def trained_weights(root):
    import bit_keras
    from bit_keras.datasets import synthetic

    path = os.path.join(root, "pretrain", "weights.npz")
    if os.path.exists(path):
        return path
    train = synthetic.generate(CLASSES_GROUP, "train", TRAIN_PER_CLASS, SIZE, 0)
    test = synthetic.generate(CLASSES_GROUP, "test", 5, SIZE, 0)
    model = bit_keras.build("R14x1-tiny", num_classes=len(synthetic.CLASSES[CLASSES_GROUP]))
    result = bit_keras.pretrain(model, train, test, run_dir=os.path.join(root, "pretrain"),
                                batch=BATCH, steps=STEPS, base_lr=LR, crop=SIZE,
                                augment="hyperrule", eval_every=STEPS, checkpoint_every=STEPS)
    return result.weights_path


def tflite_logits(path, images):
    from ai_edge_litert.interpreter import Interpreter  # TensorFlow deprecates tf.lite's

    interpreter = Interpreter(model_path=path)
    inp = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(inp["index"], images.shape)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    x = images
    if inp["dtype"] == np.int8:
        scale, zero = inp["quantization"]
        x = np.clip(np.round(images / scale + zero), -128, 127).astype(np.int8)
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    y = interpreter.get_tensor(out["index"])
    if out["dtype"] == np.int8:
        scale, zero = out["quantization"]
        y = (y.astype(np.float32) - zero) * scale
    return y


def measure(root, weights=None):
    import bit_keras
    from bit_keras.datasets import synthetic

    weights = weights or trained_weights(root)
    model = bit_keras.load("R14x1-tiny", weights=weights)
    images, labels = synthetic.generate(CLASSES_GROUP, "test", TEST_PER_CLASS, SIZE, 0)
    images = images.astype(np.float32) / 255.0  # uint8 pixels -> the models' [0, 1]
    reference = np.asarray(model.predict(images, batch_size=256, verbose=0))
    calibration, _ = synthetic.generate(CLASSES_GROUP, "train", TRAIN_PER_CLASS, SIZE, 0)
    picks = np.linspace(0, len(calibration) - 1, 100).round().astype(int)
    rows = {"keras float32": {"top1_agreement": 1.0,
                              "accuracy": float(np.mean(reference.argmax(1) == labels)),
                              "mean_abs_logit_diff": 0.0, "bytes": os.path.getsize(weights)}}
    for quantize in VARIANTS:
        name = quantize or "float32"
        path = os.path.join(root, f"classifier_{name}.tflite")
        start = time.perf_counter()
        bit_keras.export_tflite(model, path, kind="classifier", quantize=quantize,
                                overwrite=True,
                                representative_data=(
                                    list(calibration[picks].astype(np.float32) / 255.0)
                                    if quantize == "int8" else None))
        convert_s = time.perf_counter() - start
        logits = tflite_logits(path, images)
        rows[f"tflite {name}"] = {
            "top1_agreement": float(np.mean(logits.argmax(1) == reference.argmax(1))),
            "accuracy": float(np.mean(logits.argmax(1) == labels)),
            "mean_abs_logit_diff": float(np.mean(np.abs(logits - reference))),
            "bytes": os.path.getsize(path), "convert_s": convert_s}
    return {"weights": weights, "test_images": len(images), "rows": rows}


def main(argv):
    import argparse

    parser = argparse.ArgumentParser(prog="tflite_accuracy")
    parser.add_argument("--root", default="/tmp/bit_tflite")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    os.makedirs(args.root, exist_ok=True)
    result = measure(args.root, args.weights)
    print(f"{result['test_images']} test images, weights {result['weights']}")
    print(f"{'model':<20} {'top-1 agreement':>16} {'accuracy':>9} {'mean |dlogit|':>14} "
          f"{'size KiB':>9}")
    for name, r in result["rows"].items():
        print(f"{name:<20} {r['top1_agreement']:>16.2%} {r['accuracy']:>9.2%} "
              f"{r['mean_abs_logit_diff']:>14.4f} {r['bytes'] / 1024:>9.0f}")
    if args.out:
        report.write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
