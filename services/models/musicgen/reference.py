"""The references an exported MusicGen pipeline is held to, for tests and operators
checking an export:

- `TransformersReference`: transformers' MusicgenForConditionalGeneration.generate on
  the checkpoint folder, torch on the CPU, returning the codes it generated and the
  audio it decoded;
- `ort_pipeline`: the pipeline model's code (model_repository/musicgen/1) over the
  exported ONNX files through onnxruntime in this process, without Triton.
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

PIPELINE_CODE = MODEL_REPOSITORY / "musicgen" / "1"
PARITY_PROMPT = "lofi hip hop beat with soft piano and rain"


def pipeline_module() -> ModuleType:
    """model_repository/musicgen/1/musicgen_pipeline.py, imported as the stub does."""
    path = str(PIPELINE_CODE)
    if path not in sys.path:
        sys.path.insert(0, path)
    return importlib.import_module("musicgen_pipeline")


@dataclass(frozen=True)
class Job:
    prompt: str
    duration_s: float
    guidance_scale: float
    seed: int = 0
    do_sample: bool = False
    top_k: int | None = None


class TransformersReference:
    """transformers' MusicGen on a checkpoint folder, loaded once."""

    def __init__(self, folder: Path) -> None:
        import torch
        from transformers import AutoTokenizer, MusicgenForConditionalGeneration

        self.model = MusicgenForConditionalGeneration.from_pretrained(
            folder, dtype=torch.float32
        ).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        codec = self.model.config.audio_encoder
        self.hop = int(np.prod(codec.upsampling_ratios))
        self.frame_rate = codec.sampling_rate / self.hop
        self.num_codebooks = int(self.model.decoder.num_codebooks)

    def __call__(self, job: Job) -> tuple[np.ndarray, np.ndarray]:
        """(audio float32 [channels, samples], codes int64 [K, frames]) from
        generate() for `job`; the codes are what generate() hands EnCodec (the delay
        pattern removed), caught on their way in."""
        import torch

        model = self.model
        frames = int(round(job.duration_s * self.frame_rate))
        kwargs: dict[str, Any] = {
            "do_sample": job.do_sample,
            "guidance_scale": job.guidance_scale,
            "max_new_tokens": frames + self.num_codebooks - 1,
        }
        if job.top_k is not None:
            kwargs["top_k"] = job.top_k
        captured: dict[str, Any] = {}
        decode = model.audio_encoder.decode

        def capture(audio_codes: Any, *args: Any, **kw: Any) -> Any:
            captured["codes"] = audio_codes
            return decode(audio_codes, *args, **kw)

        inputs = self.tokenizer(job.prompt, return_tensors="pt")
        model.audio_encoder.decode = capture
        try:
            torch.manual_seed(job.seed)
            with torch.no_grad():
                audio = model.generate(**inputs, **kwargs)
        finally:
            del model.audio_encoder.decode
        return audio[0].numpy().astype(np.float32), captured["codes"][0, 0].numpy()


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
        self.calls: dict[str, int] = dict.fromkeys(components, 0)

    def __call__(self, component: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        session = self.sessions[component]
        names = [o.name for o in session.get_outputs()]
        self.calls[component] += 1
        return dict(zip(names, session.run(names, inputs), strict=True))


def ort_pipeline(repo: Path, name: str = "musicgen") -> tuple[Any, OrtComponents]:
    """(run, components): `run(job)` -> (audio, codes) through the pipeline model's
    code over onnxruntime; `components` counts the calls per component."""
    mp = pipeline_module()
    checkpoint = mp.Checkpoint.load(repo / name / "checkpoint")
    components = OrtComponents(repo, checkpoint.components)
    pipeline = mp.MusicgenPipeline(checkpoint, components)
    params = mp.PipelineParams()

    def run(job: Job) -> tuple[np.ndarray, np.ndarray]:
        request = mp.GenerationRequest(
            prompt=job.prompt,
            duration_s=job.duration_s,
            seed=job.seed,
            guidance_scale=job.guidance_scale,
            top_k=job.top_k,
            do_sample=job.do_sample,
        )
        return pipeline(mp.settle(request, params, checkpoint, lambda: 0))

    return run, components
