"""services.models.musicgen: the tiny checkpoint, the export of its three components
(each checked against transformers by onnxruntime at other shapes than traced), the
checkpoint folder, the component contracts, configs for both targets, the CLI; and the
pipeline code (model_repository/musicgen/1) over onnxruntime in process against
transformers' generate()."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from services.models import cli
from services.models.musicgen import export as export_module
from services.models.musicgen.configs import exported_pipelines, render_musicgen_configs
from services.models.musicgen.export import COMPONENTS, ContractError, check_contract
from services.models.musicgen.reference import (
    PARITY_PROMPT,
    Job,
    TransformersReference,
    ort_pipeline,
    pipeline_module,
)
from tests.models.musicgen_fixtures import musicgen_checkpoint, musicgen_repo  # noqa: F401


def _config(path: Path) -> Any:
    """config.pbtxt parsed by Triton's own ModelConfig schema (unknown fields fail)."""
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def test_tiny_checkpoint_has_the_real_structure(musicgen_checkpoint: Path) -> None:  # noqa: F811
    config = json.loads((musicgen_checkpoint / "config.json").read_text())
    decoder, codec = config["decoder"], config["audio_encoder"]
    assert config["model_type"] == "musicgen"
    assert config["text_encoder"]["model_type"] == "t5"
    assert decoder["num_codebooks"] == 4 and decoder["audio_channels"] == 1
    # The start/pad token sits just past the codebook, as 2048 does in musicgen-small.
    assert decoder["pad_token_id"] == decoder["bos_token_id"] == decoder["vocab_size"]
    assert codec["sampling_rate"] == 32_000 and codec["upsampling_ratios"] == [8, 5, 4, 4]
    assert config["text_encoder"]["d_model"] != decoder["hidden_size"]  # enc_to_dec_proj
    generation = json.loads((musicgen_checkpoint / "generation_config.json").read_text())
    assert generation["guidance_scale"] == 3.0 and generation["top_k"] == 250
    assert generation["do_sample"] is True


def test_export_validates_every_component(musicgen_repo: tuple[Path, Any]) -> None:  # noqa: F811
    _, report = musicgen_repo
    assert report.ok and [c.component for c in report.components] == list(COMPONENTS)
    for c in report.components:
        # Float32 ONNX vs transformers, at shapes other than the traced ones; for the
        # decoder, three steps through the cache against the uncached forward.
        assert c.max_abs_diff < 1e-4, (c.component, c.max_abs_diff)
        assert c.reference_scale > 0.05 and c.passed


def test_export_layout(musicgen_repo: tuple[Path, Any]) -> None:  # noqa: F811
    repo, _ = musicgen_repo
    assert exported_pipelines(repo) == ["musicgen", "musicgen_broken"]
    checkpoint = repo / "musicgen" / "checkpoint"
    meta = json.loads((checkpoint / "pipeline.json").read_text())
    assert meta["frame_rate"] == 50 and meta["hop_length"] == 640
    assert meta["sampling_rate"] == 32_000 and meta["num_codebooks"] == 4
    assert meta["pad_token_id"] == meta["decoder_start_token_id"] == meta["codebook_size"]
    assert meta["generation"] == {"do_sample": True, "guidance_scale": 3.0, "top_k": 250}
    assert meta["components"] == {c: f"musicgen_{c}" for c in COMPONENTS}
    for part in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        assert (checkpoint / part).is_file()
    assert json.loads((checkpoint / "export_report.json").read_text())["ok"] is True
    for component in COMPONENTS:
        model = repo / f"musicgen_{component}"
        config = _config(model / "config.pbtxt")
        assert config.backend == "python" and (model / "1" / "model.py").is_file()
    check_contract(repo, "musicgen")


