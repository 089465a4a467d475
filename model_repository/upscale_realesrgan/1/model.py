"""Triton python-backend front `upscale_realesrgan`: the tiled super-resolution front
shared with the RRDN models (services/models/pybackend/upscale_model.py), configured by
this model's config.pbtxt to call Real-ESRGAN (`upscale_realesrgan_onnx`)."""

from services.models.pybackend.upscale_model import TritonPythonModel

__all__ = ["TritonPythonModel"]
