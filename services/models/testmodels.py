"""Tiny random-weight ONNX models with the exact production signatures, so CI serves,
batches and checks the real contracts without weights (`lightbox models
make-test-models`).

Each stand-in has its contract's tensor names, dtypes and shapes, a symbolic batch
axis, and enough structure to exercise its front model's pre/post-processing:

  matting_birefnet_onnx   pooled convs -> logits that follow local brightness
  matting_isnet_onnx      pooled convs -> a probability that follows local brightness
                          (any H, W that are multiples of 64, like ISNet)
  upscale_realesrgan_onnx the real RRDBNet at 8 features, 1 block (x4, any size)
  upscale_rrdn_onnx       idealo's RRDN x4 at toy sizes, written as a TensorFlow.js
                          layers model and converted by the provisioning converter (rrdn.py)
  inpaint_lama_onnx       a conv net over the masked image and the mask (any size)
  segment_clipseg_onnx    token embeddings (a tiny CLIP BPE vocabulary) modulating convs
  face_detector_onnx      YuNet's 12 outputs; a bright 32-px cell scores high, so a
                          test picture with a light square on a dark ground has a "face"
  face_codeformer_onnx    convs blended with the input by the fidelity weight

Weights come from a seeded generator: the same seed writes the same files.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from services.models.contracts import CONTRACTS, ONNX_FILE, Contract, resolve
from services.models.rrdbnet import RRDBConfig, RRDBNet

OPSET = 17
TOKENIZER_DIR = "tokenizer"
# Stamp of the generator: a folder made by an older version is rebuilt.
STAMP = "test-models.json"


class _Matting(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 1, 3, padding=1)

    def forward(self, input_image: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(input_image, 8)
        x = self.conv2(torch.relu(self.conv1(x)))
        return F.interpolate(x, scale_factor=8.0, mode="bilinear", align_corners=False)


class _ISNet(nn.Module):
    """Like _Matting, ending in a sigmoid: ISNet's `output` is a probability."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 1, 3, padding=1)

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002
        x = F.avg_pool2d(input, 8)
        x = self.conv2(torch.relu(self.conv1(x)))
        x = F.interpolate(x, scale_factor=8.0, mode="bilinear", align_corners=False)
        return torch.sigmoid(x)