def test_gpu_configs(musicgen_repo: tuple[Path, Any], tmp_path: Path) -> None:  # noqa: F811
    repo, _ = musicgen_repo
    copy = tmp_path / "repo"
    for model in ("musicgen", *(f"musicgen_{c}" for c in COMPONENTS)):
        shutil.copytree(repo / model, copy / model)
    written = render_musicgen_configs(copy, "gpu")
    assert len(written) == 3
    for path in written:
        config = _config(path)
        assert config.platform == "onnxruntime_onnx" and config.max_batch_size == 0
        assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
        assert not (path.parent / "1" / "model.py").exists()
    decoder = _config(copy / "musicgen_decoder" / "config.pbtxt")
    dims = {t.name: list(t.dims) for t in decoder.input}
    assert dims["past_key_values"] == [2, 2, -1, 4, -1, 8]
    assert dims["input_ids"] == [-1, 4, -1]
    render_musicgen_configs(copy, "cpu")
    assert (copy / "musicgen_decoder" / "1" / "model.py").is_file()


def test_contract_refuses_a_swapped_component(
    musicgen_repo: tuple[Path, Any],  # noqa: F811
    tmp_path: Path,
) -> None:
    repo, _ = musicgen_repo
    copy = tmp_path / "repo"
    for model in ("musicgen", *(f"musicgen_{c}" for c in COMPONENTS)):
        shutil.copytree(repo / model, copy / model)
    shutil.copyfile(
        copy / "musicgen_audio_decoder" / "1" / "model.onnx",
        copy / "musicgen_decoder" / "1" / "model.onnx",
    )
    with pytest.raises(ContractError, match="decoder: tensors"):
        check_contract(copy, "musicgen")


def test_cli_export(musicgen_checkpoint: Path, tmp_path: Path, capsys: Any) -> None:  # noqa: F811
    repo = tmp_path / "repo"
    assert cli.main(["export", "musicgen", str(musicgen_checkpoint), "--repo", str(repo)]) == 0
    assert "exported musicgen into" in capsys.readouterr().out
    check_contract(repo, "musicgen")
    # Not a MusicGen folder: refused before anything is written.
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"model_type": "t5"}')
    assert cli.main(["export", "musicgen", str(tmp_path / "other"), "--repo", str(repo)]) == 2
    assert "'t5' model" in capsys.readouterr().err


def test_write_tiny_makes_a_servable_repository(tmp_path: Path) -> None:
    from services.models.musicgen.tiny import write_t5_tokenizer, write_tiny

    report = write_tiny(tmp_path / "repo", name="musicgen")
    assert report.ok
    repo = tmp_path / "repo"
    assert _config(repo / "musicgen" / "config.pbtxt").name == "musicgen"
    assert (repo / "musicgen" / "1" / "musicgen_pipeline.py").is_file()
    assert not list((repo / "musicgen").rglob("__pycache__"))
    check_contract(repo, "musicgen")
    # Built, not trained: two builds of the tokenizer are byte for byte the same.
    write_t5_tokenizer(tmp_path / "again")
    assert (tmp_path / "again" / "tokenizer.json").read_bytes() == (
        repo / "musicgen" / "checkpoint" / "tokenizer.json"
    ).read_bytes()


def test_stereo_checkpoints_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    class Config:
        class decoder:  # noqa: N801
            audio_channels = 2

    class Model:
        config = Config

    with pytest.raises(export_module.ExportError, match="stereo"):
        export_module._check_architecture(Model)


# The pipeline code in process, over onnxruntime: the served loop minus Triton.

_REFERENCE: dict[str, TransformersReference] = {}


def _reference(checkpoint: Path) -> TransformersReference:
    if "ref" not in _REFERENCE:
        _REFERENCE["ref"] = TransformersReference(checkpoint)
    return _REFERENCE["ref"]


@pytest.mark.parametrize("guidance", [3.0, 1.0])
def test_pipeline_matches_transformers_greedy(
    guidance: float,
    musicgen_checkpoint: Path,  # noqa: F811
    musicgen_repo: tuple[Path, Any],  # noqa: F811
) -> None:
    repo, _ = musicgen_repo
    run, components = ort_pipeline(repo)
    job = Job(PARITY_PROMPT, 0.6, guidance)
    audio, codes = run(job)
    want_audio, want_codes = _reference(musicgen_checkpoint)(job)
    assert codes.shape == (4, 30) and audio.shape == (1, 30 * 640)
    np.testing.assert_array_equal(codes, want_codes)
    assert float(np.abs(audio - want_audio).max()) <= 1e-5
    # One text encoding, one decoder step per position after the start, one decode.
    assert components.calls == {"text_encoder": 1, "decoder": 33, "audio_decoder": 1}


