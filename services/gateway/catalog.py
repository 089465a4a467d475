"""GET /v1/models: what each operation costs, which engine serves each of its
stages right now, and whether the model behind every engine is deployed.

Prices come from the jobs service (the table in force), readiness from Triton's
HTTP API, presets from the compositor, the provenance and licences of models provisioned
from registry packages from the model repository's records (services/models/packages.py)
when the gateway can read it. Each answer is cached for a few seconds: the page is read
by people and dashboards, not on every request."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from lightbox.v1 import compositor_pb2, jobs_pb2
from pydantic import BaseModel, Field

from services.common import models
from services.common.errors import LightboxError
from services.gateway.context import Gateway

T = TypeVar("T")


@dataclass(frozen=True)
class Engine:
    engine: str  # the name jobs record in `engines`
    model: str | None  # Triton model; None: drawn by the compositor, always there
    # "production" (operator-installed weights, GPU), "provisioned" (weights from a
    # registry package, installed by `make run`), "embedded" (CPU, no weights)
    kind: str


@dataclass(frozen=True)
class Stage:
    stage: str
    engines: tuple[Engine, ...]  # best first: the first deployed one serves
    required: bool = True
    note: str = ""


_COMPOSITOR = Engine("compositor", None, "embedded")
_MATTING = Stage(
    "matting",
    (
        Engine("birefnet", models.MATTING_BIREFNET, "production"),
        Engine("isnet", models.MATTING_ISNET, "provisioned"),
        Engine("classical", models.MATTING_CLASSICAL, "embedded"),
    ),
    note="ISNet is provisioned from an npm package by `make run` (see `packaged`); the "
    "classical engine (GrabCut + closed-form matting) serves only when no learned model is "
    "deployed.",
)
_BACKGROUND = Stage(
    "background",
    (_COMPOSITOR,),
    note="Presets, solid colours, gradients and the procedural scenes are drawn on the CPU.",
)
_GENERATED = Stage(
    "generated-background",
    (Engine("sdxl-inpaint", models.SDXL_INPAINT, "production"),),
    required=False,
    note="Only for prompts the compositor cannot draw; without it they answer 503.",
)

STAGES: dict[str, tuple[Stage, ...]] = {
    "product-photo": (_MATTING, _BACKGROUND, _GENERATED, Stage("shadow", (_COMPOSITOR,))),
    "remove-background": (_MATTING,),
    "replace-background": (_MATTING, _BACKGROUND, _GENERATED),
    "generate": (
        Stage(
            "generate",
            (
                Engine("sdxl", models.SDXL, "production"),
                Engine("flux-schnell", models.FLUX_SCHNELL, "production"),
            ),
            note="`model` picks one; each needs its own weights.",
        ),
    ),
    "upscale": (
        Stage(
            "upscale",
            (
                Engine("realesrgan", models.UPSCALE_ESRGAN, "production"),
                Engine("rrdn", models.UPSCALE_RRDN, "provisioned"),
                Engine("lanczos", models.UPSCALE_LANCZOS, "embedded"),
            ),
            note="RRDN (ESRGAN-family, 4x; 2x is its result area-averaged) is provisioned from "
            "an npm package by `make run` (see `packaged`); Lanczos resampling plus an unsharp "
            "mask serves only when no super-resolution network is deployed, and the job says "
            "so.",
        ),
    ),
    "restore-face": (
        Stage("face-detection", (Engine("face-detector", models.FACE_DETECTOR, "production"),)),
        Stage("restore-face", (Engine("codeformer", models.FACE_RESTORE, "production"),)),
    ),
    "remove-object": (
        Stage(
            "inpaint",
            (
                Engine("lama", models.INPAINT_LAMA, "production"),
                Engine("telea", models.INPAINT_TELEA, "embedded"),
            ),
            note="The embedded engine is OpenCV's Telea inpainting.",
        ),
        Stage(
            "segmentation",
            (Engine("clipseg", models.SEGMENT_CLIPSEG, "production"),),
            required=False,
            note="Only when the object is named by a prompt instead of a mask.",
        ),
    ),
}


# PixelAPI's own paths of the non-image operations (the others are /v1/image/{name}).
MEDIA_PATHS = {
    "audio-generate": "/audio/generate",
    "video-generate": "/video/generate",
    "virtual-tryon": "/virtual-tryon",
}
STAGES.update(
    {
        "audio-generate": (
            Stage(
                "generate-audio",
                (Engine("musicgen", models.MUSICGEN, "production"),),
                note="MusicGen (text encoder, decoder, audio codec); until its weights are "
                "exported, requests answer 503 model_unavailable and cost nothing.",
            ),
        ),
        "video-generate": (
            Stage(
                "generate-video",
                (Engine("wan2.1-t2v", models.WAN_T2V, "production"),),
                note="WAN 2.1 text to video; 503 model_unavailable until its weights are exported.",
            ),
        ),
        "virtual-tryon": (
            Stage(
                "virtual-tryon",
                (Engine("catvton", models.CATVTON, "production"),),
                note="CatVTON; 503 model_unavailable until its weights are exported.",
            ),
        ),
    }
)


def _install_hint(model: str) -> str:
    return models.INSTALL_HINT.get(model, f"Install '{model}' with `lightbox models install`.")


class EngineOut(BaseModel):
    engine: str
    model: str | None = Field(..., description="Triton model behind it; null for the compositor.")
    kind: str = Field(
        ...,
        description="production (operator-installed weights), provisioned (weights from a "
        "registry package) or embedded (CPU, no weights).",
    )
    deployed: bool
    install: str | None = Field(None, description="How to deploy it, when it is not.")


class StageOut(BaseModel):
    stage: str
    required: bool = Field(..., description="False: only some requests use this stage.")
    engine: str | None = Field(..., description="The engine serving it now (null: none).")
    deployed: bool
    note: str
    engines: list[EngineOut]


class OperationOut(BaseModel):
    operation: str
    endpoint: str
    v2_endpoint: str
    credits: float
    description: str
    pipeline: list[str]
    estimated_seconds: int
    available: bool = Field(..., description="Every required stage has a deployed engine.")
    stages: list[StageOut]


class PresetOut(BaseModel):
    name: str
    description: str


class ModelOut(BaseModel):
    name: str
    deployed: bool
    install: str | None


class ProvenanceOut(BaseModel):
    package: str | None
    version: str | None
    integrity: str | None = Field(None, description="sha512 of the package tarball (npm SRI).")
    tarball_sha256: str | None
    source_sha256: str | None = Field(None, description="The model file as the package ships it.")
    sha256: str | None = Field(None, description="The installed (converted) file.")
    fetched_with: str | None
    fetched_at: str | None
    conversion: str | None
    licence: dict[str, str] | None


class LastProvisioningOut(BaseModel):
    status: str = Field(..., description="installed, skipped (opted out) or failed.")
    message: str
    at: str | None = None


class PackagedOut(BaseModel):
    name: str = Field(..., description="What `lightbox models fetch` takes.")
    model: str
    front: str
    package: str
    version: str
    licence: dict[str, str] = Field(..., description="The package's and the model's licences.")
    installed: bool
    deployed: bool = Field(..., description="Its front model is ready in Triton.")
    provenance: ProvenanceOut | None
    last_provisioning: LastProvisioningOut | None
    install: list[str] = Field(..., description="Commands that install it by hand (if missing).")


class CatalogBody(BaseModel):
    operations: list[OperationOut]
    presets: list[PresetOut]
    models: list[ModelOut]
    engines: dict[str, str | None] = Field(
        ..., description="The engine serving each model-backed stage now (null: none)."
    )
    packaged: list[PackagedOut] | None = Field(
        ...,
        description="Models provisioned from registry packages: provenance, licences, and "
        "why one is missing; null when the gateway cannot read the model repository.",
    )
    sources: dict[str, str] = Field(
        ..., description="triton/compositor: ok or unavailable (their parts are then partial)."
    )


class _Cached:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._at = 0.0
        self._value: Any = None

    async def get(self, load: Callable[[], Awaitable[T]]) -> T:
        if self._value is None or time.monotonic() - self._at > self.seconds:
            self._value = await load()
            self._at = time.monotonic()
        return self._value  # type: ignore[no-any-return]


class Catalog:
    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway
        self._operations = _Cached(10.0)
        self._presets = _Cached(30.0)
        self._ready = _Cached(2.0)

    async def ready_models(self) -> set[str] | None:
        """Names of the models Triton reports READY; None if Triton did not answer."""

        async def load() -> tuple[set[str] | None]:
            try:
                r = await self.gw.http.post(f"{self.gw.triton_url}/repository/index", json={})
                r.raise_for_status()
                return ({m["name"] for m in r.json() if m.get("state") == "READY"},)
            except (httpx.HTTPError, ValueError, KeyError, TypeError):
                return (None,)

        return (await self._ready.get(load))[0]

    async def _operation_table(self) -> list[jobs_pb2.OperationInfo]:
        async def load() -> list[jobs_pb2.OperationInfo]:
            resp = await self.gw.call(
                self.gw.clients.jobs.ListOperations, jobs_pb2.ListOperationsRequest()
            )
            return list(resp.operations)

        return await self._operations.get(load)

    async def _preset_list(self) -> list[PresetOut] | None:
        async def load() -> list[PresetOut]:
            resp = await self.gw.call(
                self.gw.clients.compositor.ListPresets, compositor_pb2.ListPresetsRequest()
            )
            return [PresetOut(name=p.name, description=p.description) for p in resp.presets]

        try:
            return await self._presets.get(load)
        except LightboxError:
            return None

    def _packaged(self, deployed: set[str]) -> list[PackagedOut] | None:
        repo = self.gw.settings.model_repository
        if repo is None or not repo.is_dir():
            return None
        from services.models.packages import packaged_state

        return [
            PackagedOut(
                name=p["name"],
                model=p["model"],
                front=p["front"],
                package=p["package"],
                version=p["version"],
                licence=p["licence"],
                installed=p["installed"],
                deployed=models.usable(p["front"], deployed),
                provenance=ProvenanceOut(**p["provenance"]) if p["provenance"] else None,
                last_provisioning=LastProvisioningOut(**p["last_provisioning"])
                if p["last_provisioning"]
                else None,
                install=p["by_hand"],
            )
            for p in packaged_state(repo)
        ]

    async def body(self) -> dict[str, Any]:
        table = await self._operation_table()
        ready = await self.ready_models()
        presets = await self._preset_list()
        deployed = ready or set()

        def engine_out(e: Engine) -> EngineOut:
            # A front model counts only with every model it calls (its ONNX weights).
            up = e.model is None or models.usable(e.model, deployed)
            return EngineOut(
                engine=e.engine,
                model=e.model,
                kind=e.kind,
                deployed=up,
                install=None if up or e.model is None else _install_hint(e.model),
            )

        # LIGHTBOX_MATTING_ENGINE pins one matting engine on the workers (and at submit):
        # that one serves or nothing does.
        pinned = getattr(self.gw.settings, "matting_engine", "auto")

        def choose(stage: Stage, outs: list[EngineOut]) -> EngineOut | None:
            if stage.stage == _MATTING.stage and pinned != "auto":
                return next((e for e in outs if e.engine == pinned and e.deployed), None)
            return next((e for e in outs if e.deployed), None)

        operations = []
        for op in table:
            stages = []
            for stage in STAGES.get(op.name, ()):
                engines = [engine_out(e) for e in stage.engines]
                serving = choose(stage, engines)
                stages.append(
                    StageOut(
                        stage=stage.stage,
                        required=stage.required,
                        engine=serving.engine if serving else None,
                        deployed=serving is not None,
                        note=stage.note,
                        engines=engines,
                    )
                )
            operations.append(
                OperationOut(
                    operation=op.name,
                    endpoint="/v1" + MEDIA_PATHS.get(op.name, f"/image/{op.name}"),
                    v2_endpoint=f"/v2/{op.name}",
                    credits=op.credits,
                    description=op.description,
                    pipeline=list(op.pipeline),
                    estimated_seconds=op.estimated_seconds,
                    available=all(s.deployed for s in stages if s.required),
                    stages=stages,
                )
            )
        known = sorted(
            {e.model for stages in STAGES.values() for s in stages for e in s.engines if e.model}
        )
        active: dict[str, str | None] = {}
        for stages in STAGES.values():
            for stage in stages:
                if any(e.model for e in stage.engines):
                    chosen = choose(stage, [engine_out(e) for e in stage.engines])
                    active[stage.stage] = chosen.engine if chosen else None
        body = CatalogBody(
            operations=operations,
            presets=presets or [],
            models=[
                ModelOut(
                    name=m,
                    deployed=models.usable(m, deployed),
                    install=None if models.usable(m, deployed) else _install_hint(m),
                )
                for m in known
            ],
            engines=active,
            packaged=self._packaged(deployed),
            sources={
                "triton": "ok" if ready is not None else "unavailable",
                "compositor": "ok" if presets is not None else "unavailable",
            },
        )
        return body.model_dump(mode="json")
