"""Real-ESRGAN's RRDBNet: the published checkpoint layouts load, and the export to ONNX
matches torch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from services.models import cli
from services.models.rrdbnet import (
    CheckpointError,
    RRDBConfig,
    RRDBNet,
    export_checkpoint,
    infer_config,
    load_checkpoint,
    unwrap_state_dict,
)
from services.models.signature import read_signature

SMALL = RRDBConfig(num_feat=8, num_block=2, num_grow_ch=4)


def test_the_default_net_has_realesrgan_x4plus_keys_and_size() -> None:
    net = RRDBNet(RRDBConfig())
    keys = set(net.state_dict())
    for key in (
        "conv_first.weight",
        "body.0.rdb1.conv1.weight",
        "body.22.rdb3.conv5.bias",
        "conv_body.weight",
        "conv_up1.weight",
        "conv_up2.weight",
        "conv_hr.weight",
        "conv_last.bias",
    ):
        assert key in keys
    assert "body.23.rdb1.conv1.weight" not in keys
    # RealESRGAN_x4plus.pth holds 16,697,987 parameters.
    assert sum(p.numel() for p in net.parameters()) == 16_697_987


@pytest.mark.parametrize("wrap", ["params_ema", "params", None, "module."])
def test_checkpoint_wrappings_load(tmp_path: Path, wrap: str | None) -> None:
    net = RRDBNet(SMALL)
    state = net.state_dict()
    if wrap == "module.":
        raw: object = {f"module.{k}": v for k, v in state.items()}
    elif wrap is None:
        raw = state
    else:
        raw = {wrap: state, "other": {"ignored": torch.zeros(1)}}
    path = tmp_path / "net.pth"
    torch.save(raw, path)
    loaded = load_checkpoint(path)
    assert loaded.cfg == SMALL
    x = torch.rand(1, 3, 12, 10)
    with torch.no_grad():
        assert torch.equal(loaded(x), net.eval()(x))


def test_params_ema_wins_over_params() -> None:
    ema, plain = RRDBNet(SMALL).state_dict(), RRDBNet(SMALL).state_dict()
    state = unwrap_state_dict({"params": plain, "params_ema": ema})
    assert torch.equal(state["conv_first.weight"], ema["conv_first.weight"])


def test_hyper_parameters_come_from_the_shapes() -> None:
    x2 = RRDBNet(RRDBConfig(scale=2, num_feat=8, num_block=6, num_grow_ch=4))
    cfg = infer_config(x2.state_dict())
    assert (cfg.scale, cfg.num_block, cfg.num_feat, cfg.num_grow_ch) == (2, 6, 8, 4)
    with torch.no_grad():
        assert x2(torch.rand(1, 3, 8, 8)).shape == (1, 3, 16, 16)


def test_other_layouts_are_refused_with_a_hint() -> None:
    with pytest.raises(CheckpointError, match="original ESRGAN layout"):
        infer_config({"RRDB_trunk.0.RDB1.conv1.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="no tensors"):
        unwrap_state_dict({"params_ema": {"step": 3}})


def test_export_matches_torch_and_has_the_contract_signature(tmp_path: Path) -> None:
    checkpoint = tmp_path / "x4.pth"
    torch.save({"params_ema": RRDBNet(SMALL).state_dict()}, checkpoint)
    report = export_checkpoint(checkpoint, tmp_path / "out" / "model.onnx")
    assert report.ok and report.max_abs_diff <= 1e-5
    signature = read_signature(Path(report.onnx))
    assert [t.pretty() for t in signature.inputs] == ["input float32 [N, 3, H, W]"]
    assert "max abs diff" in report.table()


def test_export_command_installs_the_validated_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = tmp_path / "x4.pth"
    torch.save({"params_ema": RRDBNet(SMALL).state_dict()}, checkpoint)
    repo = tmp_path / "repo"
    repo.mkdir()
    assert cli.main(["export", "upscale_realesrgan", str(checkpoint), "--repo", str(repo)]) == 0
    out = capsys.readouterr().out
    assert "validation vs torch on random input: max abs diff" in out
    assert (repo / "upscale_realesrgan_onnx" / "1" / "model.onnx").exists()
    # Architectures the project does not own are not exported here.
    assert cli.main(["export", "inpaint_lama", str(checkpoint), "--repo", str(repo)]) == 2
    assert "does not own this architecture" in capsys.readouterr().err
