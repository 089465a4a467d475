"""MusicGen (text to music) for Triton: export a transformers checkpoint
(facebook/musicgen-small) to ONNX components, render their configs for the cpu or gpu
target, and tiny random-weight checkpoints for tests.

    export_musicgen(checkpoint_dir, out_repo)  -> ExportReport (ContractError when a
                                                  component's signature is not the
                                                  pipeline's)
    check_contract(repo, name)                 -> None or ContractError
    render_musicgen_configs(repo, target)      -> written config paths
    make_tiny_musicgen(out_dir)                -> a transformers folder
    write_tiny(repo)                           -> the tiny one exported into `repo`

model_repository/musicgen is the pipeline model that drives the components;
docs/musicgen.md is the operator's guide.
"""

from services.models.musicgen.configs import render_musicgen_configs
from services.models.musicgen.export import (
    ContractError,
    ExportError,
    ExportReport,
    check_contract,
    export_musicgen,
)
from services.models.musicgen.tiny import make_tiny_musicgen, write_tiny

__all__ = [
    "ContractError",
    "check_contract",
    "ExportError",
    "ExportReport",
    "export_musicgen",
    "make_tiny_musicgen",
    "render_musicgen_configs",
    "write_tiny",
]
