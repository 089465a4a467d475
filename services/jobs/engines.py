"""The worker's client for Triton: picks the engine for a stage from the models that
are ready right now, runs it, and turns Triton failures into Lightbox errors.

Matting models share one signature, so the worker does not care which one serves:
input IMAGE uint8 [H, W, 3] RGB, output ALPHA uint8 [H, W] (255 = subject).

Engine choice happens before the call, by readiness: BiRefNet when an operator
installed it, then ISNet (provisioned from a registry package), then the classical
engine; `matting_engine` (LIGHTBOX_MATTING_ENGINE) forces one, and a forced engine that
is not ready is ModelUnavailable, never a substitute. Once a model is chosen its error
is the job's error: a request ISNet rejected is never quietly re-run on the classical
engine (that would hand the user a worse cut-out labelled as the good one).
"""

from __future__ import annotations

import re

import cv2
import numpy as np
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

from services.common import models
from services.common.errors import (
    GpuOutOfMemory,
    InvalidImage,
    InvalidParameter,
    LightboxError,
    ModelUnavailable,
    ServiceUnavailable,
)

# (Triton model, engine name recorded on the job), best first.
MATTING_ENGINES: tuple[tuple[str, str], ...] = (
    (models.MATTING_BIREFNET, "birefnet"),
    (models.MATTING_ISNET, "isnet"),
    (models.MATTING_CLASSICAL, "classical"),
)
MATTING_CHOICES = ("auto", *(engine for _, engine in MATTING_ENGINES))

# Engines of the other image stages, best first: (Triton model, engine name recorded on
# the job). A production front model serves only when it and every model it calls
# (models.REQUIRES) are ready; the embedded engines need nothing else.
# Real-ESRGAN when an operator installed it, then the provisioned RRDN, then Lanczos.
# Both networks are 4x models; for 2x their result is area-averaged by 2 (measured
# better than the RRDN package's own 2x model: BENCHMARKS.md, Upscale).
UPSCALE_ENGINES: tuple[tuple[str, str], ...] = (
    (models.UPSCALE_ESRGAN, "realesrgan"),
    (models.UPSCALE_RRDN, "rrdn"),
    (models.UPSCALE_LANCZOS, "lanczos"),
)
INPAINT_ENGINES: tuple[tuple[str, str], ...] = (
    (models.INPAINT_LAMA, "lama"),
    (models.INPAINT_TELEA, "telea"),
)
UPSCALE_SCALES = (2, 4)

# gRPC statuses that mean "try again later": the server is down, restarting, or slow.
_TRANSIENT = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED", "RESOURCE_EXHAUSTED")


# Samplers the SDXL pipeline models take (services/models/pybackend/schedulers.py);
# the *_trailing ones are the few-step settings for Lightning/Turbo-style checkpoints.
SDXL_SCHEDULERS = ("euler", "euler_a", "dpmpp_2m_karras", "euler_trailing", "euler_a_trailing")
# A whole generation on one call: seconds on a GPU, minutes for big sizes on a CPU.
SDXL_TIMEOUT_S = 600.0
# SDXL is trained at about 1024 x 1024; inpainting works at this many pixels at most.
SDXL_WORK_PIXELS = 1024 * 1024
_SDXL_MULTIPLE = 8
_SDXL_MIN_SIDE = 64
_SDXL_MAX_SIDE = 2048
# The pipeline model names the offending input first: "STEPS: 500 is outside 1..100".
_SDXL_FIELD = re.compile(
    r"\b(PROMPT|NEGATIVE_PROMPT|WIDTH|HEIGHT|STEPS|GUIDANCE_SCALE|SEED|"
    r"SCHEDULER|STRENGTH|INIT_IMAGE|MASK): "
)
_SDXL_API_FIELD = {"INIT_IMAGE": "image", "NEGATIVE_PROMPT": "negative_prompt"}


