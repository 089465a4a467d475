"""CatVTON virtual try-on for Triton: export an SD-1.5 inpainting UNet with CatVTON's
attention weights and the VAE to ONNX components, render their configs for the cpu or
gpu target, the torch reference the served pipeline is held to, and tiny
random-weight checkpoints for tests:

    export_catvton(folder, out_repo, version="mix") -> ExportReport
    render_catvton_configs(repo, target)             -> written config paths
    make_tiny_catvton(out_dir)                       -> a checkpoint folder
    write_tiny(repo)                                 -> a tiny export served from repo

The pipeline model that drives the components is model_repository/catvton;
docs/catvton.md is the operator's guide.
"""

from services.models.catvton.configs import render_catvton_configs
from services.models.catvton.export import ExportError, ExportReport, export_catvton
from services.models.catvton.tiny import make_tiny_catvton, write_tiny

__all__ = [
    "ExportError",
    "ExportReport",
    "export_catvton",
    "make_tiny_catvton",
    "render_catvton_configs",
    "write_tiny",
]
