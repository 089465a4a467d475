"""The two references an exported SDXL pipeline is held to, for tests, the benchmark
and operators checking an export:

- `run_diffusers`: diffusers' own StableDiffusionXL(Inpaint)Pipeline on the diffusers
  folder, torch on the CPU, with the sampler a scheduler name stands for;
- `ort_pipeline`: the pipeline model's code (model_repository/sdxl/1) driving the
  exported ONNX files through onnxruntime in this process, without Triton.

The Triton path (BLS over served components) must agree with both.
"""

from __future__ import annotations

import importlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from services.common.triton import MODEL_REPOSITORY

PIPELINE_CODE = MODEL_REPOSITORY / "sdxl" / "1"


def pipeline_module() -> ModuleType:
    """model_repository/sdxl/1/sdxl_pipeline.py, imported the way the Triton stub
    imports it (its folder on sys.path; the version folder is not a package)."""
    path = str(PIPELINE_CODE)
    if path not in sys.path:
        sys.path.insert(0, path)
    return importlib.import_module("sdxl_pipeline")


def diffusers_scheduler(name: str, base_config: dict[str, Any]) -> Any:
    """The diffusers scheduler a pipeline SCHEDULER name stands for, built from the
    checkpoint's scheduler config as an operator would."""
    from diffusers import (
        DPMSolverMultistepScheduler,
        EulerAncestralDiscreteScheduler,
        EulerDiscreteScheduler,
    )

    if name == "euler":
        return EulerDiscreteScheduler.from_config(base_config)
    if name == "euler_a":
        return EulerAncestralDiscreteScheduler.from_config(base_config)
    if name == "dpmpp_2m_karras":
        return DPMSolverMultistepScheduler.from_config(base_config, use_karras_sigmas=True)
    if name == "euler_trailing":
        return EulerDiscreteScheduler.from_config(base_config, timestep_spacing="trailing")
    if name == "euler_a_trailing":
        return EulerAncestralDiscreteScheduler.from_config(base_config, timestep_spacing="trailing")
    raise ValueError(f"unknown scheduler {name!r}")


@dataclass(frozen=True)
class Job:
    """One generation, in the terms both references take."""

    prompt: str
    negative_prompt: str | None
    width: int
    height: int
    steps: int
    guidance_scale: float
    seed: int
    scheduler: str
    strength: float = 1.0
    image: np.ndarray | None = None  # uint8 HxWx3, inpainting
    mask: np.ndarray | None = None  # uint8 HxW, >= 128 = generate


class DiffusersReference:
    """diffusers' pipeline for a diffusers-format folder, loaded once."""

    def __init__(self, folder: Path, inpaint: bool) -> None:
        from services.models.sdxl.tiny import load_diffusers_pipeline

        self.folder = Path(folder)
        self.pipe = load_diffusers_pipeline(self.folder, inpaint=inpaint)
        self.base_config = json.loads(
            (self.folder / "scheduler" / "scheduler_config.json").read_text()
        )
        self.inpaint = inpaint

    def __call__(self, job: Job) -> np.ndarray:
        """float32 HxWx3 in [0, 1] (output_type="np")."""
        import torch
        from PIL import Image

        self.pipe.scheduler = diffusers_scheduler(job.scheduler, self.base_config)
        kwargs: dict[str, Any] = {
            "prompt": job.prompt,
            "negative_prompt": job.negative_prompt,
            "num_inference_steps": job.steps,
            "guidance_scale": job.guidance_scale,
            "generator": torch.Generator("cpu").manual_seed(job.seed),
            "output_type": "np",
        }
        if self.inpaint:
            assert job.image is not None and job.mask is not None
            kwargs.update(
                image=Image.fromarray(job.image),
                mask_image=Image.fromarray(job.mask, mode="L"),
                height=job.image.shape[0],
                width=job.image.shape[1],
                strength=job.strength,
            )
        else:
            kwargs.update(height=job.height, width=job.width)
        with torch.no_grad():
            images = self.pipe(**kwargs).images
        return np.asarray(images[0], dtype=np.float32)


def run_diffusers(folder: Path, job: Job, inpaint: bool) -> np.ndarray:
    return DiffusersReference(folder, inpaint)(job)


