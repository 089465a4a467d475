"""upscale_realesrgan: tiling (seams, memory, scales) in-process, and the served front
(BLS over the ONNX stand-in) against the same pipeline run in-process."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from types import ModuleType

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as triton_grpc

from services.common.triton import TritonProcess
from services.samples.synthetic import make_sample
from tests.model_repository.triton_fixtures import config_parameters


@pytest.fixture(scope="module")
def tiling() -> ModuleType:
    from services.models.pybackend import tiling

    return tiling


@pytest.fixture(scope="module")
def run(production_repo: Path):  # type: ignore[no-untyped-def]
    session = ort.InferenceSession(
        str(production_repo / "upscale_realesrgan_onnx" / "1" / "model.onnx"),
        providers=["CPUExecutionProvider"],
    )
    return lambda x: session.run(["output"], {"input": x})[0]


def untiled(image: np.ndarray, run) -> np.ndarray:  # type: ignore[no-untyped-def]
    x = image.astype(np.float32).transpose(2, 0, 1)[None] / 255.0
    y = run(x)[0].transpose(1, 2, 0)
    return (np.clip(y, 0, 1) * 255.0 + 0.5).astype(np.uint8)


def test_tiles_cover_the_image_with_the_overlap(tiling: ModuleType) -> None:
    assert tiling.tile_starts(100, 256, 16) == [0]
    assert tiling.tile_starts(300, 128, 16) == [0, 112, 172]
    starts = tiling.tile_starts(1000, 256, 16)
    assert starts[-1] == 1000 - 256
    assert all(b - a <= 256 - 16 for a, b in zip(starts, starts[1:], strict=False))


def test_cores_are_balanced_instead_of_one_shifted_back(tiling: ModuleType) -> None:
    # 520 px with 512 px tiles: two cores of 268 (536 px of network input), not two of
    # 512 where the second almost repeats the first.
    assert tiling.core_size(520, 512, 16) == 268
    assert tiling.tile_starts(520, 268, 16) == [0, 252]
    assert tiling.core_size(200, 256, 16) == 200
    for length in range(17, 2000, 37):
        core = tiling.core_size(length, 256, 16)
        starts = tiling.tile_starts(length, core, 16)
        assert core <= 256 and starts[0] == 0 and starts[-1] + core == length
        assert all(b - a <= core - 16 for a, b in zip(starts, starts[1:], strict=False))


def test_tiled_equals_untiled_away_from_the_borders(tiling: ModuleType, run) -> None:  # type: ignore[no-untyped-def]
    image = make_sample("mug", "wood", size=(300, 220)).rgb
    whole = untiled(image, run)
    params = tiling.TileParams(tile=64, pad=24, overlap=16, tile_batch=3)
    tiled = tiling.upscale_tiled(image, 4, run, params)
    assert tiled.shape == whole.shape == (880, 1200, 3)
    diff = np.abs(tiled.astype(int) - whole.astype(int))
    assert diff[16:-16, 16:-16].max() <= 1  # within 1/255
    assert diff.max() <= 1


def test_two_x_is_the_four_x_result_area_averaged(tiling: ModuleType, run) -> None:  # type: ignore[no-untyped-def]
    image = make_sample("box", "plain", size=(96, 80)).rgb
    params = tiling.TileParams(tile=48, pad=16, overlap=8)
    four = tiling.upscale_tiled(image, 4, run, params).astype(np.float32)
    two = tiling.upscale_tiled(image, 2, run, params)
    assert two.shape == (160, 192, 3)
    expected = four.reshape(160, 2, 192, 2, 3).mean(axis=(1, 3))
    assert np.abs(two - expected).max() <= 1


def test_memory_follows_the_width_not_the_height(tiling: ModuleType) -> None:
    def nearest(x: np.ndarray) -> np.ndarray:
        return np.repeat(np.repeat(x, 4, axis=2), 4, axis=3)

    params = tiling.TileParams(tile=128, pad=8, overlap=8)
    peaks = []
    for height in (256, 1024):
        image = np.random.default_rng(0).integers(0, 256, (height, 512, 3), dtype=np.uint8)
        tracemalloc.start()
        out = tiling.upscale_tiled(image, 4, nearest, params)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert np.array_equal(out, np.repeat(np.repeat(image, 4, 0), 4, 1))
    # 4x the height: the result (and the input's float copy) grow, the rest does not.
    growth = peaks[1] - peaks[0]
    result_and_source = (1024 - 256) * 512 * 3 * (16 + 4)
    assert growth <= 1.5 * result_and_source, (peaks, result_and_source)


def test_a_model_of_the_wrong_scale_is_reported(tiling: ModuleType) -> None:
    with pytest.raises(tiling.ModelOutputError, match="model_scale 4"):
        tiling.upscale_tiled(
            np.zeros((20, 20, 3), np.uint8),
            4,
            lambda x: x,
            tiling.TileParams(tile=16, pad=2, overlap=4),
        )


def infer(server: TritonProcess, image: np.ndarray, scale: int) -> np.ndarray:
    client = triton_grpc.InferenceServerClient(server.grpc_addr)
    try:
        a = triton_grpc.InferInput("IMAGE", list(image.shape), "UINT8")
        a.set_data_from_numpy(image)
        b = triton_grpc.InferInput("SCALE", [1], "INT32")
        b.set_data_from_numpy(np.array([scale], np.int32))
        return client.infer("upscale_realesrgan", [a, b]).as_numpy("UPSCALED")
    finally:
        client.close()


def test_served_front_matches_the_in_process_pipeline(
    production_server: TritonProcess,
    tiling: ModuleType,
    run,  # type: ignore[no-untyped-def]
) -> None:
    image = make_sample("bottle", "wood", size=(300, 280)).rgb
    served = infer(production_server, image, 4)
    params = tiling.parse_params(config_parameters("upscale_realesrgan"))
    expected = tiling.upscale_tiled(image, 4, run, params)
    assert served.shape == (1120, 1200, 3)
    assert np.abs(served.astype(int) - expected.astype(int)).max() <= 1
    assert infer(production_server, image, 2).shape == (560, 600, 3)
