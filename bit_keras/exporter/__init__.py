"""Exporting BiT models: SavedModels (TF Hub, TF Serving, Keras 3), TFLite, ONNX, Hub archives.

Public entry points (also at the top level of ``bit_keras``): ``export``,
``export_tflite``, ``export_onnx``, ``publish`` and ``SavedModelLayer``.
"""

from bit_keras.exporter.hub_archive import publish
from bit_keras.exporter.onnx import export_onnx
from bit_keras.exporter.saved_model import export
from bit_keras.exporter.saved_model_layer import SavedModelLayer
from bit_keras.exporter.tflite import export_tflite

__all__ = ["export", "export_onnx", "export_tflite", "publish", "SavedModelLayer"]
