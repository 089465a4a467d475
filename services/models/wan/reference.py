"""The references an exported WAN pipeline is held to, for tests and operators checking
an export:

- `DiffusersReference`: diffusers' own WanPipeline on the diffusers folder, torch on
  the CPU, with the checkpoint's scheduler (UniPC, flow prediction);
- `local_pipeline`: the pipeline model's code (model_repository/wan_t2v/1) driving the
  exported ONNX files through onnxruntime and the VAE through torch in this process,
  without Triton.

The Triton path (BLS over served components) must agree with both.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from services.common.triton import MODEL_REPOSITORY

PIPELINE_CODE = MODEL_REPOSITORY / "wan_t2v" / "1"
PARITY_PROMPT = "a cat running on the beach at sunset, slow motion"
PARITY_NEGATIVE = "blurry, low quality, static"
PARITY_SEED = 1234


def pipeline_module() -> ModuleType:
    """model_repository/wan_t2v/1/wan_pipeline.py, imported as the Triton stub does
    (its folder on sys.path)."""
    path = str(PIPELINE_CODE)
    if path not in sys.path:
        sys.path.insert(0, path)
    return importlib.import_module("wan_pipeline")


@dataclass(frozen=True)
class Job:
    prompt: str
    negative_prompt: str | None
    width: int
    height: int
    num_frames: int
    steps: int
    guidance_scale: float
    seed: int


class DiffusersReference:
    """diffusers' WanPipeline for a diffusers-format folder, loaded once."""

    def __init__(self, folder: Path) -> None:
        from services.models.wan.tiny import load_diffusers_pipeline

        self.pipe = load_diffusers_pipeline(Path(folder))

    def __call__(self, job: Job) -> np.ndarray:
        """float32 [T, H, W, 3] in [0, 1] (output_type="np")."""
        import torch

        with torch.no_grad():
            frames = self.pipe(
                prompt=job.prompt,
                negative_prompt=job.negative_prompt,
                height=job.height,
                width=job.width,
                num_frames=job.num_frames,
                num_inference_steps=job.steps,
                guidance_scale=job.guidance_scale,
                generator=torch.Generator("cpu").manual_seed(job.seed),
                output_type="np",
            ).frames
        return np.asarray(frames[0], dtype=np.float32)


class LocalComponents:
    """A ComponentCaller over an exported repository, in process: onnxruntime for the
    ONNX components, diffusers' AutoencoderKLWan for the decoder."""

    def __init__(self, repo: Path, components: dict[str, str]) -> None:
        import onnxruntime as ort
        from diffusers import AutoencoderKLWan

        from services.models.wan.tiny import load_model

        self.sessions = {
            key: ort.InferenceSession(
                str(repo / components[key] / "1" / "model.onnx"),
                providers=["CPUExecutionProvider"],
            )
            for key in ("text_encoder", "transformer")
        }
        self.vae = load_model(AutoencoderKLWan, repo / components["vae_decoder"] / "1" / "vae")

    def __call__(self, component: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if component == "vae_decoder":
            import torch

            with torch.no_grad():
                video = self.vae.decode(torch.from_numpy(inputs["latent"]), return_dict=False)[0]
            return {"video": video.numpy()}
        session = self.sessions[component]
        names = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run(names, inputs), strict=True))


def local_pipeline(repo: Path, name: str = "wan_t2v") -> Any:
    """`run(job)` -> float32 [T, H, W, 3] through the pipeline model's code."""
    wp = pipeline_module()
    checkpoint = wp.Checkpoint.load(repo / name / "checkpoint")
    pipeline = wp.WanPipeline(checkpoint, LocalComponents(repo, checkpoint.components))

    def run(job: Job) -> np.ndarray:
        request = wp.VideoRequest(
            prompt=job.prompt,
            negative_prompt=job.negative_prompt,
            width=job.width,
            height=job.height,
            num_frames=job.num_frames,
            steps=job.steps,
            guidance_scale=job.guidance_scale,
            seed=job.seed,
        )
        return pipeline(wp.settle(request, wp.PipelineParams(), checkpoint, lambda: 0))

    return run


def triton_inputs(job: Job) -> list[Any]:
    """KServe inputs of the wan_t2v pipeline model for `job`."""
    import tritonclient.grpc as triton_grpc

    def tensor(name: str, array: np.ndarray, dtype: str) -> Any:
        t = triton_grpc.InferInput(name, list(array.shape), dtype)
        t.set_data_from_numpy(array)
        return t

    def text(value: str) -> np.ndarray:
        return np.array([value.encode("utf-8")], dtype=np.object_)

    inputs = [
        tensor("PROMPT", text(job.prompt), "BYTES"),
        tensor("WIDTH", np.array([job.width], np.int32), "INT32"),
        tensor("HEIGHT", np.array([job.height], np.int32), "INT32"),
        tensor("NUM_FRAMES", np.array([job.num_frames], np.int32), "INT32"),
        tensor("STEPS", np.array([job.steps], np.int32), "INT32"),
        tensor("GUIDANCE_SCALE", np.array([job.guidance_scale], np.float32), "FP32"),
        tensor("SEED", np.array([job.seed], np.int64), "INT64"),
    ]
    if job.negative_prompt is not None:
        inputs.append(tensor("NEGATIVE_PROMPT", text(job.negative_prompt), "BYTES"))
    return inputs


def run_triton(client: Any, job: Job, model: str = "wan_t2v") -> tuple[np.ndarray, np.ndarray]:
    """(VIDEO_FLOAT float32 [T, H, W, 3], VIDEO uint8 [T, H, W, 3])."""
    import tritonclient.grpc as triton_grpc

    result = client.infer(
        model,
        triton_inputs(job),
        outputs=[
            triton_grpc.InferRequestedOutput("VIDEO_FLOAT"),
            triton_grpc.InferRequestedOutput("VIDEO"),
        ],
    )
    return result.as_numpy("VIDEO_FLOAT"), result.as_numpy("VIDEO")
