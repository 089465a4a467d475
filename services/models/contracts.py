"""The ONNX contracts Lightbox serves: for each production model, the tensors its ONNX
file must have, the Triton model that holds the file, the front model the worker calls,
and how Triton should batch it.

The worker never sends float tensors: every contract sits behind a front model with a
uint8 image signature (python backend or ensemble, committed in model_repository/)
that does the resizing, normalisation, tiling or cropping, and calls the ONNX model.
The ONNX model itself is named `<front>_onnx`; `lightbox models install <front> FILE`
puts the file in `<front>_onnx/1/model.onnx`.

Shapes are per sample, after a leading batch axis that the file may leave symbolic or
fix at 1. An int is a size the file must have (or leave symbolic); a name (H, W, L) is
a size the file may leave symbolic or fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.common import models

ONNX_FILE = "model.onnx"
PLAN_FILE = "model.plan"
ONNX_SUFFIX = "_onnx"


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name: float32, float64, int64
    dims: tuple[int | str, ...]  # per sample; () = one value per sample
    meaning: str = ""

    def pretty(self, batch: str = "N") -> str:
        return f"{self.name} {self.dtype} [{', '.join(str(d) for d in (batch, *self.dims))}]"


@dataclass(frozen=True)
class Contract:
    """One production ONNX model."""

    front: str  # the model the worker calls (models.py name)
    summary: str
    source: str  # where an operator gets the file or checkpoint
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    # Sizes of the named dims for test inputs (verify, tiny models, parity tests).
    sample_dims: dict[str, int] = field(default_factory=dict)
    # TensorRT optimisation profile of the named dims: (min, opt, max).
    profile: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    # Dynamic batching: the largest batch on each target, and the sizes to prefer.
    gpu_max_batch: int = 8
    cpu_max_batch: int = 4
    preferred_batch: tuple[int, ...] = (2, 4)
    max_queue_delay_us: int = 2000
    gpu_instances: int = 1
    # What runs the ONNX file on the `cpu` target (services/models/ort_runner.py):
    # "onnxruntime", or "openvino" where it measured faster (bf16 kernels on CPUs that
    # have them).
    cpu_runtime: str = "onnxruntime"
    # `lightbox models export <front> CHECKPOINT` knows this architecture.
    exportable: bool = False

    @property
    def name(self) -> str:
        """The Triton model that holds the ONNX file."""
        return self.front + ONNX_SUFFIX


_IMAGENET = "RGB, (x/255 - ImageNet mean) / ImageNet std"

CONTRACTS: dict[str, Contract] = {
    c.name: c
    for c in (
        Contract(
            front=models.MATTING_BIREFNET,
            summary="BiRefNet matting: 1024x1024 normalised RGB in, foreground logits out",
            source="BiRefNet's published ONNX export (github.com/ZhengPeng7/BiRefNet releases, "
            "e.g. BiRefNet-general-epoch_244.onnx; input_image -> output_image)",
            inputs=(TensorSpec("input_image", "float32", (3, 1024, 1024), _IMAGENET),),
            outputs=(TensorSpec("output_image", "float32", (1, 1024, 1024), "logits"),),
            gpu_max_batch=4,
            cpu_max_batch=2,
            preferred_batch=(2, 4),
        ),
        Contract(
            front=models.MATTING_ISNET,
            summary="ISNet (DIS) matting: normalised RGB in (H, W multiples of 64), "
            "foreground probability out",
            source="provisioned from the npm package @imgly/background-removal-data "
            "(`lightbox models fetch isnet`: /models/medium, converted to fp32 with dynamic "
            "N, H, W), or any ISNet ONNX export with input -> output",
            # DIS normalises x/255 - 0.5 with std 1; the package's own JS uses
            # (x - 128) / 256, rembg's DisSession x/max - ImageNet mean: all within 0.03.
            inputs=(TensorSpec("input", "float32", (3, "H", "W"), "RGB, x/255 - 0.5"),),
            outputs=(TensorSpec("output", "float32", (1, "H", "W"), "foreground probability"),),
            sample_dims={"H": 64, "W": 64},
            profile={"H": (512, 1024, 1024), "W": (512, 1024, 1024)},
            gpu_max_batch=8,
            cpu_max_batch=2,
            preferred_batch=(4, 8),
            # Measured on 2 EPYC (Zen 4) cores at 1024 x 1024: onnxruntime float32 3.9 s,
            # OpenVINO float32 3.8 s, OpenVINO bf16 1.7 s (within 0.003 of float32).
            cpu_runtime="openvino",
        ),
        Contract(
            front=models.UPSCALE_ESRGAN,
            summary="Real-ESRGAN x4 (RRDBNet): RGB tiles in [0, 1], 4x larger tiles out",
            source="Real-ESRGAN's RealESRGAN_x4plus.pth (github.com/xinntao/Real-ESRGAN "
            "releases), exported with `lightbox models export upscale_realesrgan FILE.pth`",
            inputs=(TensorSpec("input", "float32", (3, "H", "W"), "RGB in [0, 1]"),),
            outputs=(TensorSpec("output", "float32", (3, "4H", "4W"), "RGB in [0, 1]"),),
            sample_dims={"H": 32, "W": 32, "4H": 128, "4W": 128},
            profile={"H": (16, 256, 320), "W": (16, 256, 320)},
            exportable=True,
        ),
        Contract(
            front=models.UPSCALE_RRDN,
            summary="ESRGAN-family RRDN x4 (idealo, trained on DIV2K): RGB tiles in [0, 1], "
            "4x larger tiles out",
            source="provisioned from the npm package @upscalerjs/esrgan-thick "
            "(`lightbox models fetch rrdn`: models/x4, a TensorFlow.js layers model converted "
            "to ONNX here, services/models/rrdn.py)",
            inputs=(TensorSpec("input", "float32", (3, "H", "W"), "RGB in [0, 1]"),),
            outputs=(TensorSpec("output", "float32", (3, "4H", "4W"), "RGB, about [0, 1]"),),
            sample_dims={"H": 32, "W": 32, "4H": 128, "4W": 128},
            # upscale_rrdn sends cores of up to 512 px with 16 px of context each side.
            profile={"H": (16, 544, 544), "W": (16, 544, 544)},
            gpu_max_batch=4,
            preferred_batch=(2, 4),
            # Measured on 2 EPYC (Zen 4) cores, 256 x 256 at 4x: onnxruntime float32
            # 5.7 s, OpenVINO float32 5.6 s, OpenVINO bf16 2.7 s (PSNR on 8 real photos:
            # mean within 0.01 dB of float32, 0.02 dB at most: bench/upscale_bench.py --fp32).
            cpu_runtime="openvino",
        ),
        Contract(
            front=models.INPAINT_LAMA,
            summary="LaMa inpainting: RGB + hole mask in, filled RGB out (0..255)",
            source="LaMa's big-lama ONNX export (huggingface.co/Carve/LaMa-ONNX, "
            "lama_fp32.onnx; image, mask -> output)",
            inputs=(
                TensorSpec("image", "float32", (3, "H", "W"), "RGB in [0, 1]"),
                TensorSpec("mask", "float32", (1, "H", "W"), "1 = fill"),
            ),
            outputs=(TensorSpec("output", "float32", (3, "H", "W"), "RGB in [0, 255]"),),
            sample_dims={"H": 64, "W": 64},
            profile={"H": (512, 512, 512), "W": (512, 512, 512)},
            gpu_max_batch=4,
        ),
        Contract(
            front=models.SEGMENT_CLIPSEG,
            summary="CLIPSeg: CLIP tokens + 352x352 image in, mask logits out",
            source="CIDAS/clipseg-rd64-refined exported to ONNX (e.g. with optimum); the "
            "CLIP tokenizer files (vocab.json, merges.txt) go in with --tokenizer",
            inputs=(
                TensorSpec("input_ids", "int64", ("L",), "CLIP BPE ids, padded"),
                TensorSpec("pixel_values", "float32", (3, 352, 352), "RGB, CLIP mean/std"),
                TensorSpec("attention_mask", "int64", ("L",), "1 = token"),
            ),
            outputs=(TensorSpec("logits", "float32", (352, 352), "mask logits"),),
            sample_dims={"L": 77},
            profile={"L": (77, 77, 77)},
        ),
        Contract(
            front=models.FACE_DETECTOR,
            summary="YuNet face detector: 640x640 BGR (0..255) in, per-stride scores, "
            "boxes and 5 landmarks out",
            source="OpenCV Zoo's face_detection_yunet_2023mar.onnx "
            "(github.com/opencv/opencv_zoo, models/face_detection_yunet)",
            inputs=(TensorSpec("input", "float32", (3, 640, 640), "BGR in [0, 255]"),),
            outputs=tuple(
                TensorSpec(f"{kind}_{stride}", "float32", ((640 // stride) ** 2, width))
                for kind, width in (("cls", 1), ("obj", 1), ("bbox", 4), ("kps", 10))
                for stride in (8, 16, 32)
            ),
            gpu_max_batch=4,
            cpu_max_batch=2,
        ),
        Contract(
            front=models.FACE_RESTORE,
            summary="CodeFormer: aligned 512x512 face in [-1, 1] + fidelity weight in, "
            "restored face out",
            source="CodeFormer exported to ONNX (github.com/sczhou/CodeFormer weights; "
            "e.g. facefusion's codeformer.onnx: input, weight -> output)",
            inputs=(
                TensorSpec("input", "float32", (3, 512, 512), "RGB in [-1, 1]"),
                TensorSpec("weight", "float64", (), "fidelity w in [0, 1]"),
            ),
            outputs=(TensorSpec("output", "float32", (3, 512, 512), "RGB in [-1, 1]"),),
            gpu_max_batch=8,
        ),
    )
}

# Python models that exist only as steps of a front (an ensemble's pre/post processing):
# they load when their front does. None at present: the learned matting fronts are one
# python model each (services/models/pybackend/matting_model.py).
HELPERS: dict[str, str] = {}


class UnknownModel(KeyError):
    pass


def resolve(name: str) -> Contract:
    """The contract for `name`, given as the front (`upscale_realesrgan`) or the ONNX
    model (`upscale_realesrgan_onnx`)."""
    if name in CONTRACTS:
        return CONTRACTS[name]
    for contract in CONTRACTS.values():
        if contract.front == name:
            return contract
    known = ", ".join(sorted(c.front for c in CONTRACTS.values()))
    raise UnknownModel(f"no contract named {name!r}; known: {known}")


def sample_shape(contract: Contract, spec: TensorSpec, batch: int = 1) -> tuple[int, ...]:
    """A concrete shape for `spec` (named dims from the contract's sample_dims)."""
    dims: list[int] = [batch]
    for d in spec.dims:
        dims.append(d if isinstance(d, int) else contract.sample_dims[d])
    return tuple(dims)
