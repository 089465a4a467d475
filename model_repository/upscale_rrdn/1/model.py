"""Triton python-backend front `upscale_rrdn`: the tiled super-resolution front shared
with upscale_realesrgan (services/models/pybackend/upscale_model.py), configured by this
model's config.pbtxt to call the provisioned ESRGAN-family RRDN x4 model
(`upscale_rrdn_onnx`)."""

from services.models.pybackend.upscale_model import TritonPythonModel

__all__ = ["TritonPythonModel"]
