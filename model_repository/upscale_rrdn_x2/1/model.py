"""Triton python-backend front `upscale_rrdn_x2`: the tiled super-resolution front
shared with upscale_realesrgan (services/models/pybackend/upscale_model.py), configured
by this model's config.pbtxt to call the provisioned ESRGAN-family RRDN x2 model
(`upscale_rrdn_x2_onnx`)."""

from services.models.pybackend.upscale_model import TritonPythonModel

__all__ = ["TritonPythonModel"]
