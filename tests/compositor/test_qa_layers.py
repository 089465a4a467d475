"""The compositor's QA layers: where the subject landed and the shadow it cast, at the
output's size, returned only when asked for (services/compositor/server.py)."""

from __future__ import annotations

import numpy as np
from lightbox.v1 import compositor_pb2

from services.common.rawimage import from_proto, to_proto
from services.compositor.compose import ComposeSpec, compose
from services.compositor.layout import LayoutSpec
from services.compositor.presets import preset_background
from services.compositor.server import CompositorServicer
from services.compositor.settings import CompositorSettings
from services.compositor.shadows import SHADOW_STYLES, ShadowLayer, darkness_map
from tests.compositor import products


def test_compose_returns_the_placed_alpha_and_the_shadow_it_darkened() -> None:
    subject = products.bottle(256)
    spec = ComposeSpec(
        background=preset_background("white-studio"),
        layout=LayoutSpec(output_width=400, output_height=300, scale=0.8),
        shadow=SHADOW_STYLES["soft"],
    )
    result = compose(subject, spec)
    assert result.alpha is not None and result.alpha.shape == (300, 400)
    assert result.shadow is not None and result.shadow.shape == (300, 400)
    ys, _ = np.nonzero(result.alpha > 8)
    assert abs((ys.max() - ys.min() + 1) / 300 - 0.8) < 0.01
    # Where neither subject nor shadow is, the canvas is the white background.
    clear = (result.alpha == 0) & (result.shadow == 0)
    assert (result.pixels[clear] == 255).all()
    # Where only the shadow is, the canvas is white darkened by exactly that layer.
    only_shadow = (result.alpha == 0) & (result.shadow > 20)
    assert only_shadow.any()
    expected = 255 - result.shadow[only_shadow].astype(int)
    assert np.abs(result.pixels[only_shadow][:, 0].astype(int) - expected).max() <= 2


def test_darkness_map_combines_layers_as_darken_does() -> None:
    a = ShadowLayer(np.full((10, 10), 128, np.uint8), -5, 0)  # half off the canvas
    b = ShadowLayer(np.full((10, 10), 128, np.uint8), 0, 0)
    d = darkness_map([a, b], 20, 20)
    # Both layers over (0..4, 0..9): 255 * 127/255 * 127/255 of the light is left.
    assert d[0, 0] == 255 - 63
    assert d[0, 7] == 128 and d[15, 15] == 0


def test_server_sends_layers_only_when_asked() -> None:
    servicer = CompositorServicer(CompositorSettings())
    request = compositor_pb2.ComposeRequest(
        subject=to_proto(products.box(128)),
        background=compositor_pb2.BackgroundSpec(preset="white-studio"),
        shadow=compositor_pb2.ShadowSpec(type="soft"),
        encode=compositor_pb2.EncodeSpec(format="png"),
    )
    plain = servicer.Compose(request, None)
    assert not plain.HasField("alpha") and not plain.HasField("shadow")
    request.qa_layers = True
    layered = servicer.Compose(request, None)
    assert from_proto(layered.alpha, "alpha").shape == (layered.height, layered.width)
    assert from_proto(layered.shadow, "shadow").max() > 0
    cut = servicer.Cutout(
        compositor_pb2.CutoutRequest(
            subject=to_proto(products.box(128)), crop=True, qa_layers=True
        ),
        None,
    )
    alpha = from_proto(cut.alpha, "alpha")
    assert alpha.shape == (cut.height, cut.width) and alpha.max() == 255
