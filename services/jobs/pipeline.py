"""What each operation does, stage by stage, on one claimed job.

Pixels move between stages raw (uint8 RGB/RGBA); the compositor encodes once at
the end. Every stage reports itself so the job shows where it is, and every
engine that served a stage is recorded on the job."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import grpc
import numpy as np
from lightbox.v1 import compositor_pb2, compositor_pb2_grpc

from services.common import compliance, imageio, models
from services.common.blobstore import LocalBlobStore
from services.common.errors import InvalidParameter, LightboxError
from services.common.grpcutil import error_from_rpc
from services.common.qa_thresholds import QaThresholds
from services.common.rawimage import from_proto, to_proto
from services.jobs.engines import TritonEngines
from services.jobs.media import music, tryon, video
from services.jobs.qa_review import Evidence, failed_grade, grade
from services.jobs.store import JobRecord

log = logging.getLogger(__name__)

# An input alpha counts as a real cut-out only if this share of pixels is see-through.
_INPUT_ALPHA_MIN_TRANSPARENT = 0.01
# How far (share of the canvas's long side) the generated scene keeps away from the
# subject's edge: the seam is then the subject's own anti-aliased alpha, not the model's.
_SCENE_MASK_DILATION = 0.003


@dataclass
class Result:
    data: bytes
    format: str
    width: int
    height: int
    engines: dict[str, str] = field(default_factory=dict)
    pipeline: list[str] = field(default_factory=list)
    # The job's `qa` object (services/jobs/qa_review.py).
    qa: dict[str, Any] | None = None

    @classmethod
    def of(
        cls, out: compositor_pb2.EncodedImage, engines: dict[str, str], pipeline: list[str]
    ) -> Result:
        return cls(out.data, out.format, out.width, out.height, engines, pipeline)


def _size(value: Any) -> tuple[int, int]:
    if not value:
        return 0, 0
    w, h = str(value).lower().split("x")
    return int(w), int(h)


class Pipeline:
    def __init__(
        self,
        blobs: LocalBlobStore,
        engines: TritonEngines,
        compositor: compositor_pb2_grpc.CompositorServiceStub,
        compositor_timeout_s: float,
        qa_thresholds: QaThresholds | None = None,
    ) -> None:
        self.blobs = blobs
        self.engines = engines
        self.compositor = compositor
        self.compositor_timeout_s = compositor_timeout_s
        self.qa_thresholds = qa_thresholds or QaThresholds()

    def run(self, job: JobRecord, stage: Callable[[str], None]) -> Result:
        runner = {
            "remove-background": self._remove_background,
            "product-photo": self._product_photo,
            "replace-background": self._replace_background,
            "generate": self._generate,
            "upscale": self._upscale,
            "remove-object": self._remove_object,
            "restore-face": self._restore_face,
            "audio-generate": self._audio_generate,
            "video-generate": self._video_generate,
            "virtual-tryon": self._virtual_tryon,
        }.get(job.operation)
        if runner is None:
            raise InvalidParameter("operation", f"No pipeline for {job.operation!r}.")
        return runner(job, stage)

    def _graded(
        self, result: Result, job: JobRecord, stage: Callable[[str], None], **evidence: Any
    ) -> Result:
        """`result` with its `qa` object. Grading never fails the job: if it cannot
        run, the job says so and goes to review (qa_failed)."""
        stage("qa")
        try:
            limits = self.qa_thresholds.merged(job.params.get("qa_thresholds"))
            result.qa = grade(
                Evidence(
                    operation=job.operation,
                    params=job.params,
                    output=result.data,
                    format=result.format,
                    **evidence,
                ),
                limits,
            )
        except Exception as exc:
            log.exception("image QA of %s failed", job.id)
            result.qa = failed_grade(str(exc) or type(exc).__name__)
        return result

    # -- stages -------------------------------------------------------------------------

    def _decode(self, job: JobRecord, stage: Callable[[str], None]) -> tuple[np.ndarray, Any]:
        stage("decode")
        return imageio.decode(self.blobs.get(job.inputs["image"]))

    def _matte(
        self, rgb: np.ndarray, alpha: np.ndarray | None, stage: Callable[[str], None]
    ) -> tuple[np.ndarray, dict[str, str]]:
        """The matte and the engines entries that say what made it: {"matting": name},
        plus "matting_fallback" with the reason when the classical engine served only
        because no learned model is installed."""
        stage("remove-background")
        if alpha is not None and (alpha < 255).mean() >= _INPUT_ALPHA_MIN_TRANSPARENT:
            return alpha, {"matting": "input-alpha"}
        alpha, engine = self.engines.matting(rgb)
        engines = {"matting": engine}
        note = self.engines.matting_fallback_note(engine)
        if note:
            engines["matting_fallback"] = note
        return alpha, engines

    def _call(self, method: str, request: Any) -> Any:
        try:
            return getattr(self.compositor, method)(request, timeout=self.compositor_timeout_s)
        except grpc.RpcError as err:
            raise error_from_rpc(err) from None

    def _remove_background(self, job: JobRecord, stage: Callable[[str], None]) -> Result:
        p = job.params
        rgb, alpha_in = self._decode(job, stage)
        alpha, engines = self._matte(rgb, alpha_in, stage)
        stage("encode")
        out = self._call(
            "Cutout",
            compositor_pb2.CutoutRequest(
                subject=to_proto(np.dstack([rgb, alpha])),
                crop=bool(p.get("crop", False)),
                bg_color=str(p.get("bg_color") or ""),
                mask_only=bool(p.get("mask_only", False)),
                encode=_encode_spec(p, "png"),
                qa_layers=True,
            ),
        )
        return self._graded(
            Result.of(out, engines, ["remove-background"]),
            job,
            stage,
            source_size=(rgb.shape[1], rgb.shape[0]),
            source_alpha=alpha,
            source_rgb=None if engines["matting"] == "input-alpha" else rgb,
            canvas_alpha=_layer(out, "alpha"),
        )

    def _compose(
        self,
        job: JobRecord,
        stage: Callable[[str], None],
        *,
        background: compositor_pb2.BackgroundSpec,
        layout: compositor_pb2.Layout,
        shadow: str,
        preserve_shadow: bool,
        pipeline: list[str],
    ) -> Result:
        p = job.params
        rgb, alpha_in = self._decode(job, stage)
        alpha, engines = self._matte(rgb, alpha_in, stage)
        if p.get("compliance") and not p.get("output_size"):
            _compliance_canvas(layout, compliance.get(str(p["compliance"])), alpha, p)
        detail_transfer = bool(p.get("detail_transfer", False))
        request = compositor_pb2.ComposeRequest(
            subject=to_proto(np.dstack([rgb, alpha])),
            background=background,
            layout=layout,
            shadow=compositor_pb2.ShadowSpec(type=shadow),
            encode=_encode_spec(p, "jpeg"),
            preserve_shadow=preserve_shadow,
            detail_transfer=detail_transfer,
            detailer_mode=str(p.get("detailer_mode") or "soft_light"),
            qa_layers=True,
        )
        if preserve_shadow or detail_transfer:
            request.source.CopyFrom(to_proto(rgb))
        if not self._drawable(background):
            request, engines["background"] = self._generate_scene(request, p, stage)
            pipeline = ["generate-background" if s == "replace-background" else s for s in pipeline]
        stage("compose")
        out = self._call("Compose", request)
        engines.setdefault("background", out.background_engine)
        return self._graded(
            Result.of(out, engines, pipeline),
            job,
            stage,
            source_size=(rgb.shape[1], rgb.shape[0]),
            source_alpha=alpha,
            source_rgb=None if engines["matting"] == "input-alpha" else rgb,
            canvas_alpha=_layer(out, "alpha"),
            shadow=_layer(out, "shadow"),
            background=out.background_engine,
        )

    def _drawable(self, background: compositor_pb2.BackgroundSpec) -> bool:
        resolved = self._call(
            "ResolveBackground",
            compositor_pb2.ResolveBackgroundRequest(
                preset=background.preset, prompt=background.prompt
            ),
        )
        return resolved.drawable

    def _generate_scene(
        self, request: compositor_pb2.ComposeRequest, p: dict, stage: Callable[[str], None]
    ) -> tuple[compositor_pb2.ComposeRequest, str]:
        """A scene generated around the subject, and the request that composes the
        subject onto it. The subject (dilated) is kept out of the generated area, and
        the final compose lays the subject's own pixels over the scene in KEEP mode,
        so its opaque pixels stay bit-for-bit the input's."""
        stage("layout")
        layout_request = compositor_pb2.ComposeRequest()
        layout_request.CopyFrom(request)
        layout_request.background.CopyFrom(compositor_pb2.BackgroundSpec(preset="white-studio"))
        layout_request.ClearField("source")
        placed = from_proto(self._call("Place", layout_request), "placed")
        alpha = placed[:, :, 3]
        radius = max(2, round(max(alpha.shape) * _SCENE_MASK_DILATION))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        keep_out = cv2.dilate((alpha > 0).astype(np.uint8), kernel) > 0
        stage("generate-background")
        scene = self.engines.inpaint(
            _extend_edges(placed, radius),
            ~keep_out,
            prompt=str(p.get("background_prompt") or p.get("prompt") or ""),
            negative_prompt=p.get("negative_prompt") or None,
            steps=int(p["steps"]) if p.get("steps") else None,
            guidance_scale=float(p["guidance_scale"]) if p.get("guidance_scale") else None,
            seed=int(p["seed"]) if p.get("seed") is not None else None,
        )
        final = compositor_pb2.ComposeRequest()
        final.CopyFrom(request)
        final.subject.CopyFrom(to_proto(placed))
        final.background.CopyFrom(compositor_pb2.BackgroundSpec(image=to_proto(scene)))
        final.layout.CopyFrom(compositor_pb2.Layout(mode=compositor_pb2.LAYOUT_MODE_KEEP))
        # Place already cleaned the edge colours of the laid-out subject.
        final.disable_decontamination = True
        if request.layout.mode != compositor_pb2.LAYOUT_MODE_KEEP:
            # The source photo is at the input's size, not the canvas's.
            final.ClearField("source")
            final.preserve_shadow = False
        return final, models.SDXL_INPAINT

    def _generate(self, job: JobRecord, stage: Callable[[str], None]) -> Result:
        p = job.params
        stage("generate")
        rgb, engine = self.engines.generate(
            str(p.get("prompt") or ""),
            negative_prompt=p.get("negative_prompt") or None,
            width=int(p.get("width") or 1024),
            height=int(p.get("height") or 1024),
            steps=int(p["steps"]) if p.get("steps") else None,
            guidance_scale=float(p["guidance_scale"]) if p.get("guidance_scale") else None,
            seed=int(p["seed"]) if p.get("seed") is not None else None,
        )
        stage("encode")
        result = Result.of(self._encode_pixels(rgb, p, "png"), {"generate": engine}, ["generate"])
        return self._graded(result, job, stage, source_size=None)

    def _product_photo(self, job: JobRecord, stage: Callable[[str], None]) -> Result:
        p = job.params
        width, height = _size(p.get("output_size"))
        preset = str(p.get("preset") or "white-studio")
        shadow = str(p.get("shadow_type") or "soft")
        pipeline = ["remove-background", "replace-background"]
        if shadow != "none":
            pipeline.append("add-shadow")
        return self._compose(
            job,
            stage,
            background=compositor_pb2.BackgroundSpec(
                preset="" if preset == "custom" else preset,
                prompt=str(p.get("background_prompt") or ""),
                seed=int(p.get("seed") or 0),
            ),
            layout=compositor_pb2.Layout(
                mode=compositor_pb2.LAYOUT_MODE_PLACE,
                aspect_ratio=str(p.get("aspect_ratio") or ""),
                output_width=width,
                output_height=height,
                megapixel=float(p.get("megapixel") or 0),
                padding=float(p.get("padding") or 0),
                scale=float(p.get("scale") or 0),
                x=float(p.get("x", -1)),
                y=float(p.get("y", -1)),
            ),
            shadow=shadow,
            preserve_shadow=False,
            pipeline=pipeline,
        )

    def _replace_background(self, job: JobRecord, stage: Callable[[str], None]) -> Result:
        p = job.params
        return self._compose(
            job,
            stage,
            background=compositor_pb2.BackgroundSpec(
                prompt=str(p.get("prompt") or ""), seed=int(p.get("seed") or 0)
            ),
            layout=compositor_pb2.Layout(mode=compositor_pb2.LAYOUT_MODE_KEEP),
            shadow="none",
            preserve_shadow=bool(p.get("preserve_shadow", True)),
            pipeline=["remove-background", "replace-background"],
        )

    def _encode_pixels(
        self, pixels: np.ndarray, p: dict[str, Any], default_format: str
    ) -> compositor_pb2.EncodedImage:
        return self._call(
            "Encode",
            compositor_pb2.EncodeRequest(
                image=to_proto(pixels),
                encode=_encode_spec(p, default_format),
            ),
        )

    def _upscale(self, job: JobRecord, stage: Callable[[str], None]) -> Result:
        p = job.params
        scale = int(p.get("scale") or 4)
        rgb, alpha = self._decode(job, stage)
        stage("upscale")
        out, engine = self.engines.upscale(rgb, scale)
        engines = {"upscale": engine}
        note = self.engines.upscale_fallback_note(engine, scale)
        if note:
            engines["upscale_fallback"] = note
        if alpha is not None:
            # No model draws alpha: a cut-out's edge is resampled to stay on its pixels.
            size = (out.shape[1], out.shape[0])
            out = np.dstack([out, cv2.resize(alpha, size, interpolation=cv2.INTER_LANCZOS4)])
        stage("encode")
        encoded = self._encode_pixels(out, p, "png")
        result = Result.of(encoded, engines, ["upscale"])
        return self._graded(result, job, stage, source_size=(rgb.shape[1], rgb.shape[0]))

    def _remove_object(self, job: JobRecord, stage: Callable[[str], None]) -> Result:
        """Erase what the uploaded mask marks (job.inputs["mask"], white = remove) or,
        without a mask, what params["prompt"] names. With a mask the prompt is not
        used, so a masked request never needs CLIPSeg (see Availability.check)."""
        p = job.params
        rgb, alpha = self._decode(job, stage)
        mask = None
        if job.inputs.get("mask"):
            mask = _mask_from(self.blobs.get(job.inputs["mask"]), rgb.shape[:2])
        stage("remove-object")
        out, engines = self.engines.remove_object(rgb, mask, str(p.get("prompt") or "") or None)
        if alpha is not None:
            out = np.dstack([out, alpha])
        stage("encode")
        encoded = self._encode_pixels(out, p, "png")
        result = Result.of(encoded, engines, ["remove-object"])
        return self._graded(result, job, stage, source_size=(rgb.shape[1], rgb.shape[0]))

    def _restore_face(self, job: JobRecord, stage: Callable[[str], None]) -> Result:
        p = job.params
        fidelity = float(p["fidelity"]) if p.get("fidelity") is not None else 0.5
        rgb, alpha = self._decode(job, stage)
        stage("restore-face")
        out, _faces = self.engines.restore_faces(rgb, fidelity)
        if alpha is not None:
            out = np.dstack([out, alpha])
        stage("encode")
        encoded = self._encode_pixels(out, p, "png")
        result = Result.of(
            encoded,
            {"face-detection": "face-detector", "restore-face": "codeformer"},
            ["restore-face"],
        )
        return self._graded(result, job, stage, source_size=(rgb.shape[1], rgb.shape[0]))

    # -- PixelAPI's audio, video and try-on (services/jobs/media) ----------------------

    def _audio_generate(self, job: JobRecord, stage: Callable[[str], None]) -> Result:
        """Text to music; the WAV is the output (no width/height, no image QA)."""
        p = job.params
        stage("generate-audio")
        audio, engine = music.generate_music(
            self.engines,
            str(p.get("prompt") or ""),
            float(p.get("duration") or 15),
            seed=_int_or_none(p.get("seed")),
            guidance_scale=_float_or_none(p.get("guidance_scale")),
        )
        stage("encode")
        return Result(music.encode_wav(audio), "wav", 0, 0, {"music": engine}, ["generate-audio"])

    def _video_generate(self, job: JobRecord, stage: Callable[[str], None]) -> Result:
        """Text to video at the requested resolution; the MP4 is the output."""
        p = job.params
        resolution = str(p.get("resolution") or "480p")
        if resolution not in video.RESOLUTIONS:
            raise InvalidParameter("resolution", f"Unknown resolution {resolution!r}.")
        width, height = video.RESOLUTIONS[resolution]
        stage("generate-video")
        frames, engine = video.generate_video(
            self.engines,
            str(p.get("prompt") or ""),
            width=width,
            height=height,
            duration_s=float(p.get("duration") or 3),
            negative_prompt=p.get("negative_prompt") or None,
            seed=_int_or_none(p.get("seed")),
            steps=_int_or_none(p.get("steps")),
            guidance_scale=_float_or_none(p.get("guidance_scale")),
        )
        stage("encode")
        data = video.encode_mp4(frames, video.FPS)
        height_out, width_out = int(frames.shape[1]), int(frames.shape[2])
        return Result(data, "mp4", width_out, height_out, {"video": engine}, ["generate-video"])

    def _virtual_tryon(self, job: JobRecord, stage: Callable[[str], None]) -> Result:
        """The person photo dressed in the garment, at the person photo's size, encoded
        once as PNG by the compositor and graded like every image (resolution scores)."""
        p = job.params
        stage("decode")
        person, _ = imageio.decode(self.blobs.get(job.inputs["person"]))
        garment, _ = imageio.decode(self.blobs.get(job.inputs["garment"]))
        stage("virtual-tryon")
        out, engines = tryon.try_on(
            self.engines,
            person,
            garment,
            str(p.get("category") or ""),
            seed=_int_or_none(p.get("seed")),
            steps=_int_or_none(p.get("steps")),
            guidance_scale=_float_or_none(p.get("guidance_scale")),
        )
        stage("encode")
        encoded = self._encode_pixels(out, {"output_format": "png"}, "png")
        result = Result.of(encoded, dict(engines), ["virtual-tryon"])
        return self._graded(result, job, stage, source_size=(person.shape[1], person.shape[0]))


