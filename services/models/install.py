"""`lightbox models install NAME FILE`: put an operator's ONNX file where Triton serves
it, after checking it against its contract.

    repo/<front>_onnx/1/model.onnx       the file (copied; its external data beside it)
    repo/<front>_onnx/config.pbtxt       rendered for the target
    repo/<front>_onnx/installed.json     where it came from: path, sha256, size, when
    repo/segment_clipseg_onnx/tokenizer/ CLIPSeg's tokenizer files (--tokenizer DIR)

Nothing is downloaded. With --sha256 the file's checksum must match before anything
is written; a file that breaks its contract is refused with a message naming the
tensor, and the repository is left as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from services.common import models
from services.models.contracts import ONNX_FILE, Contract, resolve
from services.models.render import VERSION, render_config
from services.models.signature import ContractError, check_signature, read_signature

RECORD = "installed.json"
TOKENIZER_DIR = "tokenizer"
_TOKENIZER_FILES = ("vocab.json", "merges.txt")
_TOKENIZER_OPTIONAL = ("tokenizer_config.json", "special_tokens_map.json")


class InstallError(ValueError):
    """The file cannot be installed (checksum, contract, missing pieces)."""


@dataclass
class InstallReport:
    model: str
    front: str
    path: str
    sha256: str
    bytes: int
    target: str
    installed_at: str
    source: str
    inputs: list[str]
    outputs: list[str]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _external_files(path: Path) -> list[str]:
    """Relative paths of the external data files the ONNX graph refers to."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    found: set[str] = set()
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            for entry in tensor.external_data:
                if entry.key == "location":
                    found.add(entry.value)
    return sorted(found)


def _renamed(path: Path, rename: dict[str, str], out: Path) -> Path:
    """A copy of the ONNX file at `path` with graph inputs/outputs renamed."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    if _external_files(path):
        raise InstallError("--rename needs a single-file ONNX (this one has external data)")
    names = {v.name for v in (*model.graph.input, *model.graph.output)}
    unknown = sorted(set(rename) - names)
    if unknown:
        raise InstallError(f"--rename: the file has no input or output named {unknown}")
    for value in (*model.graph.input, *model.graph.output):
        if value.name in rename:
            value.name = rename[value.name]
    for node in model.graph.node:
        node.input[:] = [rename.get(n, n) for n in node.input]
        node.output[:] = [rename.get(n, n) for n in node.output]
    onnx.save(model, str(out))
    return out


def install(
    name: str,
    file: Path,
    repo: Path,
    *,
    sha256: str | None = None,
    target: str = "cpu",
    rename: dict[str, str] | None = None,
    tokenizer: Path | None = None,
    link: bool = False,
) -> InstallReport:
    """Check `file` against the contract of `name` (front or ONNX model name) and
    install it into `repo`; returns what was installed. Raises InstallError (bad
    checksum, missing tokenizer) or ContractError (the signature). With `link` the file
    is hard-linked when it can be (a cache outside the repository on the same disk)."""
    contract: Contract = resolve(name)
    file = Path(file)
    if not file.is_file():
        raise InstallError(f"{file} is not a file")
    digest = sha256_of(file)
    if sha256 is not None and digest != sha256.strip().lower():
        raise InstallError(
            f"{file}: sha256 is {digest}, expected {sha256.strip().lower()}; nothing installed"
        )
    if contract.front == models.SEGMENT_CLIPSEG:
        if tokenizer is None:
            raise InstallError(
                "segment_clipseg needs its CLIP tokenizer: --tokenizer DIR with vocab.json "
                "and merges.txt (the tokenizer folder of the CLIPSeg checkpoint)"
            )
        missing = [f for f in _TOKENIZER_FILES if not (tokenizer / f).exists()]
        if missing:
            raise InstallError(f"--tokenizer {tokenizer} lacks {missing}")
    model_dir = repo / contract.name
    with tempfile.TemporaryDirectory(dir=repo, prefix=f".{contract.name}-") as tmp:
        staged = Path(tmp)
        source = file
        if rename:
            source = _renamed(file, rename, staged / "renamed.onnx")
        signature = read_signature(source)
        check_signature(signature, contract)
        # Stage the whole model folder, then swap it in: a failure leaves the old one.
        new_dir = staged / contract.name
        version = new_dir / VERSION
        version.mkdir(parents=True)
        if link and source == file:
            try:
                os.link(source, version / ONNX_FILE)
            except OSError:
                shutil.copyfile(source, version / ONNX_FILE)
        else:
            shutil.copyfile(source, version / ONNX_FILE)
        for rel in _external_files(source):
            src = file.parent / rel
            if not src.exists():
                raise InstallError(f"{file} refers to external data {rel}, which is missing")
            (version / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, version / rel)
        if tokenizer is not None and contract.front == models.SEGMENT_CLIPSEG:
            (new_dir / TOKENIZER_DIR).mkdir()
            for f in (*_TOKENIZER_FILES, *_TOKENIZER_OPTIONAL):
                if (tokenizer / f).exists():
                    shutil.copyfile(tokenizer / f, new_dir / TOKENIZER_DIR / f)
        render_config(new_dir, contract, target)
        report = InstallReport(
            model=contract.name,
            front=contract.front,
            path=str(model_dir / VERSION / ONNX_FILE),
            sha256=digest,
            bytes=file.stat().st_size,
            target=target,
            installed_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            source=str(file.resolve()),
            inputs=[t.pretty() for t in signature.inputs],
            outputs=[t.pretty() for t in signature.outputs],
        )
        (new_dir / RECORD).write_text(json.dumps(asdict(report), indent=2) + "\n")
        old = staged / "old"
        if model_dir.exists():
            os.replace(model_dir, old)
        os.replace(new_dir, model_dir)
    return report


def read_record(model_dir: Path) -> dict[str, object] | None:
    path = model_dir / RECORD
    return json.loads(path.read_text()) if path.exists() else None


__all__ = ["ContractError", "InstallError", "InstallReport", "install", "read_record"]
