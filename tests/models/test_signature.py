"""ONNX signatures against the contracts: what passes, and that every refusal names the
tensor at fault."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.models.contracts import CONTRACTS, resolve
from services.models.signature import ContractError, check_signature, read_signature
from tests.model_repository.triton_fixtures import test_models  # noqa: F401
from tests.models.onnx_helpers import identity_model

BIREFNET = CONTRACTS["matting_birefnet_onnx"]


def test_every_stand_in_meets_its_contract(test_models: dict[str, Path]) -> None:  # noqa: F811
    assert set(test_models) == set(CONTRACTS)
    for name, path in test_models.items():
        signature = read_signature(path)
        check_signature(signature, CONTRACTS[name])
        assert not signature.batch_fixed, name


def test_resolve_takes_the_front_or_the_onnx_name() -> None:
    assert resolve("upscale_realesrgan") is resolve("upscale_realesrgan_onnx")
    with pytest.raises(KeyError, match="no contract named 'nope'; known: face_codeformer"):
        resolve("nope")


def birefnet(tmp_path: Path, **changes: object) -> Path:
    inp = changes.get("inp", ("input_image", "float32", ["N", 3, 1024, 1024]))
    out = changes.get("out", ("output_image", "float32", ["N", 1, 1024, 1024]))
    extra = changes.get("extra", [])
    return identity_model(tmp_path / "m.onnx", [inp, *extra], [out])  # type: ignore[list-item]


def test_a_matching_file_passes_and_a_fixed_batch_of_one_is_noted(tmp_path: Path) -> None:
    check_signature(read_signature(birefnet(tmp_path)), BIREFNET)
    fixed = birefnet(
        tmp_path,
        inp=("input_image", "float32", [1, 3, 1024, 1024]),
        out=("output_image", "float32", [1, 1, 1024, 1024]),
    )
    signature = read_signature(fixed)
    check_signature(signature, BIREFNET)
    assert signature.batch_fixed


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {"inp": ("image", "float32", ["N", 3, 1024, 1024])},
            "matting_birefnet_onnx: input 'input_image' is missing .* the file's inputs are: "
            r"image float32 \[N, 3, 1024, 1024\].*--rename image=input_image|--rename FILE_NAME",
        ),
        (
            {"inp": ("input_image", "uint8", ["N", 3, 1024, 1024])},
            "input 'input_image' is uint8; the contract says input_image float32",
        ),
        (
            {"inp": ("input_image", "float32", ["N", 3, 512, 512])},
            "input 'input_image' has size 512 on axis 2",
        ),
        (
            {"inp": ("input_image", "float32", [3, 1024, 1024])},
            r"input 'input_image' has shape .*rank 4",
        ),
        (
            {"inp": ("input_image", "float32", [2, 3, 1024, 1024])},
            "input 'input_image' fixes the batch axis at 2",
        ),
        (
            {"out": ("alpha", "float32", ["N", 1, 1024, 1024])},
            "output 'output_image' is missing .* the file's outputs are: alpha",
        ),
        (
            {"out": ("output_image", "float64", ["N", 1, 1024, 1024])},
            "output 'output_image' is float64",
        ),
        (
            {"extra": [("scale", "float32", ["N"])]},
            "input 'scale' is not in the contract",
        ),
    ],
)
def test_refusals_name_the_tensor(tmp_path: Path, changes: dict, message: str) -> None:
    with pytest.raises(ContractError, match=message):
        check_signature(read_signature(birefnet(tmp_path, **changes)), BIREFNET)


def test_an_unreadable_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all")
    with pytest.raises(ContractError, match="not a readable ONNX file"):
        read_signature(bad)