def _int_or_none(value: Any) -> int | None:
    return None if value is None or value == "" else int(value)


def _float_or_none(value: Any) -> float | None:
    return None if value is None or value == "" else float(value)


def _layer(out: compositor_pb2.EncodedImage, name: str) -> np.ndarray | None:
    """One QA layer of a compositor answer (uint8 HxW), None when it sent none."""
    return from_proto(getattr(out, name), name) if out.HasField(name) else None


def _compliance_canvas(
    layout: compositor_pb2.Layout,
    preset: compliance.CompliancePreset,
    alpha: np.ndarray,
    p: dict[str, Any],
) -> None:
    """Size the canvas of a compliance preset from the subject's own pixels (in
    place), so that the product is not enlarged where the source allows."""
    x, y, w, h = cv2.boundingRect(np.ascontiguousarray((alpha > 8).astype(np.uint8)))
    aspect = 1.0
    if p.get("aspect_ratio"):
        aw, ah = str(p["aspect_ratio"]).split(":")
        aspect = int(aw) / int(ah)
    width, height = compliance.canvas_size(preset, max(w, h, 1), aspect)
    layout.output_width, layout.output_height = width, height


def _encode_spec(p: dict[str, Any], default_format: str) -> compositor_pb2.EncodeSpec:
    """The job's output_format / image_quality, as the compositor's encode spec."""
    return compositor_pb2.EncodeSpec(
        format=str(p.get("output_format") or default_format),
        quality=int(p.get("image_quality") or 0),
    )


