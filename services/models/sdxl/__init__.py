"""SDXL for Triton: export a diffusers checkpoint to ONNX components, render their
configs for the cpu or gpu target, build TensorRT plans, and tiny random-weight
checkpoints for tests. The generic `lightbox models` tool calls these:

    export_sdxl(diffusers_dir, out_repo, fp16=False) -> ExportReport
    render_sdxl_configs(repo, target)                  -> written config paths
    build_sdxl_plans(repo)                             -> PlanReport; NoGpuError
                                                          on a host without GPU/TensorRT
    make_tiny_sdxl(out_dir, inpaint=False)             -> a diffusers folder

The pipeline models that drive the components are model_repository/sdxl and
sdxl_inpaint; docs/sdxl.md is the operator's guide.
"""

from services.models.sdxl.configs import GpuProfile, render_sdxl_configs
from services.models.sdxl.export import ExportError, ExportReport, export_sdxl
from services.models.sdxl.tiny import make_tiny_sdxl
from services.models.sdxl.trt import NoGpuError, PlanReport, build_sdxl_plans

__all__ = [
    "ExportError",
    "ExportReport",
    "GpuProfile",
    "NoGpuError",
    "PlanReport",
    "build_sdxl_plans",
    "export_sdxl",
    "make_tiny_sdxl",
    "render_sdxl_configs",
]
