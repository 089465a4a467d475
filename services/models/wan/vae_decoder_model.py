"""Triton python-backend model `wan_t2v_vae_decoder`: WAN 2.1's causal 3D VAE decoder,
diffusers' AutoencoderKLWan run by torch (services/models/wan/export.py says why it is
not an ONNX graph). `lightbox models export wan` copies this file to
`<repo>/wan_t2v_vae_decoder/1/model.py` and the checkpoint's `vae/` folder beside it.

    latent  float32 [1, C, f, h, w]  un-normalised latents (latents / (1 / std) + mean)
    video   float32 [1, 3, 4(f - 1) + 1, 8h, 8w] in [-1, 1]

Runs on the instance's GPU when the config gives it a KIND_GPU instance and torch sees
CUDA, else on the CPU (parameter torch_threads: 0 leaves torch's default). Self-contained:
the GPU image has torch, diffusers and safetensors but not the rest of Lightbox.
"""

from __future__ import annotations

import json
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

_PARAMS = {"torch_threads": "0"}
_BACKEND_PARAMETERS = {"EXECUTION_ENV_PATH", "FORCE_CPU_ONLY_INPUT_TENSORS"}


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        import torch
        from diffusers import AutoencoderKLWan
        from safetensors.torch import load_file

        config = json.loads(args["model_config"])
        self.name = config["name"]
        raw = {
            k: v["string_value"]
            for k, v in config.get("parameters", {}).items()
            if k not in _BACKEND_PARAMETERS
        }
        unknown = sorted(set(raw) - set(_PARAMS))
        if unknown:
            raise ValueError(f"{self.name}: unknown parameters {unknown}; known: {sorted(_PARAMS)}")
        threads = int(raw.get("torch_threads", _PARAMS["torch_threads"]))
        folder = Path(args["model_repository"]) / args["model_version"] / "vae"
        weights = folder / "diffusion_pytorch_model.safetensors"
        if not weights.exists():
            raise RuntimeError(
                f"{self.name}: no VAE weights in {folder}; export a checkpoint with "
                "`lightbox models export wan DIFFUSERS_DIR`"
            )
        gpu = args.get("model_instance_kind") == "GPU" and torch.cuda.is_available()
        self.device = torch.device(f"cuda:{args['model_instance_device_id']}" if gpu else "cpu")
        if threads > 0 and not gpu:
            torch.set_num_threads(threads)
        vae = AutoencoderKLWan.from_config(AutoencoderKLWan.load_config(folder))
        vae.load_state_dict(load_file(str(weights)), strict=True)
        self.vae = vae.float().eval().to(self.device)
        self.latent_channels = int(self.vae.config.z_dim)
        self.torch = torch

    def execute(self, requests: list[Any]) -> list[Any]:
        return [self._one(r) for r in requests]

    def _one(self, request: Any) -> Any:
        torch = self.torch
        latent = pb_utils.get_input_tensor_by_name(request, "latent").as_numpy()
        if latent.ndim != 5 or latent.shape[0] != 1 or latent.shape[1] != self.latent_channels:
            return _error(
                f"latent: must be float32 [1, {self.latent_channels}, f, h, w], "
                f"got {list(latent.shape)}",
                pb_utils.TritonError.INVALID_ARG,
            )
        try:
            with torch.no_grad():
                z = torch.from_numpy(np.ascontiguousarray(latent, dtype=np.float32))
                video = self.vae.decode(z.to(self.device), return_dict=False)[0]
                out = video.float().cpu().numpy()
        except torch.cuda.OutOfMemoryError as exc:
            torch.cuda.empty_cache()
            return _error(
                f"{self.name}: out of memory decoding {list(latent.shape)} latents on "
                f"{self.device}: {exc}",
                pb_utils.TritonError.INTERNAL,
            )
        except Exception as exc:  # one failed request must not take the others down
            pb_utils.Logger.log_error(f"{self.name} failed: {traceback.format_exc()}")
            return _error(
                f"{self.name} failed: {type(exc).__name__}: {exc}", pb_utils.TritonError.INTERNAL
            )
        return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("video", out)])


def _error(message: str, code: Any) -> Any:
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(message, code))
