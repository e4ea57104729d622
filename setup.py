"""bit_keras: Big Transfer (BiT) for TensorFlow 2 / Keras 3."""

from setuptools import find_packages, setup

setup(
    name="bit_keras",
    version="0.1.0",
    description="Big Transfer (BiT) model zoo for TensorFlow 2 / Keras 3: build, load, "
                "fine-tune, pre-train and export BiT ResNet-v2 models.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["bit_keras", "bit_keras.*"]),
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.16",  # 2.16+ ships Keras 3 as tf.keras
        "keras>=3.3",
        "numpy",
        "tensorflow-datasets>=4.9",
        "absl-py",
        "h5py",  # official bit_tf2 .h5 checkpoints
        "safetensors",  # timm-format checkpoints without pickles
        "pillow",  # decoding BMP/GIF/odd images in folders with clear errors
    ],
    extras_require={
        # tf-keras and tensorflow-hub only where Hub interoperability is offered and tested.
        "hub": ["tf-keras", "tensorflow-hub"],
        "plot": ["matplotlib"],
        # Portable artefacts for other runtimes (docs/export.md): tf2onnx is the converter
        # Keras' own Model.export(format="onnx") uses on TensorFlow; LiteRT is the maintained
        # TFLite interpreter (tf.lite.Interpreter is deprecated in TensorFlow 2.21).
        "onnx": ["tf2onnx>=1.16", "onnx", "onnxruntime"],
        "openvino": ["openvino>=2024.0"],
        "litert": ["ai-edge-litert"],
        # The model on Keras' other backends (docs/backends.md). PyPI's Linux torch wheel is
        # the CUDA build; it runs on CPUs too.
        "jax": ["jax"],
        "torch": ["torch"],
        # BiT's keras-hub classes and presets (docs/keras_hub.md); imported only on use.
        "keras_hub": ["keras-hub"],
        # pytest-xdist: the suite runs in two worker processes (pytest.ini).
        # ruff: the project's linter, run by tests/test_lint.py.
        "test": ["pytest>=7", "pytest-xdist>=3", "tf-keras", "tensorflow-hub", "matplotlib", "psutil",
                 "ruff", "tf2onnx>=1.16", "onnx", "onnxruntime", "openvino>=2024.0",
                 "ai-edge-litert", "jax", "torch", "keras-hub",
                 # torch needs setuptools >= 77.0.3, and tensorflow-hub imports
                 # pkg_resources, which setuptools 81 removed.
                 "setuptools>=77.0.3,<81"],
    },
    entry_points={"console_scripts": ["bit-keras = bit_keras.cli:main"]},
    include_package_data=True,
    package_data={"bit_keras.classes": ["*.tsv", "*.tsv.gz"],
                  "bit_keras.layers": ["kernels/*.cc", "kernels/*.h"]},
    license="Apache-2.0",
)
