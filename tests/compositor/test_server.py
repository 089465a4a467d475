"""The real gRPC server (build_server on port 0) over a real channel."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from lightbox.v1 import compositor_pb2 as pb
from PIL import Image, ImageCms

from services.common.errors import MD_CODE, MD_FIELD
from services.common.grpcutil import check_health
from services.common.rawimage import to_proto
from services.compositor.layout import alpha_box

from .products import photographed

PLACE = pb.LAYOUT_MODE_PLACE
KEEP = pb.LAYOUT_MODE_KEEP


def decode(out: pb.EncodedImage) -> tuple[Image.Image, np.ndarray]:
    image = Image.open(io.BytesIO(out.data))
    image.load()
    return image, np.asarray(image)


def place_layout(**fields: float | str | int) -> pb.Layout:
    fields.setdefault("x", -1)
    fields.setdefault("y", -1)
    return pb.Layout(mode=PLACE, **fields)  # type: ignore[arg-type]


def compose_request(subject: np.ndarray, **fields: object) -> pb.ComposeRequest:
    fields.setdefault("layout", place_layout())
    fields.setdefault("encode", pb.EncodeSpec(format="png"))
    return pb.ComposeRequest(subject=to_proto(subject), **fields)  # type: ignore[arg-type]


def rpc_error(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(request)
    return info.value


def metadata(err: grpc.RpcError) -> dict[str, str]:
    return dict(err.trailing_metadata() or ())  # type: ignore[attr-defined]


def test_health_is_serving(grpc_channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(grpc_channel)
    for service in ("", "lightbox.v1.CompositorService"):
        resp = health.Check(health_pb2.HealthCheckRequest(service=service))
        assert resp.status == health_pb2.HealthCheckResponse.SERVING


def test_compose_white_studio_png(stub, subject: np.ndarray) -> None:
    out = stub.Compose(compose_request(subject))
    image, pixels = decode(out)
    assert (out.format, out.width, out.height) == ("png", 256, 256)
    assert image.mode == "RGB" and pixels.shape == (256, 256, 3)
    assert out.background_engine == "solid:#ffffff"
    # Far from the product and its shadow the canvas is pure white.
    assert (pixels[:20, :] == 255).all()
    assert (pixels[:, :20] == 255).all()
    # The product is there, centred horizontally.
    box = alpha_box((pixels.min(axis=2) < 200).astype(np.uint8) * 255)
    assert box is not None and abs((box[0] + box[2]) / 2 - 128) <= 2


def test_compose_jpeg_has_srgb_profile(stub, subject: np.ndarray) -> None:
    out = stub.Compose(compose_request(subject, encode=pb.EncodeSpec(format="jpeg", quality=85)))
    image, pixels = decode(out)
    assert image.format == "JPEG" and image.info.get("progressive") == 1
    profile = ImageCms.ImageCmsProfile(io.BytesIO(image.info["icc_profile"]))
    assert "sRGB" in ImageCms.getProfileDescription(profile)
    assert np.abs(pixels[:16, :16].astype(int) - 255).max() <= 2


def test_compose_default_format_is_jpeg(stub, subject: np.ndarray) -> None:
    out = stub.Compose(compose_request(subject, encode=pb.EncodeSpec()))
    assert out.format == "jpeg" and out.data[:2] == b"\xff\xd8"


def test_compose_webp_and_solid_colour(stub, subject: np.ndarray) -> None:
    req = compose_request(
        subject,
        background=pb.BackgroundSpec(prompt="#1F2A44"),
        shadow=pb.ShadowSpec(type="none"),
        encode=pb.EncodeSpec(format="webp", quality=95),
    )
    out = stub.Compose(req)
    image, pixels = decode(out)
    assert image.format == "WEBP" and out.background_engine == "solid:#1f2a44"
    assert np.abs(pixels[5, 5].astype(int) - (0x1F, 0x2A, 0x44)).max() <= 3


def test_compose_keep_is_bit_exact(stub, subject: np.ndarray) -> None:
    source = photographed(subject, (90, 160, 70))
    req = compose_request(
        subject,
        background=pb.BackgroundSpec(preset="gradient-light"),
        layout=pb.Layout(mode=KEEP),
        source=to_proto(source),
        preserve_shadow=True,
    )
    out = stub.Compose(req)
    _, pixels = decode(out)
    opaque = subject[:, :, 3] == 255
    assert pixels.shape == (256, 256, 3)
    assert np.array_equal(pixels[opaque], subject[:, :, :3][opaque])


def test_compose_place_output_size(stub, subject: np.ndarray) -> None:
    out = stub.Compose(
        compose_request(subject, layout=place_layout(output_width=320, output_height=200))
    )
    assert (out.width, out.height) == (320, 200)
    out = stub.Compose(compose_request(subject, layout=place_layout(aspect_ratio="16:9")))
    assert (out.width, out.height) == (256, 144)


def test_compose_generative_prompt_is_model_unavailable(stub, subject: np.ndarray) -> None:
    req = compose_request(subject, background=pb.BackgroundSpec(prompt="a beach at sunset"))
    err = rpc_error(stub.Compose, req)
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert metadata(err)[MD_CODE] == "model_unavailable"


def test_resolve_background(stub) -> None:
    r = stub.ResolveBackground(pb.ResolveBackgroundRequest(prompt="navy blue backdrop"))
    assert (r.drawable, r.preset, r.description) == (True, "solid", "solid #000080")
    r = stub.ResolveBackground(pb.ResolveBackgroundRequest(prompt="peach to lilac gradient"))
    assert r.drawable and r.preset == "gradient"
    r = stub.ResolveBackground(pb.ResolveBackgroundRequest(prompt="on a beach at sunset"))
    assert not r.drawable and r.preset == "generative"
    r = stub.ResolveBackground(pb.ResolveBackgroundRequest(preset="white-studio"))
    assert r.drawable and r.preset == "white-studio"


def test_list_presets(stub) -> None:
    presets = {p.name: p.description for p in stub.ListPresets(pb.ListPresetsRequest()).presets}
    for name in ("white-studio", "gradient-light", "solid", "gradient", "studio-sweep"):
        assert presets[name]
    assert all(presets.values())


def test_cutout_transparent_png(stub, subject: np.ndarray) -> None:
    out = stub.Cutout(pb.CutoutRequest(subject=to_proto(subject)))
    image, pixels = decode(out)
    assert image.mode == "RGBA" and out.format == "png"
    assert np.array_equal(pixels[:, :, 3], subject[:, :, 3])
    opaque = subject[:, :, 3] == 255
    assert np.array_equal(pixels[opaque], subject[opaque])


def test_cutout_crop_flatten_jpeg(stub, subject: np.ndarray) -> None:
    req = pb.CutoutRequest(
        subject=to_proto(subject),
        crop=True,
        bg_color="#FF0000",
        encode=pb.EncodeSpec(format="jpeg", quality=95),
    )
    out = stub.Cutout(req)
    image, pixels = decode(out)
    x0, y0, x1, y1 = alpha_box(subject[:, :, 3])  # type: ignore[misc]
    assert (out.width, out.height) == (x1 - x0, y1 - y0)
    assert image.mode == "RGB"
    assert np.abs(pixels[0, 0].astype(int) - (255, 0, 0)).max() <= 8


def test_cutout_mask_only(stub, subject: np.ndarray) -> None:
    out = stub.Cutout(pb.CutoutRequest(subject=to_proto(subject), mask_only=True))
    image, pixels = decode(out)
    assert image.mode == "L" and np.array_equal(pixels, subject[:, :, 3])


def test_encode_roundtrip(stub) -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    out = stub.Encode(pb.EncodeRequest(image=to_proto(rgb), encode=pb.EncodeSpec(format="png")))
    _, pixels = decode(out)
    assert np.array_equal(pixels, rgb)
    out = stub.Encode(pb.EncodeRequest(image=to_proto(rgb), encode=pb.EncodeSpec(format="webp")))
    image, _ = decode(out)
    assert image.format == "WEBP" and (out.width, out.height) == (60, 40)


def _bad_raw() -> pb.RawImage:
    return pb.RawImage(width=10, height=10, channels=4, data=b"\x00" * 7)


BAD_COMPOSE = [
    ("background.preset", {"background": pb.BackgroundSpec(preset="velvet")}),
    (
        "background.prompt",
        {"background": pb.BackgroundSpec(preset="white-studio", prompt="#ff0000")},
    ),
    ("layout.aspect_ratio", {"layout": place_layout(aspect_ratio="0:5")}),
    ("layout.aspect_ratio", {"layout": place_layout(aspect_ratio="wide")}),
    ("layout.output_width", {"layout": place_layout(output_width=5000, output_height=100)}),
    ("layout.output_height", {"layout": place_layout(output_width=100, output_height=4097)}),
    ("layout.scale", {"layout": place_layout(scale=-0.5)}),
    ("layout.scale", {"layout": place_layout(scale=1.5)}),
    ("layout.x", {"layout": place_layout(x=150)}),
    ("layout.megapixel", {"layout": place_layout(megapixel=40)}),
    ("layout.aspect_ratio", {"layout": pb.Layout(mode=KEEP, aspect_ratio="1:1")}),
    ("detailer_mode", {"detail_transfer": True, "detailer_mode": "vivid_light"}),
    ("shadow.type", {"shadow": pb.ShadowSpec(type="dramatic")}),
    ("shadow.opacity", {"shadow": pb.ShadowSpec(type="soft", opacity=2)}),
    ("encode.format", {"encode": pb.EncodeSpec(format="gif")}),
    ("encode.quality", {"encode": pb.EncodeSpec(format="jpeg", quality=5)}),
    ("source", {"layout": pb.Layout(mode=KEEP), "preserve_shadow": True}),
]


@pytest.mark.parametrize(("field", "fields"), BAD_COMPOSE, ids=[f for f, _ in BAD_COMPOSE])
def test_compose_bad_spec_names_field(stub, subject: np.ndarray, field: str, fields) -> None:
    err = rpc_error(stub.Compose, compose_request(subject, **fields))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    md = metadata(err)
    assert md[MD_CODE] == "invalid_parameter"
    assert md[MD_FIELD] == field


def test_bad_raw_image_names_field(stub) -> None:
    err = rpc_error(stub.Compose, pb.ComposeRequest(subject=_bad_raw()))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert metadata(err)[MD_FIELD] == "subject"
    rgb = pb.RawImage(width=4, height=4, channels=3, data=b"\x00" * 48)
    err = rpc_error(stub.Compose, pb.ComposeRequest(subject=rgb))
    assert metadata(err)[MD_FIELD] == "subject"
    err = rpc_error(stub.Encode, pb.EncodeRequest(image=_bad_raw()))
    assert metadata(err)[MD_FIELD] == "image"


BAD_CUTOUT = [
    ("bg_color", {"bg_color": "#12345"}),
    ("bg_color", {"bg_color": "#ffffff", "mask_only": True}),
    ("encode.format", {"encode": pb.EncodeSpec(format="jpeg")}),
]


@pytest.mark.parametrize(("field", "fields"), BAD_CUTOUT, ids=[f for f, _ in BAD_CUTOUT])
def test_cutout_bad_spec_names_field(stub, subject: np.ndarray, field: str, fields) -> None:
    err = rpc_error(stub.Cutout, pb.CutoutRequest(subject=to_proto(subject), **fields))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert metadata(err)[MD_FIELD] == field


def test_main_serves_until_sigterm(tmp_path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"127.0.0.1:{port}"
    env = {**os.environ, "LIGHTBOX_COMPOSITOR_ADDR": address, "LIGHTBOX_HOME": str(tmp_path)}
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-m", "services.compositor.server"], cwd=root, env=env)
    try:
        deadline = time.monotonic() + 20
        while not check_health(address) and time.monotonic() < deadline:
            assert proc.poll() is None, "the server exited early"
            time.sleep(0.1)
        assert check_health(address)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_place_then_keep_compose_matches_place_compose(stub, subject: np.ndarray) -> None:
    """Place gives the layout a generated scene is painted around; composing that
    canvas in KEEP mode must put the subject exactly where PLACE compose does."""
    layout = place_layout(output_width=640, output_height=480, scale=0.5, x=30, y=60)
    placed_msg = stub.Place(compose_request(subject, layout=layout))
    assert (placed_msg.width, placed_msg.height, placed_msg.channels) == (640, 480, 4)
    placed = np.frombuffer(placed_msg.data, np.uint8).reshape(480, 640, 4)
    box = alpha_box(placed[:, :, 3], 0)
    assert box is not None
    x0, y0, x1, y1 = box
    assert abs((x0 + x1) / 2 - 0.30 * 640) <= 1 and abs((y0 + y1) / 2 - 0.60 * 480) <= 1
    assert abs(max(x1 - x0, y1 - y0) - 0.5 * 480) <= 1
    assert placed[0, 0, 3] == 0

    background = pb.BackgroundSpec(prompt="#223344")
    direct = stub.Compose(compose_request(subject, layout=layout, background=background))
    again = stub.Compose(
        compose_request(
            placed,
            layout=pb.Layout(mode=KEEP),
            background=background,
            disable_decontamination=True,
        )
    )
    _, a = decode(direct)
    _, b = decode(again)
    assert a.shape == b.shape == (480, 640, 3)
    opaque = placed[:, :, 3] == 255
    assert opaque.sum() > 1000
    assert np.array_equal(b[opaque], placed[:, :, :3][opaque])
    assert np.abs(a.astype(int) - b.astype(int))[opaque].max() <= 1


def test_place_unscaled_is_bit_exact(stub, subject: np.ndarray) -> None:
    placed_msg = stub.Place(compose_request(subject, layout=pb.Layout(mode=KEEP)))
    placed = np.frombuffer(placed_msg.data, np.uint8).reshape(subject.shape)
    opaque = subject[:, :, 3] == 255
    assert np.array_equal(placed[opaque], subject[opaque])
    assert (placed[subject[:, :, 3] == 0] == 0).all()


def test_background_image_at_canvas_size_takes_shadows(stub, subject: np.ndarray) -> None:
    """A scene made elsewhere at exactly the canvas size (as the generated-scene path
    sends it) arrives as a read-only buffer; shadows must still be drawn onto it."""
    scene = np.full((*subject.shape[:2], 3), (90, 140, 60), np.uint8)
    out = stub.Compose(
        compose_request(
            subject,
            layout=pb.Layout(mode=KEEP),
            background=pb.BackgroundSpec(image=to_proto(scene)),
            shadow=pb.ShadowSpec(type="soft"),
        )
    )
    assert out.background_engine == "image"
    _, px = decode(out)
    assert tuple(px[2, 2]) == (90, 140, 60)
    clear = subject[:, :, 3] == 0
    assert (px[clear].astype(int).sum(axis=1) < 90 + 140 + 60).any()  # shadow darkened some