class OrtComponents:
    """A ComponentCaller over the exported ONNX files, in process."""

    def __init__(self, repo: Path, components: dict[str, str], threads: int = 0) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.sessions = {
            key: ort.InferenceSession(
                str(repo / model / "1" / "model.onnx"),
                sess_options=options,
                providers=["CPUExecutionProvider"],
            )
            for key, model in components.items()
        }
        self.calls: dict[str, int] = dict.fromkeys(components, 0)

    def __call__(self, component: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        session = self.sessions[component]
        names = [o.name for o in session.get_outputs()]
        self.calls[component] += 1
        return dict(zip(names, session.run(names, inputs), strict=True))


def ort_pipeline(repo: Path, name: str, mode: str, threads: int = 0) -> tuple[Any, Any]:
    """(run, components): `run(job)` -> float32 HxWx3 in [0, 1] through the pipeline
    model's code over onnxruntime; `components` counts the calls per component."""
    sp = pipeline_module()
    checkpoint = sp.Checkpoint.load(repo / name / "checkpoint")
    params = sp.PipelineParams(mode=mode)
    components = OrtComponents(repo, checkpoint.components, threads)
    pipeline = sp.SdxlPipeline(checkpoint, params, components)

    def run(job: Job) -> np.ndarray:
        request = sp.GenerationRequest(
            prompt=job.prompt,
            negative_prompt=job.negative_prompt,
            width=None if mode == "inpaint" else job.width,
            height=None if mode == "inpaint" else job.height,
            steps=job.steps,
            guidance_scale=job.guidance_scale,
            seed=job.seed,
            scheduler=job.scheduler,
            strength=job.strength,
            image=job.image,
            mask=job.mask,
        )
        settled = sp.settle(request, params, checkpoint.vae_scale_factor, lambda: 0)
        return pipeline(settled)

    return run, components


@dataclass(frozen=True)
class ParityCase:
    """One row of the parity table: a scheduler in one mode.

    modes: txt2img (`sdxl`), inpaint (9-channel inpainting UNet, `sdxl_inpaint`),
    inpaint_4ch (a text-to-image checkpoint served for inpainting)."""

    scheduler: str
    mode: str
    steps: int
    guidance_scale: float
    strength: float = 1.0
    negative_prompt: str | None = "blurry, low quality"


# Full-schedule samplers with guidance; the trailing ones in the few-step setting of
# Lightning (4 steps) and Turbo (2 steps) checkpoints, which run without guidance.
_SCHEDULE = (
    ("euler", 8, 5.0),
    ("euler_a", 8, 5.0),
    ("dpmpp_2m_karras", 8, 5.0),
    ("euler_trailing", 4, 0.0),
    ("euler_a_trailing", 2, 0.0),
)
PARITY_CASES: tuple[ParityCase, ...] = tuple(
    ParityCase(name, mode, steps, guidance)
    for mode in ("txt2img", "inpaint", "inpaint_4ch")
    for name, steps, guidance in _SCHEDULE
) + (
    # No negative prompt: SDXL's zeroed negative embedding.
    ParityCase("euler", "txt2img", 8, 5.0, negative_prompt=None),
    # Partial strength: starts from the noised image and skips the first steps.
    ParityCase("euler", "inpaint", 8, 5.0, strength=0.6),
    ParityCase("dpmpp_2m_karras", "inpaint", 8, 5.0, strength=0.6),
    ParityCase("euler_a", "inpaint_4ch", 8, 5.0, strength=0.6),
)
PARITY_PROMPT = "a photo of a perfume bottle on a marble table, soft studio light"
PARITY_SEED = 1234


def product_scene(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic product shot and its background mask: a warm gradient backdrop with
    a rounded bottle shape in the middle; mask 255 (generate) everywhere but the
    bottle. uint8 HxWx3 and uint8 HxW."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    backdrop = np.stack([200 + 40 * y / height, 180 + 30 * x / width, 150 + 0 * x], axis=-1)
    cx, cy = width / 2, height * 0.55
    bottle = ((x - cx) / (width * 0.16)) ** 2 + ((y - cy) / (height * 0.32)) ** 2 <= 1
    image = np.where(bottle[..., None], np.array([40, 90, 160], np.float32), backdrop)
    return image.clip(0, 255).astype(np.uint8), np.where(bottle, 0, 255).astype(np.uint8)


def parity_job(case: ParityCase, width: int = 96, height: int = 64) -> Job:
    image = mask = None
    if case.mode != "txt2img":
        image, mask = product_scene(width, height)
    return Job(
        prompt=PARITY_PROMPT,
        negative_prompt=case.negative_prompt,
        width=width,
        height=height,
        steps=case.steps,
        guidance_scale=case.guidance_scale,
        seed=PARITY_SEED,
        scheduler=case.scheduler,
        strength=case.strength,
        image=image,
        mask=mask,
    )


def triton_inputs(job: Job, inpaint: bool) -> list[Any]:
    """KServe inputs of the pipeline models for `job`."""
    import tritonclient.grpc as triton_grpc

    def tensor(name: str, array: np.ndarray, dtype: str) -> Any:
        t = triton_grpc.InferInput(name, list(array.shape), dtype)
        t.set_data_from_numpy(array)
        return t

    def text(value: str) -> np.ndarray:
        return np.array([value.encode("utf-8")], dtype=np.object_)

    inputs = [
        tensor("PROMPT", text(job.prompt), "BYTES"),
        tensor("STEPS", np.array([job.steps], np.int32), "INT32"),
        tensor("GUIDANCE_SCALE", np.array([job.guidance_scale], np.float32), "FP32"),
        tensor("SEED", np.array([job.seed], np.int64), "INT64"),
        tensor("SCHEDULER", text(job.scheduler), "BYTES"),
    ]
    if job.negative_prompt is not None:
        inputs.append(tensor("NEGATIVE_PROMPT", text(job.negative_prompt), "BYTES"))
    if inpaint:
        assert job.image is not None and job.mask is not None
        inputs += [
            tensor("INIT_IMAGE", job.image, "UINT8"),
            tensor("MASK", job.mask, "UINT8"),
            tensor("STRENGTH", np.array([job.strength], np.float32), "FP32"),
        ]
    else:
        inputs += [
            tensor("WIDTH", np.array([job.width], np.int32), "INT32"),
            tensor("HEIGHT", np.array([job.height], np.int32), "INT32"),
        ]
    return inputs


def run_triton(client: Any, model: str, job: Job, inpaint: bool) -> tuple[np.ndarray, np.ndarray]:
    """(IMAGE_FLOAT float32 HxWx3, IMAGE uint8 HxWx3) from a pipeline model."""
    import tritonclient.grpc as triton_grpc

    result = client.infer(
        model,
        triton_inputs(job, inpaint),
        outputs=[
            triton_grpc.InferRequestedOutput("IMAGE_FLOAT"),
            triton_grpc.InferRequestedOutput("IMAGE"),
        ],
    )
    return result.as_numpy("IMAGE_FLOAT"), result.as_numpy("IMAGE")
