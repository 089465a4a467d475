"""Triton python-backend model `sdxl_inpaint`: the same BLS pipeline model as `sdxl`
(../../sdxl/1/model.py), run in inpainting mode by this model's config.pbtxt. The
code lives once, in sdxl/1/; this file only makes it importable from here.
"""

from __future__ import annotations

import sys
from pathlib import Path

# sdxl/1 holds the pipeline modules; both models ship in the same repository.
_PIPELINE_DIR = str(Path(__file__).resolve().parents[2] / "sdxl" / "1")
if _PIPELINE_DIR not in sys.path:
    sys.path.insert(0, _PIPELINE_DIR)

from model import TritonPythonModel  # noqa: E402, F401