# How the backends say a GPU ran out of memory: torch ("CUDA out of memory",
# OutOfMemoryError), onnxruntime's CUDA provider ("CUDA failure 2: out of memory",
# cudaErrorMemoryAllocation), cuDNN and TensorRT allocation failures. Triton passes the
# backend's text through, under INTERNAL or RESOURCE_EXHAUSTED.
_GPU_OOM = re.compile(
    r"CUDA out of memory|OutOfMemoryError|cudaErrorMemoryAllocation|CUDNN_STATUS_ALLOC_FAILED"
    r"|CUBLAS_STATUS_ALLOC_FAILED|CUDA failure 2\b|\bOOM\b|\bout of (GPU |device )?memory",
    re.IGNORECASE,
)


def _status_name(exc: InferenceServerException) -> str:
    # tritonclient reports gRPC codes as "StatusCode.UNAVAILABLE" (None when it
    # raised on its own, e.g. a local encoding problem).
    status = exc.status() or ""
    return status.rsplit(".", 1)[-1].upper()


def _map_error(exc: InferenceServerException, model: str) -> LightboxError:
    status = _status_name(exc)
    message = exc.message() or str(exc)
    if _GPU_OOM.search(message):
        # Not retried: the same request on the same GPU runs out again. The job fails
        # and its credits come back (503 gpu_out_of_memory).
        return GpuOutOfMemory(
            f"Triton: {model} ran out of GPU memory: {message}", extra={"model": model}
        )
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

    def __init__(self, grpc_addr: str, timeout_s: float = 60, matting_engine: str = "auto") -> None:
        if matting_engine not in MATTING_CHOICES:
            raise ValueError(
                f"matting_engine must be one of {MATTING_CHOICES}, not {matting_engine!r}"
            )
        self.grpc_addr = grpc_addr
        self.timeout_s = timeout_s
        self.matting_engine = matting_engine
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

    def matting_choice(self) -> tuple[str, str]:
        """(Triton model, engine name) that serves matting now: the forced engine, or
        the best ready one. ModelUnavailable (with the install hint) when none is."""
        ready = self.ready_models()
        table = MATTING_ENGINES
        if self.matting_engine != "auto":
            table = tuple((m, e) for m, e in MATTING_ENGINES if e == self.matting_engine)
        for model, engine in table:
            if models.usable(model, ready):
                return model, engine
        if self.matting_engine != "auto":
            model = table[0][0]
            missing = [m for m in (model, *models.REQUIRES.get(model, ())) if m not in ready]
            raise ModelUnavailable(
                f"matting is set to the '{self.matting_engine}' engine "
                f"(LIGHTBOX_MATTING_ENGINE), which is not ready in Triton "
                f"(not ready: {', '.join(missing)})",
                guidance=models.INSTALL_HINT.get(model),
                extra={"model": model},
            )
        raise ModelUnavailable(
            "no matting model is ready in Triton "
            f"(looked for {', '.join(m for m, _ in MATTING_ENGINES)})",
            guidance=models.INSTALL_HINT.get(models.MATTING_ISNET),
            extra={"model": models.MATTING_ISNET},
        )

    def matting_fallback_note(self, engine: str) -> str | None:
        """Why the classical engine served, when it did only because no learned matting
        model is installed (None otherwise: a learned engine, or classical by choice)."""
        if engine != "classical" or self.matting_engine != "auto":
            return None
        return (
            "the classical engine served because no learned matting model (ISNet, BiRefNet) "
            "is installed; cut-outs of real photos are much worse. "
            + models.INSTALL_HINT.get(models.MATTING_ISNET, "")
        ).strip()

    @staticmethod
    def upscale_fallback_note(engine: str, scale: int) -> str | None:
        """Why Lanczos served, when it did: no super-resolution network is installed for
        this scale (None when a network served)."""
        if engine != "lanczos":
            return None
        return (
            f"Lanczos resampling with an unsharp mask served because no super-resolution "
            f"network is installed for {scale}x; it enlarges without adding detail. "
            + models.INSTALL_HINT.get(models.UPSCALE_RRDN, "")
        ).strip()

    def matting(self, rgb: np.ndarray) -> tuple[np.ndarray, str]:
        """Alpha matte of `rgb` (uint8 HxWx3 RGB) as uint8 HxW, and the engine name
        that made it ("birefnet", "isnet" or "classical")."""
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise InvalidImage(f"matting needs uint8 HxWx3 RGB, got {rgb.dtype} {list(rgb.shape)}")
        model, engine = self.matting_choice()
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

    def upscale(self, rgb: np.ndarray, scale: int) -> tuple[np.ndarray, str]:
        """`rgb` (uint8 HxWx3 RGB) enlarged `scale` (2 or 4) times: uint8
        (scale*H)x(scale*W)x3, and the engine that made it ("realesrgan", "rrdn" or
        "lanczos")."""
        _check_rgb(rgb, "upscale")
        if scale not in UPSCALE_SCALES:
            raise InvalidParameter("scale", f"scale must be 2 or 4, not {scale}")
        model, engine = self._choose("upscale", UPSCALE_ENGINES)
        out = self._infer(
            model,
            {"IMAGE": np.ascontiguousarray(rgb), "SCALE": np.array([scale], dtype=np.int32)},
            "UPSCALED",
        )
        _check_shape(out, (rgb.shape[0] * scale, rgb.shape[1] * scale, 3), model, "UPSCALED")
        return out, engine

    def segment(self, rgb: np.ndarray, prompt: str) -> np.ndarray:
        """Mask of what `prompt` names in `rgb`, by CLIPSeg: uint8 HxW, 255 = the
        object (thresholded and grown by the model's parameters). ModelUnavailable when
        `segment_clipseg` is not deployed."""
        _check_rgb(rgb, "segment")
        self._require_front(models.SEGMENT_CLIPSEG)
        mask = self._infer(
            models.SEGMENT_CLIPSEG,
            {
                "IMAGE": np.ascontiguousarray(rgb),
                "PROMPT": np.array([prompt.encode("utf-8")], dtype=np.object_),
            },
            "MASK",
        )
        _check_shape(mask, rgb.shape[:2], models.SEGMENT_CLIPSEG, "MASK")
        return mask

    def erase(self, rgb: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, str]:
        """`rgb` with the area under `mask` (uint8 HxW, >= 128 = remove) filled in:
        uint8 HxWx3, and the engine that filled it ("lama" or "telea"). Pixels away
        from the mask come back unchanged."""
        _check_rgb(rgb, "erase")
        if mask.dtype != np.uint8 or mask.shape != rgb.shape[:2]:
            raise InvalidParameter(
                "mask",
                f"mask must be uint8 HxW at the image's size {list(rgb.shape[:2])}, "
                f"got {mask.dtype} {list(mask.shape)}",
            )
        model, engine = self._choose("inpaint", INPAINT_ENGINES)
        out = self._infer(
            model,
            {"IMAGE": np.ascontiguousarray(rgb), "MASK": np.ascontiguousarray(mask)},
            "INPAINTED",
        )
        _check_shape(out, rgb.shape, model, "INPAINTED")
        return out, engine

    def remove_object(
        self, rgb: np.ndarray, mask: np.ndarray | None, prompt: str | None
    ) -> tuple[np.ndarray, dict[str, str]]:
        """Erase what `mask` marks (uint8 HxW, >= 128 = remove) or, without a mask,
        what `prompt` names (CLIPSeg). A mask decides on its own: the prompt is then
        not needed and not used (so a request with a mask never needs CLIPSeg, as
        the submit-time check assumes). Returns the image and the engines per stage
        ({"segmentation": "clipseg", "inpaint": "lama"|"telea"})."""
        engines: dict[str, str] = {}
        if mask is None:
            if not prompt:
                raise InvalidParameter("mask", "send a mask (white = remove) or a prompt")
            mask = self.segment(rgb, prompt)
            engines["segmentation"] = "clipseg"
            if not (mask >= 128).any():
                raise InvalidParameter(
                    "prompt",
                    f"nothing matching {prompt!r} was found in the image",
                    guidance="Name the object differently, or send a mask (white = remove).",
                )
        out, engines["inpaint"] = self.erase(rgb, mask)
        return out, engines

    def restore_faces(self, rgb: np.ndarray, fidelity: float) -> tuple[np.ndarray, int]:
        """Faces in `rgb` restored by CodeFormer (`face_codeformer`, which finds them
        with `face_detector`), pasted back with a feathered edge: uint8 HxWx3 and the
        number of faces restored (0: the image comes back unchanged). fidelity 0..1:
        0 restores hardest, 1 stays closest to the input. ModelUnavailable when either
        model is not deployed (there is no embedded engine)."""
        _check_rgb(rgb, "restore_faces")
        if not 0.0 <= fidelity <= 1.0:
            raise InvalidParameter("fidelity", f"fidelity must be within 0..1, not {fidelity}")
        self._require_front(models.FACE_RESTORE)
        inputs = {
            "IMAGE": np.ascontiguousarray(rgb),
            "FIDELITY": np.array([fidelity], dtype=np.float32),
        }
        tensors = [_infer_input(name, array) for name, array in inputs.items()]
        outputs = [triton_grpc.InferRequestedOutput(n) for n in ("RESTORED", "FACES")]
        try:
            result = self._client.infer(
                models.FACE_RESTORE, tensors, outputs=outputs, client_timeout=self.timeout_s
            )
        except InferenceServerException as exc:
            raise _map_error(exc, models.FACE_RESTORE) from exc
        out, faces = result.as_numpy("RESTORED"), result.as_numpy("FACES")
        _check_shape(out, rgb.shape, models.FACE_RESTORE, "RESTORED")
        if faces is None or faces.size != 1:
            raise LightboxError(f"{models.FACE_RESTORE} returned no FACES count")
        return out, int(faces.reshape(-1)[0])

    def _choose(self, stage: str, table: tuple[tuple[str, str], ...]) -> tuple[str, str]:
        """The best (model, engine) of `table` that can serve now."""
        ready = self.ready_models()
        for model, engine in table:
            if models.usable(model, ready):
                return model, engine
        best = table[0][0]
        raise ModelUnavailable(
            f"no {stage} model is ready in Triton (looked for {', '.join(m for m, _ in table)})",
            guidance=models.INSTALL_HINT.get(best),
            extra={"model": best},
        )

    def _require_front(self, model: str) -> None:
        ready = self.ready_models()
        if not models.usable(model, ready):
            missing = [m for m in (model, *models.REQUIRES.get(model, ())) if m not in ready]
            raise ModelUnavailable(
                f"the '{model}' model is not ready in Triton (not ready: {', '.join(missing)})",
                guidance=models.INSTALL_HINT.get(model),
                extra={"model": model},
            )

    def require(self, model: str) -> None:
        """ModelUnavailable (503 with the install hint, not charged) unless `model` and
        every model it calls (models.REQUIRES) are ready in Triton."""
        self._require_front(model)

    def call(
        self,
        model: str,
        inputs: dict[str, np.ndarray],
        outputs: tuple[str, ...],
        timeout_s: float | None = None,
        fields: dict[str, str] | None = None,
    ) -> dict[str, np.ndarray]:
        """One inference on `model`: named numpy inputs (uint8, int32, int64, float32 or
        object for TYPE_STRING) in, the named outputs back. Triton's errors become
        Lightbox errors as for every stage (_map_error); a missing output is a
        LightboxError. The media pipelines (services/jobs/media) call their pipeline
        models through this.

        `fields` maps the model's input names to the API's field names: a request the
        model rejects (INVALID_ARGUMENT, its message starting with the input's name, as
        the pipeline models write them) is then InvalidParameter naming the API field,
        not an image problem."""
        tensors = [_infer_input(name, array) for name, array in inputs.items()]
        try:
            result = self._client.infer(
                model,
                tensors,
                outputs=[triton_grpc.InferRequestedOutput(n) for n in outputs],
                client_timeout=timeout_s or self.timeout_s,
            )
        except InferenceServerException as exc:
            if fields is not None:
                raise _map_field_error(exc, model, fields) from exc
            raise _map_error(exc, model) from exc
        found: dict[str, np.ndarray] = {}
        for name in outputs:
            value = result.as_numpy(name)
            if value is None:
                raise LightboxError(f"{model} returned no {name}")
            found[name] = value
        return found

    def _infer(self, model: str, inputs: dict[str, np.ndarray], output: str) -> np.ndarray:
        tensors = [_infer_input(name, array) for name, array in inputs.items()]
        try:
            result = self._client.infer(
                model,
                tensors,
                outputs=[triton_grpc.InferRequestedOutput(output)],
                client_timeout=self.timeout_s,
            )
        except InferenceServerException as exc:
            raise _map_error(exc, model) from exc
        out = result.as_numpy(output)
        if out is None:
            raise LightboxError(f"{model} returned no {output}")
        return out

    def generate(
        self,
        prompt: str,
        negative_prompt: str | None = None,
        width: int = 1024,
        height: int = 1024,
        steps: int | None = None,
        guidance_scale: float | None = None,
        seed: int | None = None,
        scheduler: str | None = None,
        timeout_s: float = SDXL_TIMEOUT_S,
    ) -> tuple[np.ndarray, str]:
        """Text to image with the `sdxl` pipeline model. Returns the image as uint8
        height x width x 3 RGB and the engine name ("sdxl").

        width and height must be multiples of 8 within the model's limits (64..2048,
        at most 1536 x 1536 pixels by default). None for steps, guidance_scale or
        scheduler means the model's configured default (config.pbtxt); scheduler is
        one of SDXL_SCHEDULERS. No negative_prompt means SDXL's zeroed negative
        embedding, which differs from an empty string. No seed means a random one.
        The same arguments and seed give the same image.

        Errors: ModelUnavailable when `sdxl` is not deployed (permanent: 503 with the
        install hint); InvalidParameter naming the field the model rejected;
        ServiceUnavailable when Triton or a component model is down or the call runs
        past timeout_s (transient: retry); LightboxError otherwise."""
        self._require(models.SDXL)
        inputs = _sdxl_inputs(prompt, negative_prompt, steps, guidance_scale, seed, scheduler)
        inputs += [
            _infer_input("WIDTH", np.array([width], dtype=np.int32)),
            _infer_input("HEIGHT", np.array([height], dtype=np.int32)),
        ]
        image = self._sdxl_call(models.SDXL, inputs, timeout_s)
        if image.shape != (height, width, 3):
            raise LightboxError(
                f"{models.SDXL} returned an image of {list(image.shape)}; "
                f"expected {[height, width, 3]}"
            )
        return image, "sdxl"

    def inpaint(
        self,
        rgb: np.ndarray,
        mask: np.ndarray,
        prompt: str,
        negative_prompt: str | None = None,
        steps: int | None = None,
        guidance_scale: float | None = None,
        seed: int | None = None,
        scheduler: str | None = None,
        strength: float | None = None,
        work_pixels: int = SDXL_WORK_PIXELS,
        timeout_s: float = SDXL_TIMEOUT_S,
    ) -> np.ndarray:
        """Regenerate the masked area of `rgb` with the `sdxl_inpaint` pipeline model.

        rgb: uint8 HxWx3 RGB, any size. mask: HxW, bool (True = generate) or uint8
        (>= 128 = generate). Returns uint8 HxWx3 RGB at the input's size.

        SDXL works at about one megapixel in multiples of 8, so the image is resized
        to at most `work_pixels` (aspect kept, sides rounded to multiples of 8, never
        below 64 px) for generation and the result resized back (Lanczos). Pixels
        outside the mask therefore come back close to, not equal to, the input (VAE
        round trip, resampling): callers that must keep them, like the subject in
        replace-background, paste them back from their own copy. strength 1 (the
        model's default) ignores what is under the mask; lower values start from it.
        The same inputs and seed give the same image. Other arguments and errors as
        `generate` (ModelUnavailable names `sdxl_inpaint`)."""
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise InvalidImage(f"inpaint needs uint8 HxWx3 RGB, got {rgb.dtype} {list(rgb.shape)}")
        if mask.shape != rgb.shape[:2] or mask.dtype not in (np.bool_, np.uint8):
            raise InvalidParameter(
                "mask",
                f"mask must be bool or uint8 HxW at the image's size {list(rgb.shape[:2])}, "
                f"got {mask.dtype} {list(mask.shape)}",
            )
        self._require(models.SDXL_INPAINT)
        height, width = rgb.shape[:2]
        work_w, work_h = sdxl_work_size(width, height, work_pixels)
        generate = mask if mask.dtype == np.bool_ else mask >= 128
        mask_u8 = np.where(generate, 255, 0).astype(np.uint8)
        if (work_w, work_h) != (width, height):
            shrink = work_w * work_h < width * height
            work_rgb = cv2.resize(
                rgb,
                (work_w, work_h),
                interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LANCZOS4,
            )
            work_mask = cv2.resize(mask_u8, (work_w, work_h), interpolation=cv2.INTER_NEAREST)
        else:
            work_rgb, work_mask = rgb, mask_u8
        inputs = _sdxl_inputs(prompt, negative_prompt, steps, guidance_scale, seed, scheduler)
        inputs += [
            _infer_input("INIT_IMAGE", np.ascontiguousarray(work_rgb)),
            _infer_input("MASK", np.ascontiguousarray(work_mask)),
        ]
        if strength is not None:
            inputs.append(_infer_input("STRENGTH", np.array([strength], dtype=np.float32)))
        image = self._sdxl_call(models.SDXL_INPAINT, inputs, timeout_s)
        if image.shape != (work_h, work_w, 3):
            raise LightboxError(
                f"{models.SDXL_INPAINT} returned an image of {list(image.shape)}; "
                f"expected {[work_h, work_w, 3]}"
            )
        if (work_w, work_h) != (width, height):
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LANCZOS4)
        return image

    def _require(self, model: str) -> None:
        if model not in self.ready_models():
            raise ModelUnavailable(
                f"the '{model}' model is not ready in Triton",
                guidance=models.INSTALL_HINT.get(model),
                extra={"model": model},
            )

    def _sdxl_call(
        self, model: str, inputs: list[triton_grpc.InferInput], timeout_s: float
    ) -> np.ndarray:
        try:
            result = self._client.infer(
                model,
                inputs,
                outputs=[triton_grpc.InferRequestedOutput("IMAGE")],
                client_timeout=timeout_s,
            )
        except InferenceServerException as exc:
            raise _map_sdxl_error(exc, model) from exc
        image = result.as_numpy("IMAGE")
        if image is None or image.dtype != np.uint8 or image.ndim != 3:
            got = "nothing" if image is None else f"{image.dtype} {list(image.shape)}"
            raise LightboxError(f"{model} returned {got} for IMAGE; expected uint8 HxWx3")
        return image


