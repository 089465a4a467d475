"""The worker's client for Triton: picks the engine for a stage from the models that
are ready right now, runs it, and turns Triton failures into Lightbox errors.

Matting models share one signature, so the worker does not care which one serves:
input IMAGE uint8 [H, W, 3] RGB, output ALPHA uint8 [H, W] (255 = subject).

Engine choice happens before the call, by readiness. Once a model is chosen its
error is the job's error: a request BiRefNet rejected is never quietly re-run on the
classical engine (that would hand the user a worse cut-out labelled as the good one).
"""

from __future__ import annotations

import numpy as np
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

from services.common.errors import (
    InvalidImage,
    LightboxError,
    ModelUnavailable,
    ServiceUnavailable,
)

# (Triton model, engine name recorded on the job), best first.
MATTING_ENGINES: tuple[tuple[str, str], ...] = (
    ("matting_birefnet", "birefnet"),
    ("matting_classical", "classical"),
)

# gRPC statuses that mean "try again later": the server is down, restarting, or slow.
_TRANSIENT = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED", "RESOURCE_EXHAUSTED")


def _status_name(exc: InferenceServerException) -> str:
    # tritonclient reports gRPC codes as "StatusCode.UNAVAILABLE" (None when it
    # raised on its own, e.g. a local encoding problem).
    status = exc.status() or ""
    return status.rsplit(".", 1)[-1].upper()


def _map_error(exc: InferenceServerException, model: str) -> LightboxError:
    status = _status_name(exc)
    message = exc.message() or str(exc)
    if status in _TRANSIENT:
        return ServiceUnavailable(f"Triton: {model}: {status}: {message}")
    if status == "INVALID_ARGUMENT":
        return InvalidImage(f"{model} rejected the image: {message}")
    if status == "NOT_FOUND" or "not ready" in message or "unknown model" in message:
        # Unloaded between the readiness check and the call; the next attempt picks again.
        return ServiceUnavailable(f"Triton: {model} is no longer ready: {message}")
    return LightboxError(f"Triton: {model} failed: {status or 'error'}: {message}")


class TritonEngines:
    """Model-backed stages over Triton's KServe v2 gRPC API.

    `timeout_s` bounds each call (connection and inference); a call that runs past it
    raises ServiceUnavailable."""

    def __init__(self, grpc_addr: str, timeout_s: float = 60) -> None:
        self.grpc_addr = grpc_addr
        self.timeout_s = timeout_s
        self._client = triton_grpc.InferenceServerClient(grpc_addr)

    def close(self) -> None:
        self._client.close()

    def is_live(self) -> bool:
        """True when the server answers its liveness check."""
        try:
            return bool(self._client.is_server_live(client_timeout=min(self.timeout_s, 5.0)))
        except InferenceServerException:
            return False

    def ready_models(self) -> set[str]:
        """Names of the models Triton reports READY (any version)."""
        try:
            index = self._client.get_model_repository_index(
                as_json=True, client_timeout=self.timeout_s
            )
        except InferenceServerException as exc:
            raise _map_error(exc, "repository index") from exc
        return {m["name"] for m in index.get("models", []) if m.get("state") == "READY"}

    def matting(self, rgb: np.ndarray) -> tuple[np.ndarray, str]:
        """Alpha matte of `rgb` (uint8 HxWx3 RGB) as uint8 HxW, and the engine name
        that made it ("birefnet" or "classical")."""
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise InvalidImage(f"matting needs uint8 HxWx3 RGB, got {rgb.dtype} {list(rgb.shape)}")
        ready = self.ready_models()
        chosen = next(((m, e) for m, e in MATTING_ENGINES if m in ready), None)
        if chosen is None:
            raise ModelUnavailable(
                "no matting model is ready in Triton "
                f"(looked for {', '.join(m for m, _ in MATTING_ENGINES)})"
            )
        model, engine = chosen
        image = triton_grpc.InferInput("IMAGE", list(rgb.shape), "UINT8")
        image.set_data_from_numpy(np.ascontiguousarray(rgb))
        try:
            result = self._client.infer(
                model,
                [image],
                outputs=[triton_grpc.InferRequestedOutput("ALPHA")],
                client_timeout=self.timeout_s,
            )
        except InferenceServerException as exc:
            raise _map_error(exc, model) from exc
        alpha = result.as_numpy("ALPHA")
        if alpha is None or alpha.dtype != np.uint8 or alpha.shape != rgb.shape[:2]:
            got = "nothing" if alpha is None else f"{alpha.dtype} {list(alpha.shape)}"
            raise LightboxError(
                f"{model} returned {got} for ALPHA; expected uint8 {list(rgb.shape[:2])}"
            )
        return alpha, engine