def _mask_from(data: bytes, shape: tuple[int, ...]) -> np.ndarray:
    """The uploaded remove-object mask as uint8 HxW, 255 = remove: white (luma >= 128)
    pixels, and only where the file is opaque (a transparent PNG with white strokes
    marks the strokes)."""
    rgb, alpha = imageio.decode(data)
    if rgb.shape[:2] != tuple(shape[:2]):
        raise InvalidParameter(
            "mask",
            f"The mask is {rgb.shape[1]}x{rgb.shape[0]}; the image is {shape[1]}x{shape[0]}.",
            guidance="Send a mask of the image's size: white = remove, black = keep.",
        )
    luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.uint16)
    if alpha is not None:
        luma = luma * alpha.astype(np.uint16) // 255
    mask = np.where(luma >= 128, 255, 0).astype(np.uint8)
    if not mask.any():
        raise InvalidParameter(
            "mask",
            "The mask marks nothing to remove.",
            guidance="Paint what to remove in white on black.",
        )
    return mask


def _extend_edges(rgba: np.ndarray, radius: int) -> np.ndarray:
    """RGB uint8 where transparent pixels take the colour of the nearby subject
    (a normalised blur of premultiplied colour). The thin un-generated ring around
    the subject then matches the subject's own edge, so no dark or grey halo shows
    through its soft alpha in the final composite."""
    a = rgba[:, :, 3:4].astype(np.float32) / 255
    rgb = rgba[:, :, :3].astype(np.float32)
    sigma = 2.0 * radius
    spread_rgb = cv2.GaussianBlur(rgb * a, (0, 0), sigma)
    spread_a = cv2.GaussianBlur(a[:, :, 0], (0, 0), sigma)[:, :, None]
    fill = np.where(spread_a > 1e-4, spread_rgb / np.maximum(spread_a, 1e-4), 127.0)
    return np.clip(rgb * a + fill * (1 - a), 0, 255).round().astype(np.uint8)


def is_transient(err: BaseException) -> bool:
    """Whether a stage error is worth retrying (dependency down, timeout)."""
    if isinstance(err, LightboxError):
        return err.code in ("service_unavailable", "overloaded", "internal_error")
    return True


def elapsed_ms(start: float) -> int:
    return int((time.monotonic() - start) * 1000)