def _check_rgb(rgb: np.ndarray, what: str) -> None:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise InvalidImage(f"{what} needs uint8 HxWx3 RGB, got {rgb.dtype} {list(rgb.shape)}")


def _check_shape(out: np.ndarray, shape: tuple[int, ...], model: str, name: str) -> None:
    if out.dtype != np.uint8 or out.shape != tuple(shape):
        raise LightboxError(
            f"{model} returned {out.dtype} {list(out.shape)} for {name}; "
            f"expected uint8 {list(shape)}"
        )


def sdxl_work_size(width: int, height: int, max_pixels: int = SDXL_WORK_PIXELS) -> tuple[int, int]:
    """(w, h) to generate at for an image of width x height: the same aspect within
    max_pixels and a 2048 px side (the pipeline models' default limits), sides
    multiples of 8 and at least 64. Unchanged when the image already fits and its
    sides are multiples of 8."""
    scale = min(
        1.0, (max_pixels / float(width * height)) ** 0.5, _SDXL_MAX_SIDE / max(width, height)
    )

    def side(n: int) -> int:
        return max(_SDXL_MIN_SIDE, int(n * scale) // _SDXL_MULTIPLE * _SDXL_MULTIPLE)

    return side(width), side(height)


def _infer_input(name: str, array: np.ndarray) -> triton_grpc.InferInput:
    dtype = (
        "BYTES"
        if array.dtype == np.object_
        else {
            np.dtype(np.uint8): "UINT8",
            np.dtype(np.int32): "INT32",
            np.dtype(np.int64): "INT64",
            np.dtype(np.float32): "FP32",
        }[array.dtype]
    )
    tensor = triton_grpc.InferInput(name, list(array.shape), dtype)
    tensor.set_data_from_numpy(array)
    return tensor


def _sdxl_inputs(
    prompt: str,
    negative_prompt: str | None,
    steps: int | None,
    guidance_scale: float | None,
    seed: int | None,
    scheduler: str | None,
) -> list[triton_grpc.InferInput]:
    def text(value: str) -> np.ndarray:
        return np.array([value.encode("utf-8")], dtype=np.object_)

    inputs = [_infer_input("PROMPT", text(prompt))]
    if negative_prompt is not None:
        inputs.append(_infer_input("NEGATIVE_PROMPT", text(negative_prompt)))
    if steps is not None:
        inputs.append(_infer_input("STEPS", np.array([steps], dtype=np.int32)))
    if guidance_scale is not None:
        inputs.append(_infer_input("GUIDANCE_SCALE", np.array([guidance_scale], dtype=np.float32)))
    if seed is not None:
        inputs.append(_infer_input("SEED", np.array([seed], dtype=np.int64)))
    if scheduler is not None:
        inputs.append(_infer_input("SCHEDULER", text(scheduler)))
    return inputs


# "DURATION: 0.0 is outside 1..30": the input a pipeline model rejected, named first.
_INPUT_NAME = re.compile(r"\b([A-Z][A-Z0-9_]*): ")


def _map_field_error(
    exc: InferenceServerException, model: str, fields: dict[str, str]
) -> LightboxError:
    """_map_error, except that a rejected request names the API field of the input the
    model complained about; a rejection naming no known input is a bad request."""
    if _status_name(exc) != "INVALID_ARGUMENT":
        return _map_error(exc, model)
    message = exc.message() or str(exc)
    for name in _INPUT_NAME.findall(message):
        if name in fields:
            return InvalidParameter(fields[name], f"{model}: {message}")
    return LightboxError(f"{model} rejected the request: {message}", code="invalid_request")


def _map_sdxl_error(exc: InferenceServerException, model: str) -> LightboxError:
    """Like _map_error, except that a rejected request is a parameter the pipeline
    model names, not an image problem."""
    status = _status_name(exc)
    message = exc.message() or str(exc)
    if status == "INVALID_ARGUMENT":
        found = _SDXL_FIELD.search(message)
        if found:
            name = found.group(1)
            return InvalidParameter(_SDXL_API_FIELD.get(name, name.lower()), f"{model}: {message}")
        return InvalidParameter("prompt", f"{model} rejected the request: {message}")
    return _map_error(exc, model)
