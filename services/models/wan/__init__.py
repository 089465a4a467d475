"""WAN 2.1 text to video for Triton: export a diffusers checkpoint (UMT5 text encoder
and transformer to ONNX, the causal 3D VAE decoder for torch under the python
backend), render the component configs for the cpu or gpu target, and tiny
random-weight checkpoints for tests. The generic `lightbox models` tool calls these:

    export_wan(diffusers_dir, out_repo)  -> ExportReport
    render_wan_configs(repo, target)     -> written config paths
    make_tiny_wan(out_dir)               -> a diffusers folder
    write_tiny(repo)                     -> a tiny pipeline exported into a repository

The pipeline model that drives the components is model_repository/wan_t2v;
docs/wan.md is the operator's guide.
"""

from services.models.wan.configs import render_wan_configs
from services.models.wan.export import ExportError, ExportReport, export_wan
from services.models.wan.tiny import make_tiny_wan, write_tiny

__all__ = [
    "ExportError",
    "ExportReport",
    "export_wan",
    "make_tiny_wan",
    "render_wan_configs",
    "write_tiny",
]
