"""Triton python-backend front `matting_isnet`: the learned-matting front shared with
matting_birefnet (services/models/pybackend/matting_model.py), configured by this
model's config.pbtxt to call ISNet (`matting_isnet_onnx`)."""

from services.models.pybackend.matting_model import TritonPythonModel

__all__ = ["TritonPythonModel"]
