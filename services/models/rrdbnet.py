"""Real-ESRGAN's generator (RRDBNet, as in BasicSR), its published checkpoints, and
their export to the `upscale_realesrgan_onnx` contract.

The architecture is written here so exporting needs nothing but torch. Checkpoints
are read in the published key layout (conv_first, body.N.rdbM.convK, conv_body,
conv_up1, conv_up2, conv_hr, conv_last), bare or wrapped in "params_ema" / "params"
(RealESRGAN_x4plus.pth keeps its weights under "params_ema"). The hyper-parameters
(features, blocks, growth, scale) are read off the tensor shapes, so the x4plus, the
6-block anime and the x2plus variants all load.

Arrays: the network takes float32 NCHW RGB in [0, 1] and returns the same at scale x
the size (x2 and x1 variants fold the input with pixel-unshuffle first).
"""

from __future__ import annotations

import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

OPSET = 17


class CheckpointError(ValueError):
    """The checkpoint is not an RRDBNet in a layout this module knows."""


class ResidualDenseBlock(nn.Module):
    def __init__(self, num_feat: int, num_grow_ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    def __init__(self, num_feat: int, num_grow_ch: int) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


@dataclass(frozen=True)
class RRDBConfig:
    num_in_ch: int = 3
    num_out_ch: int = 3
    scale: int = 4
    num_feat: int = 64
    num_block: int = 23
    num_grow_ch: int = 32


class RRDBNet(nn.Module):
    def __init__(self, cfg: RRDBConfig) -> None:
        super().__init__()
        self.cfg = cfg
        fold = {4: 1, 2: 4, 1: 16}[cfg.scale]
        self.conv_first = nn.Conv2d(cfg.num_in_ch * fold, cfg.num_feat, 3, 1, 1)
        self.body = nn.Sequential(
            *[RRDB(cfg.num_feat, cfg.num_grow_ch) for _ in range(cfg.num_block)]
        )
        self.conv_body = nn.Conv2d(cfg.num_feat, cfg.num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(cfg.num_feat, cfg.num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(cfg.num_feat, cfg.num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(cfg.num_feat, cfg.num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(cfg.num_feat, cfg.num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.cfg.scale == 2:
            feat = F.pixel_unshuffle(x, 2)
        elif self.cfg.scale == 1:
            feat = F.pixel_unshuffle(x, 4)
        else:
            feat = x
        feat = self.conv_first(feat)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


def unwrap_state_dict(raw: Any) -> dict[str, torch.Tensor]:
    """The weights of a loaded checkpoint: under "params_ema" (preferred, as
    Real-ESRGAN's inference does), "params", "state_dict", or the dict itself; a
    DataParallel "module." prefix is dropped."""
    if not isinstance(raw, dict):
        raise CheckpointError(f"expected a dict of tensors, got {type(raw).__name__}")
    for key in ("params_ema", "params", "state_dict"):
        if key in raw and isinstance(raw[key], dict):
            raw = raw[key]
            break
    state = {k.removeprefix("module."): v for k, v in raw.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise CheckpointError("the checkpoint holds no tensors")
    return state


def infer_config(state: dict[str, torch.Tensor]) -> RRDBConfig:
    """RRDBNet hyper-parameters from the shapes of a published-layout state dict."""
    needed = ("conv_first.weight", "conv_body.weight", "conv_last.weight", "conv_up2.weight")
    missing = [k for k in needed if k not in state]
    if missing:
        hint = ""
        if any(k.startswith(("RRDB_trunk.", "model.")) for k in state):
            hint = " (this is the original ESRGAN layout; convert it to BasicSR's first)"
        raise CheckpointError(
            f"not an RRDBNet in the published layout: missing {missing}{hint}; "
            f"first keys: {sorted(state)[:6]}"
        )
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"body\.(\d+)\.rdb1\.", k))}
    if not blocks or blocks != set(range(len(blocks))):
        raise CheckpointError("no contiguous body.N.rdbM blocks in the checkpoint")
    num_feat, first_in = state["conv_first.weight"].shape[:2]
    out_ch = state["conv_last.weight"].shape[0]
    in_ch = out_ch
    fold = first_in // in_ch
    scale = {1: 4, 4: 2, 16: 1}.get(fold)
    if scale is None:
        raise CheckpointError(
            f"conv_first takes {first_in} channels: not 3, 12 or 48 (x4, x2, x1 with RGB)"
        )
    return RRDBConfig(
        num_in_ch=in_ch,
        num_out_ch=out_ch,
        scale=scale,
        num_feat=int(num_feat),
        num_block=len(blocks),
        num_grow_ch=int(state["body.0.rdb1.conv1.weight"].shape[0]),
    )


def load_checkpoint(path: Path) -> RRDBNet:
    """RRDBNet with the weights of the checkpoint at `path` (.pth/.pt or .safetensors),
    in eval mode. Raises CheckpointError on keys that do not fit."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        raw: Any = load_file(str(path))
    else:
        raw = torch.load(str(path), map_location="cpu", weights_only=True)
    state = unwrap_state_dict(raw)
    net = RRDBNet(infer_config(state))
    result = net.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"checkpoint does not fit RRDBNet: missing {result.missing_keys[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}"
        )
    return net.eval()


@dataclass
class ExportReport:
    checkpoint: str
    onnx: str
    config: RRDBConfig
    parameters: int
    max_abs_diff: float
    tolerance: float
    seconds: float

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.tolerance

    def table(self) -> str:
        c = self.config
        return (
            f"RRDBNet x{c.scale}: {c.num_block} blocks, {c.num_feat} features, growth "
            f"{c.num_grow_ch}, {self.parameters / 1e6:.2f} M parameters\n"
            f"ONNX {self.onnx}\n"
            f"validation vs torch on random input: max abs diff {self.max_abs_diff:.2e} "
            f"(tolerance {self.tolerance:.0e}) -> {'ok' if self.ok else 'FAILED'}\n"
            f"{self.seconds:.1f} s"
        )


def export_onnx(net: RRDBNet, out: Path) -> None:
    """Write `net` as ONNX (`input` -> `output`, batch and size symbolic)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.rand(1, net.cfg.num_in_ch, 64, 64)
    # The TorchScript exporter is deprecated in favour of torch.export, which needs
    # onnxscript; the legacy one writes the same graphs for these convolutional nets.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            net,
            (dummy,),
            str(out),
            dynamo=False,
            opset_version=OPSET,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={
                "input": {0: "N", 2: "H", 3: "W"},
                "output": {0: "N", 2: "outH", 3: "outW"},
            },
            do_constant_folding=True,
        )


def validate(
    net: RRDBNet, onnx_path: Path, size: tuple[int, int] = (40, 52), seed: int = 0
) -> float:
    """Max abs difference between torch and onnxruntime on one random input."""
    import onnxruntime as ort

    h, w = size
    x = np.random.default_rng(seed).random((1, net.cfg.num_in_ch, h, w), dtype=np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(["output"], {"input": x})[0]
    if got.shape != want.shape:
        return float("inf")
    return float(np.abs(got - want).max())


def export_checkpoint(checkpoint: Path, out: Path, tolerance: float = 1e-4) -> ExportReport:
    """Export the checkpoint at `checkpoint` to the ONNX file `out` and validate it."""
    started = time.monotonic()
    net = load_checkpoint(checkpoint)
    export_onnx(net, out)
    diff = validate(net, out)
    return ExportReport(
        checkpoint=str(checkpoint),
        onnx=str(out),
        config=net.cfg,
        parameters=sum(p.numel() for p in net.parameters()),
        max_abs_diff=diff,
        tolerance=tolerance,
        seconds=time.monotonic() - started,
    )
