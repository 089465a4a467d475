"""Names of the Triton models Lightbox knows, and what an operator installs to
serve each one. The worker picks engines by these names' readiness."""

from __future__ import annotations

MATTING_BIREFNET = "matting_birefnet"
MATTING_CLASSICAL = "matting_classical"
UPSCALE_ESRGAN = "upscale_realesrgan"
INPAINT_LAMA = "inpaint_lama"
SEGMENT_CLIPSEG = "segment_clipseg"
FACE_DETECTOR = "face_detector"
FACE_RESTORE = "face_codeformer"
SDXL = "sdxl"
SDXL_INPAINT = "sdxl_inpaint"
FLUX_SCHNELL = "flux_schnell"

INSTALL_HINT: dict[str, str] = {
    SDXL: "Export an SDXL checkpoint with `lightbox models export sdxl DIFFUSERS_DIR`.",
    SDXL_INPAINT: "Export an SDXL inpainting checkpoint with "
    "`lightbox models export sdxl DIFFUSERS_DIR` (a 9-channel UNet).",
    FLUX_SCHNELL: "Deploy a FLUX.1-schnell pipeline into the model repository.",
    FACE_RESTORE: "Install CodeFormer and a face detector with `lightbox models install "
    "face_codeformer FILE.onnx` and `lightbox models install face_detector FILE.onnx`.",
    SEGMENT_CLIPSEG: "Install CLIPSeg with `lightbox models install segment_clipseg FILE.onnx`,"
    " or send a `mask` instead of a prompt.",
}
