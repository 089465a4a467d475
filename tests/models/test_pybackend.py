"""services/models/pybackend as the GPU image gets it: the files Dockerfile.triton
copies are enough to import the shared helpers, and importing them pulls in nothing
heavy. (The embedded stack imports them from the venv; every served front in
tests/model_repository does.)"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile.triton"
SHARED = ("triton_bls", "clip_tokenizer")
# Nothing the stub needs for these helpers; each would slow every model's load.
HEAVY = ("grpc", "pydantic", "sqlalchemy", "onnxruntime", "tritonclient", "cv2", "torch")

# Run with -I -S: no current directory, no .pth files (so not the editable install);
# only the image's copy and numpy. The stub provides triton_python_backend_utils; a
# bare module stands in for it, which is enough to import.
PROBE = """
import json, sys, types
sys.path[:0] = [sys.argv[1], sys.argv[2]]
sys.modules["triton_python_backend_utils"] = types.ModuleType("triton_python_backend_utils")
from services.models.pybackend import clip_tokenizer, triton_bls
print(json.dumps({"files": [clip_tokenizer.__file__, triton_bls.__file__],
                  "modules": sorted(sys.modules)}))
"""


def image_copy(root: Path) -> Path:
    """What Dockerfile.triton COPYs from services/, laid out under `root` as in the
    image; returns the directory its .pth file names."""
    text = DOCKERFILE.read_text()
    copies = re.findall(r"^COPY\s+(services/\S*)\s+(/\S+)$", text, re.MULTILINE)
    assert copies, "Dockerfile.triton copies nothing from services/"
    for source, dest in copies:
        target = root / dest.lstrip("/")
        if source.endswith("/"):
            shutil.copytree(REPO / source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(REPO / source, target)
    pth = re.search(r"echo\s+(/\S+)\s+>.*\.pth", text)
    assert pth, "Dockerfile.triton writes no .pth file"
    return root / pth.group(1).lstrip("/")


def test_the_image_copy_alone_imports_the_shared_helpers(tmp_path: Path) -> None:
    path_entry = image_copy(tmp_path / "image")
    numpy_dir = str(Path(np.__file__).resolve().parents[1])
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", PROBE, str(path_entry), numpy_dir],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    found = json.loads(out.stdout)
    for name, file in zip(SHARED[::-1], found["files"], strict=True):
        assert Path(file) == path_entry / "services" / "models" / "pybackend" / f"{name}.py"
    ours = {m for m in found["modules"] if m == "services" or m.startswith("services.")}
    assert ours == {"services", "services.models", "services.models.pybackend"} | {
        f"services.models.pybackend.{name}" for name in SHARED
    }
    heavy = {m.split(".")[0] for m in found["modules"]} & set(HEAVY)
    assert not heavy, f"importing the shared helpers loads {heavy}"
