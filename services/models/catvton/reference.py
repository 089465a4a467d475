"""The torch reference an exported CatVTON pipeline is held to: CatVTON's sampling
written plainly in torch over the diffusers modules of the checkpoint folder (the UNet
with the attention merged and cross-attention skipped, the VAE) and diffusers' own
DDIMScheduler built from the folder's scheduler config, on the CPU in float32, with a
seeded torch.Generator for every draw (the initial latents, then one per DDIM step
when eta > 0).

It works on photos already fitted into the working size (the pipeline model's
`prepare` does the fitting, plain image resizing shared by both) and returns the
decoded person half, float32 HxWx3 in [0, 1]; the served model returns the same as
IMAGE_FLOAT.

Also here: `pipeline_module()`, the served pipeline's code imported the way the Triton
stub imports it, and `ort_pipeline`, that code over the exported ONNX files through
onnxruntime in this process.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from services.common.triton import MODEL_REPOSITORY

PIPELINE_CODE = MODEL_REPOSITORY / "catvton" / "1"


def pipeline_module() -> ModuleType:
    """model_repository/catvton/1/catvton_pipeline.py (its folder on sys.path)."""
    path = str(PIPELINE_CODE)
    if path not in sys.path:
        sys.path.insert(0, path)
    return importlib.import_module("catvton_pipeline")


class CatvtonReference:
    """CatVTON in torch for one checkpoint folder, loaded once."""

    def __init__(self, folder: Path, version: str = "mix", eta: float = 1.0) -> None:
        from diffusers import DDIMScheduler

        from services.models.catvton.export import load_catvton

        loaded = load_catvton(Path(folder), version)
        self.unet, self.vae = loaded.unet, loaded.vae
        self.scheduler = DDIMScheduler.from_pretrained(Path(folder) / "scheduler")
        self.eta = eta

    @staticmethod
    def _image(array: np.ndarray) -> Any:
        import torch

        return torch.from_numpy(array.astype(np.float32)).permute(2, 0, 1)[None] / 127.5 - 1.0

    def __call__(
        self,
        person: np.ndarray,
        garment: np.ndarray,
        mask: np.ndarray,
        steps: int,
        guidance_scale: float,
        seed: int,
    ) -> np.ndarray:
        """person, garment uint8 HxWx3 and mask uint8 HxW at the working size."""
        import torch

        concat_dim = -2
        sf = self.vae.config.scaling_factor
        with torch.no_grad():
            image = self._image(person)
            cloth = self._image(garment)
            generate = (torch.from_numpy(mask.astype(np.float32) / 255.0) >= 0.5).float()
            generate = generate[None, None]
            masked = image * (generate < 0.5)
            masked_latent = self.vae.encode(masked).latent_dist.mean * sf
            cloth_latent = self.vae.encode(cloth).latent_dist.mean * sf
            mask_latent = torch.nn.functional.interpolate(
                generate, size=masked_latent.shape[-2:], mode="nearest"
            )
            masked_cat = torch.cat([masked_latent, cloth_latent], dim=concat_dim)
            mask_cat = torch.cat([mask_latent, torch.zeros_like(mask_latent)], dim=concat_dim)
            generator = torch.Generator("cpu").manual_seed(seed)
            latents = torch.randn(masked_cat.shape, generator=generator)
            self.scheduler.set_timesteps(steps)
            latents = latents * self.scheduler.init_noise_sigma
            guidance = guidance_scale > 1.0
            if guidance:
                uncond = torch.cat([masked_latent, torch.zeros_like(cloth_latent)], dim=concat_dim)
                masked_cat = torch.cat([uncond, masked_cat])
                mask_cat = torch.cat([mask_cat] * 2)
            for t in self.scheduler.timesteps:
                noisy = torch.cat([latents] * 2) if guidance else latents
                noisy = self.scheduler.scale_model_input(noisy, t)
                sample = torch.cat([noisy, mask_cat, masked_cat], dim=1)
                noise_pred = self.unet(sample, t, encoder_hidden_states=None, return_dict=False)[0]
                if guidance:
                    uncond_pred, cond_pred = noise_pred.chunk(2)
                    noise_pred = uncond_pred + guidance_scale * (cond_pred - uncond_pred)
                latents = self.scheduler.step(
                    noise_pred, t, latents, eta=self.eta, generator=generator
                ).prev_sample
            person_latent = latents.split(latents.shape[concat_dim] // 2, dim=concat_dim)[0]
            decoded = self.vae.decode(person_latent / sf).sample
            out = (decoded / 2 + 0.5).clamp(0, 1)
        return out[0].permute(1, 2, 0).numpy().astype(np.float32)


class OrtComponents:
    """A ComponentCaller over the exported ONNX files, in process."""

    def __init__(self, repo: Path, components: dict[str, str], threads: int = 1) -> None:
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

    def __call__(self, component: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        session = self.sessions[component]
        names = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run(names, inputs), strict=True))


def ort_pipeline(repo: Path, name: str = "catvton", threads: int = 1) -> Any:
    """The served pipeline's code over the exported ONNX files, with the pipeline
    model's parameters from `repo/<name>/config.pbtxt`."""
    from services.models.catvton.configs import work_size

    cp = pipeline_module()
    checkpoint = cp.Checkpoint.load(repo / name / "checkpoint")
    width, height = work_size(repo / name)
    params = cp.PipelineParams(work_width=width, work_height=height)
    return cp.CatvtonPipeline(
        checkpoint, params, OrtComponents(repo, checkpoint.components, threads)
    )