def test_tokenizer_matches_transformers(musicgen_checkpoint: Path) -> None:  # noqa: F811
    from tokenizers import Tokenizer

    ours = Tokenizer.from_file(str(musicgen_checkpoint / "tokenizer.json"))
    theirs = _reference(musicgen_checkpoint).tokenizer
    for prompt in (PARITY_PROMPT, "  80s pop  track, with synth!", "jazz trio ünïcode"):
        assert ours.encode(prompt).ids == theirs(prompt)["input_ids"]


def test_delay_pattern_matches_transformers(musicgen_checkpoint: Path) -> None:  # noqa: F811
    import torch

    mp = pipeline_module()
    decoder = _reference(musicgen_checkpoint).model.decoder
    start = torch.full((4, 1), 64, dtype=torch.long)
    _, want = decoder.build_delay_pattern_mask(start, pad_token_id=64, max_length=12)
    np.testing.assert_array_equal(mp.delay_pattern(4, 12, 64), want.numpy())


def test_sampling_draws_what_torch_multinomial_draws() -> None:
    import torch

    mp = pipeline_module()
    torch.manual_seed(2**40 + 77)  # torch seeds MT19937 with the low 32 bits
    generator = mp.TorchCpuGenerator(2**40 + 77)
    rs = np.random.default_rng(0)
    for top_k in (0, 1, 5, 250):
        for _ in range(20):
            logits = torch.tensor(rs.normal(size=(4, 64)) * 3, dtype=torch.float32)
            scores = logits
            if 0 < top_k < 64:
                kth = torch.topk(logits, top_k)[0][..., -1, None]
                scores = logits.masked_fill(logits < kth, -float("inf"))
            want = torch.multinomial(torch.softmax(scores, -1), 1).squeeze(1).numpy()
            np.testing.assert_array_equal(mp.sample(logits.numpy(), top_k, generator), want)


def test_top_k_filter() -> None:
    mp = pipeline_module()
    scores = np.tile(np.arange(10, dtype=np.float32), (2, 1))
    kept = mp.top_k_filter(scores, 3)
    assert np.isfinite(kept).sum(axis=-1).tolist() == [3, 3] and kept[0, 9] == 9
    assert mp.top_k_filter(scores, 0) is scores and mp.top_k_filter(scores, 10) is scores


def test_pipeline_matches_transformers_sampling(
    musicgen_checkpoint: Path,  # noqa: F811
    musicgen_repo: tuple[Path, Any],  # noqa: F811
) -> None:
    repo, _ = musicgen_repo
    run, _ = ort_pipeline(repo)
    job = Job(PARITY_PROMPT, 0.6, 3.0, seed=1234, do_sample=True, top_k=20)
    audio, codes = run(job)
    want_audio, want_codes = _reference(musicgen_checkpoint)(job)
    np.testing.assert_array_equal(codes, want_codes)
    assert float(np.abs(audio - want_audio).max()) <= 1e-5


def test_pipeline_model_imports_what_the_gpu_image_has() -> None:
    """The pipeline model runs in NVIDIA's Triton image, which has numpy, the
    standard library, the shared helpers and what Dockerfile.triton installs."""
    import ast
    import sys

    from services.models.musicgen.reference import PIPELINE_CODE

    dockerfile = (PIPELINE_CODE.parents[2] / "deploy" / "docker" / "Dockerfile.triton").read_text()
    allowed = {"numpy", "tokenizers", "triton_python_backend_utils"}
    allowed |= {"musicgen_pipeline", "torch_sampling"}
    allowed |= {"services"} | set(sys.stdlib_module_names)
    for file in ("model.py", "musicgen_pipeline.py", "torch_sampling.py"):
        tree = ast.parse((PIPELINE_CODE / file).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed, (file, name)
                if name.startswith("services"):
                    assert name.startswith("services.models.pybackend."), (file, name)
    assert '"tokenizers' in dockerfile
