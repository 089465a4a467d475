"""The compositor's gRPC server: wiring only. The pixel work is in the domain
modules (compose, cutout, encode, presets, prompts); request validation in specs."""

from __future__ import annotations

import logging
import signal
import threading

import grpc
import numpy as np
from lightbox.v1 import compositor_pb2, compositor_pb2_grpc

from services.common.grpcutil import handle_errors, make_server, mark_serving
from services.common.rawimage import from_proto, to_proto
from services.compositor import prompts, specs
from services.compositor.compose import compose, place_subject
from services.compositor.cutout import cutout, cutout_alpha
from services.compositor.encode import EncodeOptions, encode
from services.compositor.presets import PRESETS
from services.compositor.settings import CompositorSettings

log = logging.getLogger(__name__)

SERVICE_NAME = "lightbox.v1.CompositorService"


def _encoded(
    pixels: np.ndarray, options: EncodeOptions, engine: str = ""
) -> compositor_pb2.EncodedImage:
    return compositor_pb2.EncodedImage(
        data=encode(pixels, options),
        format=options.format,
        width=pixels.shape[1],
        height=pixels.shape[0],
        background_engine=engine,
    )


def _add_layers(
    encoded: compositor_pb2.EncodedImage, alpha: np.ndarray | None, shadow: np.ndarray | None
) -> None:
    if alpha is not None:
        encoded.alpha.CopyFrom(to_proto(alpha))
    if shadow is not None:
        encoded.shadow.CopyFrom(to_proto(shadow))


class CompositorServicer(compositor_pb2_grpc.CompositorServiceServicer):
    def __init__(self, settings: CompositorSettings) -> None:
        self.settings = settings

    @handle_errors
    def Compose(
        self, request: compositor_pb2.ComposeRequest, context: grpc.ServicerContext
    ) -> compositor_pb2.EncodedImage:
        spec, subject, source, image = specs.compose_request(request, self.settings)
        options = specs.encode_options(request.encode, "jpeg", self.settings)
        result = compose(subject, spec, source, image)
        encoded = _encoded(result.pixels, options, result.background_engine)
        if request.qa_layers:
            _add_layers(encoded, result.alpha, result.shadow)
        return encoded

    @handle_errors
    def Cutout(
        self, request: compositor_pb2.CutoutRequest, context: grpc.ServicerContext
    ) -> compositor_pb2.EncodedImage:
        subject = specs.raw_image(request.subject, "subject", (4,), self.settings.max_input_side)
        options = specs.encode_options(request.encode, "png", self.settings)
        pixels = cutout(subject, request.crop, request.bg_color, request.mask_only)
        encoded = _encoded(pixels, options)
        if request.qa_layers:
            _add_layers(encoded, cutout_alpha(subject, request.crop), None)
        return encoded

    @handle_errors
    def Encode(
        self, request: compositor_pb2.EncodeRequest, context: grpc.ServicerContext
    ) -> compositor_pb2.EncodedImage:
        pixels = from_proto(request.image, "image")
        options = specs.encode_options(request.encode, "png", self.settings)
        return _encoded(pixels, options)

    @handle_errors
    def ResolveBackground(
        self, request: compositor_pb2.ResolveBackgroundRequest, context: grpc.ServicerContext
    ) -> compositor_pb2.ResolvedBackground:
        resolved = prompts.resolve(request.preset, request.prompt)
        return compositor_pb2.ResolvedBackground(
            drawable=resolved.drawable, preset=resolved.preset, description=resolved.description
        )

    @handle_errors
    def Place(
        self, request: compositor_pb2.ComposeRequest, context: grpc.ServicerContext
    ) -> compositor_pb2.RawImage:
        spec, subject, _, _ = specs.compose_request(request, self.settings)
        return to_proto(place_subject(subject, spec))

    @handle_errors
    def ListPresets(
        self, request: compositor_pb2.ListPresetsRequest, context: grpc.ServicerContext
    ) -> compositor_pb2.ListPresetsResponse:
        return compositor_pb2.ListPresetsResponse(
            presets=[
                compositor_pb2.Preset(name=name, description=preset.description)
                for name, preset in PRESETS.items()
            ]
        )


def build_server(
    settings: CompositorSettings, address: str | None = None
) -> tuple[grpc.Server, int]:
    """A compositor server bound to `address` (default: settings.compositor_addr;
    port 0 picks one), with the health service marked SERVING. Not started:
    call `server.start()`. Returns (server, bound port)."""
    server, port, health = make_server(
        address or settings.bind_address(settings.compositor_addr),
        max_workers=settings.compositor_workers,
    )
    compositor_pb2_grpc.add_CompositorServiceServicer_to_server(
        CompositorServicer(settings), server
    )
    mark_serving(health, SERVICE_NAME)
    return server, port


def main() -> None:
    """Serve until SIGTERM or SIGINT, then let in-flight calls finish."""
    settings = CompositorSettings()
    logging.basicConfig(level=settings.log_level)
    server, port = build_server(settings)
    server.start()
    log.info("compositor listening on %s (port %d)", settings.compositor_addr, port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop(settings.shutdown_grace_seconds).wait()


if __name__ == "__main__":
    main()
