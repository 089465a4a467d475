"""Triton python-backend front `matting_birefnet`: the learned-matting front shared with
matting_isnet (services/models/pybackend/matting_model.py), configured by this model's
config.pbtxt to call BiRefNet (`matting_birefnet_onnx`)."""

from services.models.pybackend.matting_model import TritonPythonModel

__all__ = ["TritonPythonModel"]
