"""Whether an operation can run with what is deployed now, decided at submit
time so that a request nobody can serve is refused (503, no charge) instead of
queued and failed."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
from lightbox.v1 import compositor_pb2, compositor_pb2_grpc

from services.common import models
from services.common.errors import ModelUnavailable
from services.common.grpcutil import error_from_rpc

# Presets that always need a generative model, whatever the prompt says.
GENERATIVE_PRESETS = {"custom"}
# Operations whose pipeline mattes the photo.
MATTING_OPERATIONS = {"product-photo", "remove-background", "replace-background"}
# PixelAPI's audio, video and try-on operations: each runs one pipeline model, with
# no embedded engine to fall back on.
MEDIA_MODELS = {
    "audio-generate": (models.MUSICGEN, "Music generation (musicgen-small)"),
    "video-generate": (models.WAN_T2V, "Video generation (WAN 2.1)"),
    "virtual-tryon": (models.CATVTON, "Virtual try-on (CatVTON)"),
}
# Engine names of LIGHTBOX_MATTING_ENGINE and the Triton model each needs.
MATTING_MODELS = {
    "birefnet": models.MATTING_BIREFNET,
    "isnet": models.MATTING_ISNET,
    "classical": models.MATTING_CLASSICAL,
}


class Availability:
    def __init__(
        self,
        compositor: compositor_pb2_grpc.CompositorServiceStub,
        ready_models: Callable[[], set[str]],
        cache_seconds: float = 2.0,
        matting_engine: str = "auto",
    ) -> None:
        if matting_engine != "auto" and matting_engine not in MATTING_MODELS:
            raise ValueError(f"unknown matting engine {matting_engine!r}")
        self._compositor = compositor
        self._ready_models = ready_models
        self._matting_engine = matting_engine
        self._cache_seconds = cache_seconds
        self._cached: tuple[float, set[str]] = (0.0, set())

    def ready(self) -> set[str]:
        at, names = self._cached
        if time.monotonic() - at > self._cache_seconds:
            try:
                names = self._ready_models()
            except Exception:
                names = set()
            self._cached = (time.monotonic(), names)
        return names

    def _require(self, model: str, what: str) -> None:
        if not models.usable(model, self.ready()):
            raise ModelUnavailable(
                f"{what} needs the '{model}' model, which is not deployed on this server.",
                guidance=models.INSTALL_HINT.get(
                    model, f"Install '{model}' with `lightbox models install`."
                ),
                extra={"model": model},
            )

    def _background_drawable(self, preset: str, prompt: str) -> bool:
        if preset in GENERATIVE_PRESETS and not prompt:
            return False
        try:
            resolved = self._compositor.ResolveBackground(
                compositor_pb2.ResolveBackgroundRequest(
                    preset="" if preset in GENERATIVE_PRESETS else preset, prompt=prompt
                ),
                timeout=10,
            )
        except grpc.RpcError as err:
            raise error_from_rpc(err) from None
        return resolved.drawable

    def check(self, operation: str, params: dict[str, Any]) -> None:
        if operation in MATTING_OPERATIONS and self._matting_engine != "auto":
            # The operator pinned one engine; the worker will not substitute another, so
            # a request it cannot serve is refused now (not charged) rather than failed.
            self._require(
                MATTING_MODELS[self._matting_engine],
                f"Matting (LIGHTBOX_MATTING_ENGINE={self._matting_engine})",
            )
        if operation == "product-photo":
            preset = str(params.get("preset") or "white-studio")
            prompt = str(params.get("background_prompt") or "")
            if not self._background_drawable(preset, prompt):
                self._require(models.SDXL_INPAINT, "A generated background")
        elif operation == "replace-background":
            if not self._background_drawable("", str(params.get("prompt") or "")):
                self._require(models.SDXL_INPAINT, "A generated scene")
        elif operation == "generate":
            model = str(params.get("model") or "sdxl")
            self._require(models.FLUX_SCHNELL if model == "flux-schnell" else models.SDXL, model)
        elif operation == "restore-face":
            self._require(models.FACE_RESTORE, "Face restoration")
            self._require(models.FACE_DETECTOR, "Face restoration")
        elif operation in MEDIA_MODELS:
            self._require(*MEDIA_MODELS[operation])
        elif operation == "remove-object" and not params.get("has_mask"):
            self._require(models.SEGMENT_CLIPSEG, "Removing an object named by a prompt")
