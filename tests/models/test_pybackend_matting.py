"""services/models/pybackend/matting.py: the learned-matting front's algorithm
(parameters, network input, activations, full-resolution refinement), in-process."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from services.models.pybackend.matting import (
    FrontParams,
    MattingInputError,
    activate,
    postprocess,
    preprocess,
    refine,
    work_shape,
)

ISNET = FrontParams(
    network_model="matting_isnet_onnx",
    work_size=1024,
    keep_aspect=1,
    size_multiple=64,
    mean="0.5,0.5,0.5",
    std="1,1,1",
    activation="probability",
    sure_fg=0.9,
    sure_bg=0.05,
    guide_eps=1e-4,
)
BIREFNET = FrontParams(network_model="matting_birefnet_onnx")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"network_model": ""}, "network_model"),
        ({"activation": "softmax"}, "activation"),
        ({"sure_fg": 0.1, "sure_bg": 0.2}, "sure_bg < sure_fg"),
        ({"work_size": 1000, "size_multiple": 64}, "multiple"),
        ({"keep_aspect": 2}, "keep_aspect"),
        ({"mean": "0.5,0.5"}, "three"),
        ({"std": "1,0,1"}, "positive"),
    ],
)
def test_bad_parameters_fail_the_load(changes: dict[str, object], message: str) -> None:
    base = {"network_model": "m"}
    with pytest.raises(ValueError, match=message):
        FrontParams(**{**base, **changes})  # type: ignore[arg-type]


def test_work_shape_keeps_the_aspect_in_multiples() -> None:
    assert work_shape(3000, 4000, ISNET) == (768, 1024)
    assert work_shape(4000, 3000, ISNET) == (1024, 768)
    assert work_shape(100, 5000, ISNET) == (64, 1024)  # never below one multiple
    assert work_shape(3000, 4000, BIREFNET) == (1024, 1024)  # fixed-size network


def test_normalisation_and_layout() -> None:
    grey = np.full((48, 64, 3), 128, np.uint8)
    grey[..., 0] = 255
    x = preprocess(grey, ISNET)
    assert x.shape == (1, 3, 768, 1024) and x.dtype == np.float32
    assert np.allclose(x[0, :, 10, 10], [0.5, 128 / 255 - 0.5, 128 / 255 - 0.5], atol=1e-5)
    y = preprocess(grey, BIREFNET)
    expected = (128 / 255 - 0.456) / 0.224
    assert y.shape == (1, 3, 1024, 1024) and abs(y[0, 1, 5, 5] - expected) < 1e-5


@pytest.mark.parametrize("image", [np.zeros((8, 64, 3), np.uint8), np.zeros((64, 64), np.uint8)])
def test_bad_images_are_input_errors(image: np.ndarray) -> None:
    with pytest.raises(MattingInputError):
        preprocess(image, ISNET)


def test_activations() -> None:
    raw = np.array([[[[-10.0, 0.0], [10.0, 2.0]]]], np.float32)
    logits = FrontParams(network_model="m", activation="logits")
    assert np.allclose(activate(raw, logits), 1 / (1 + np.exp(-raw[0, 0])), atol=1e-6)
    prob = FrontParams(network_model="m", activation="probability")
    assert activate(raw, prob).tolist() == [[0.0, 0.0], [1.0, 1.0]]  # clipped
    minmax = FrontParams(network_model="m", activation="minmax")
    assert np.allclose(activate(raw, minmax), [[0.0, 0.5], [1.0, 0.6]])
    with pytest.raises(MattingInputError, match="network output"):
        activate(np.zeros((2, 1, 4, 4), np.float32), prob)


def test_a_network_that_is_sure_gives_exact_zero_and_255() -> None:
    # ISNet's own output tops out at 254/255: a sure subject must still be opaque.
    image = np.full((256, 256, 3), 200, np.uint8)
    image[64:192, 64:192] = 40
    p = np.zeros((128, 128), np.float32) + 0.004
    p[32:96, 32:96] = 254 / 255
    alpha = refine(p, image, ISNET)
    assert (alpha[72:184, 72:184] == 255).all()
    assert (alpha[:56] == 0).all() and (alpha[200:] == 0).all()


def four_k_scene() -> tuple[np.ndarray, np.ndarray]:
    """A 3840 x 2160 photo with hard-edged subjects on a textured backdrop, and its
    exact matte."""
    h, w = 2160, 3840
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    truth = (((xx - 1900) / 1200) ** 2 + ((yy - 1080) / 800) ** 2 < 1).astype(np.float32)
    truth = np.maximum(truth, ((abs(xx - 800) < 300) & (abs(yy - 700) < 500)).astype(np.float32))
    backdrop = np.dstack(
        [np.full((h, w), 200.0), 180 + 20 * np.sin(xx / 50), np.full((h, w), 170.0)]
    )
    subject = np.dstack([np.full((h, w), 40.0), 60 + 10 * np.cos(yy / 30), np.full((h, w), 120.0)])
    noise = np.random.default_rng(0).normal(0, 3, (h, w, 3))
    photo = truth[..., None] * subject + (1 - truth[..., None]) * backdrop + noise
    return np.clip(photo, 0, 255).astype(np.uint8), truth


@pytest.mark.parametrize("params", [ISNET, BIREFNET], ids=["isnet", "birefnet"])
def test_four_k_edges_stay_crisp(params: FrontParams) -> None:
    photo, truth = four_k_scene()
    h, w = work_shape(2160, 3840, params)
    # What a ~1 MP network sees and answers: the matte at its resolution, a little soft.
    low = cv2.GaussianBlur(cv2.resize(truth, (w, h), interpolation=cv2.INTER_AREA), (0, 0), 1.0)
    low = np.clip(low, 1e-4, 1 - 1e-4)
    raw = low if params.activation == "probability" else np.log(low / (1 - low))
    refined = postprocess(raw[None, None].astype(np.float32), photo, params) / 255.0
    upsampled = cv2.resize(low, (3840, 2160), interpolation=cv2.INTER_LINEAR)

    def soft(alpha: np.ndarray) -> int:
        return int(((alpha > 0.1) & (alpha < 0.9)).sum())

    assert soft(refined) < 0.5 * soft(upsampled)
    assert np.abs(refined - truth).mean() < 0.75 * np.abs(upsampled - truth).mean()
    # Solid subject and clear backdrop (beyond the refinement band) are exactly 1 and 0.
    inside = cv2.distanceTransform(truth.astype(np.uint8), cv2.DIST_L2, 3) > 32
    outside = cv2.distanceTransform((1 - truth).astype(np.uint8), cv2.DIST_L2, 3) > 32
    assert (refined[inside] == 1.0).all() and (refined[outside] == 0.0).all()


def test_thin_strands_keep_fractional_alpha() -> None:
    """Hairs thinner than a pixel over a light backdrop, which a ~1 MP network sees only
    as a grey haze: the refinement unmixes the photo's colours, so each strand gets its
    own fractional alpha, much closer to the truth than the network's upsampled matte."""
    h, w = 1024, 1024
    fine = np.zeros((h, 4 * w), np.float32)  # 4x horizontal supersampling
    fine[:, : 2 * w] = 1.0
    for x in range(2 * w, 2 * w + 240, 23):  # strands 2/4 px wide, 5.75 px apart
        fine[:, x : x + 2] = 1.0
    truth = cv2.resize(fine, (w, h), interpolation=cv2.INTER_AREA)
    dark, light = np.array([40, 30, 20], np.float32), np.array([235, 230, 225], np.float32)
    image = (truth[..., None] * dark + (1 - truth[..., None]) * light).astype(np.uint8)
    low = cv2.resize(truth, (256, 256), interpolation=cv2.INTER_AREA)
    p = np.clip(cv2.GaussianBlur(low, (0, 0), 1.0), 0, 1).astype(np.float32)
    alpha = refine(p, image, dataclasses.replace(ISNET, work_size=256)) / 255.0
    upsampled = cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR)
    fringe = (slice(100, 900), slice(w // 2 + 8, w // 2 + 58))
    err_refined = np.abs(alpha[fringe] - truth[fringe]).mean()
    err_raw = np.abs(upsampled[fringe] - truth[fringe]).mean()
    assert err_refined < 0.5 * err_raw
    assert ((alpha[fringe] > 0.05) & (alpha[fringe] < 0.95)).mean() > 0.2


@pytest.mark.parametrize("value", [0.0, 0.003, 0.996, 1.0])
def test_a_network_sure_everywhere_needs_no_refinement(value: float) -> None:
    image = np.random.default_rng(1).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    alpha = refine(np.full((192, 256), value, np.float32), image, ISNET)
    assert alpha.shape == (300, 400) and (alpha == (255 if value > 0.5 else 0)).all()


def test_only_the_band_is_refined() -> None:
    """Refinement is computed in the box around the network's doubtful pixels; far from
    it the answer is the network's, exactly."""
    image = np.full((1000, 1000, 3), 220, np.uint8)
    image[400:600, 400:600] = 30
    p = np.zeros((1024, 1024), np.float32)
    p[410:614, 410:614] = 1.0
    p = cv2.GaussianBlur(p, (0, 0), 2.0)
    alpha = refine(p, image, ISNET)
    assert (alpha[:300] == 0).all() and (alpha[700:] == 0).all()
    assert (alpha[450:550, 450:550] == 255).all()
    edge = alpha[380:420, 500]
    assert edge[0] == 0 and edge[-1] == 255 and ((edge > 0) & (edge < 255)).sum() <= 4