class _Lama(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(4, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = torch.cat([image * (1 - mask), mask], dim=1)
        fill = torch.sigmoid(self.conv2(torch.relu(self.conv1(x))))
        return (image * (1 - mask) + fill * mask) * 255.0


class _ClipSeg(nn.Module):
    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, 8)
        self.film = nn.Linear(8, 8)
        self.conv1 = nn.Conv2d(3, 8, 4, stride=4)
        self.conv2 = nn.Conv2d(8, 1, 3, padding=1)

    def forward(
        self, input_ids: torch.Tensor, pixel_values: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        m = attention_mask.unsqueeze(-1).to(torch.float32)
        text = (self.embed(input_ids) * m).sum(1) / m.sum(1).clamp(min=1.0)
        gain = self.film(text)[:, :, None, None]
        x = self.conv2(torch.relu(self.conv1(pixel_values)) * gain)
        return F.interpolate(x, scale_factor=4.0, mode="bilinear", align_corners=False)[:, 0]


class _YuNet(nn.Module):
    """YuNet's outputs from fixed filters: per cell, the mean brightness decides cls and
    obj (only the stride-32 head can fire), boxes are 2 cells square around the cell
    and landmarks sit at a face's usual places."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("box", torch.tensor([0.0, 0.0, 0.6931, 0.6931]))
        kps = [-0.35, -0.2, 0.35, -0.2, 0.0, 0.1, -0.3, 0.4, 0.3, 0.4]
        self.register_buffer("kps", torch.tensor(kps))

    def forward(self, input: torch.Tensor) -> tuple[torch.Tensor, ...]:  # noqa: A002
        n = input.shape[0]
        gray = input.mean(dim=1, keepdim=True) / 255.0
        outs: dict[str, torch.Tensor] = {}
        for stride in (8, 16, 32):
            cells = F.avg_pool2d(gray, stride).flatten(1).unsqueeze(-1)  # N, cells, 1
            fire = torch.sigmoid((cells - 0.7) * 40.0) if stride == 32 else cells * 0.0
            outs[f"cls_{stride}"] = fire
            outs[f"obj_{stride}"] = fire
            outs[f"bbox_{stride}"] = self.box.expand(n, cells.shape[1], 4) + cells * 0.0
            outs[f"kps_{stride}"] = self.kps.expand(n, cells.shape[1], 10) + cells * 0.0
        return tuple(outs[f"{k}_{s}"] for k in ("cls", "obj", "bbox", "kps") for s in (8, 16, 32))


class _CodeFormer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, input: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:  # noqa: A002
        w = weight.to(torch.float32)[:, None, None, None]
        restored = torch.tanh(self.conv2(torch.relu(self.conv1(input))))
        return restored * (1 - w) + input * w


def _export(
    module: nn.Module, args: tuple[torch.Tensor, ...], contract: Contract, out: Path
) -> None:
    names_in = [s.name for s in contract.inputs]
    names_out = [s.name for s in contract.outputs]
    dynamic: dict[str, dict[int, str]] = {}
    for spec in (*contract.inputs, *contract.outputs):
        axes = {0: "N"}
        for axis, d in enumerate(spec.dims, start=1):
            if isinstance(d, str):
                axes[axis] = d
        dynamic[spec.name] = axes
    out.parent.mkdir(parents=True, exist_ok=True)
    # The TorchScript exporter is deprecated in favour of torch.export, which needs
    # onnxscript; the legacy one writes the same graphs for these convolutional nets.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module.eval(),
            args,
            str(out),
            dynamo=False,
            opset_version=OPSET,
            input_names=names_in,
            output_names=names_out,
            dynamic_axes=dynamic,
            do_constant_folding=True,
        )


def _build(name: str, out: Path, tokenizer_dir: Path) -> None:
    contract = CONTRACTS[name]
    front = contract.front
    if front == "matting_birefnet":
        _export(_Matting(), (torch.rand(1, 3, 1024, 1024),), contract, out)
    elif front == "matting_isnet":
        _export(_ISNet(), (torch.rand(1, 3, 64, 64) - 0.5,), contract, out)
    elif front == "upscale_realesrgan":
        net = RRDBNet(RRDBConfig(num_feat=8, num_block=1, num_grow_ch=4))
        _export(net, (torch.rand(1, 3, 32, 32),), contract, out)
    elif front == "upscale_rrdn":
        from services.models import rrdn

        layers, weights = rrdn.tiny_layers_model(4, seed=int(torch.initial_seed()))
        model, _ = rrdn.convert(layers, weights)
        onnx.save(model, str(out))
    elif front == "inpaint_lama":
        args = (torch.rand(1, 3, 64, 64), (torch.rand(1, 1, 64, 64) > 0.5).float())
        _export(_Lama(), args, contract, out)
    elif front == "segment_clipseg":
        vocab = write_tokenizer(tokenizer_dir)
        ids = torch.randint(0, vocab, (1, 77), dtype=torch.int64)
        args = (ids, torch.rand(1, 3, 352, 352), torch.ones(1, 77, dtype=torch.int64))
        _export(_ClipSeg(vocab), args, contract, out)
    elif front == "face_detector":
        _export(_YuNet(), (torch.rand(1, 3, 640, 640) * 255,), contract, out)
    elif front == "face_codeformer":
        args = (torch.rand(1, 3, 512, 512) * 2 - 1, torch.tensor([0.5], dtype=torch.float64))
        _export(_CodeFormer(), args, contract, out)
    else:
        raise KeyError(f"no stand-in for {name}")


def write_tokenizer(out_dir: Path) -> int:
    """A tiny CLIP-style BPE tokenizer (vocab.json, merges.txt, ...) in `out_dir`, the
    layout of a real CLIP tokenizer folder; returns the vocabulary size."""
    from services.models.sdxl.tiny import write_tokenizer as write_clip_tokenizer

    return write_clip_tokenizer(out_dir, pad_token="<|endoftext|>")


def _fingerprint() -> str:
    sources = [Path(__file__), *(Path(__file__).with_name(n) for n in ("contracts.py", "rrdn.py"))]
    digest = hashlib.sha256()
    for src in sources:
        digest.update(src.read_bytes())
    return digest.hexdigest()[:16]


def make_test_models(
    out_dir: Path, names: list[str] | None = None, seed: int = 0
) -> dict[str, Path]:
    """Write `<out_dir>/<onnx model>.onnx` (and `<out_dir>/tokenizer/` for CLIPSeg) for
    every contract or the named ones; returns {contract model name: file}. A folder
    already written by this version with this seed is reused."""
    out_dir.mkdir(parents=True, exist_ok=True)
    wanted = [resolve(n).name for n in names] if names else list(CONTRACTS)
    stamp_path = out_dir / STAMP
    stamp = {"fingerprint": _fingerprint(), "seed": seed}
    if stamp_path.exists() and json.loads(stamp_path.read_text()) != stamp:
        shutil.rmtree(out_dir)
        out_dir.mkdir(parents=True)
    files: dict[str, Path] = {}
    for k, name in enumerate(sorted(CONTRACTS)):
        if name not in wanted:
            continue
        path = out_dir / f"{name}.onnx"
        if not path.exists():
            torch.manual_seed(seed * 1000 + k)
            np.random.seed(seed * 1000 + k)
            _build(name, path.with_suffix(".tmp"), out_dir / TOKENIZER_DIR)
            path.with_suffix(".tmp").rename(path)
        files[name] = path
    stamp_path.write_text(json.dumps(stamp))
    return files


def tokenizer_dir(out_dir: Path) -> Path:
    return out_dir / TOKENIZER_DIR


__all__ = ["ONNX_FILE", "make_test_models", "tokenizer_dir", "write_tokenizer"]
