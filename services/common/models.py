"""Names of the Triton models Lightbox knows, and what an operator installs to
serve each one. The worker picks engines by these names' readiness."""

from __future__ import annotations

MATTING_BIREFNET = "matting_birefnet"
MATTING_CLASSICAL = "matting_classical"
MATTING_ISNET = "matting_isnet"
UPSCALE_ESRGAN = "upscale_realesrgan"
# ESRGAN-family RRDN x4 (idealo) from the npm package @upscalerjs/esrgan-thick.
UPSCALE_RRDN = "upscale_rrdn"
INPAINT_LAMA = "inpaint_lama"
SEGMENT_CLIPSEG = "segment_clipseg"
FACE_DETECTOR = "face_detector"
FACE_RESTORE = "face_codeformer"
SDXL = "sdxl"
SDXL_INPAINT = "sdxl_inpaint"
FLUX_SCHNELL = "flux_schnell"
# PixelAPI's audio, video and try-on endpoints (issue 19): python-backend pipeline
# models driving exported components over BLS, like SDXL.
MUSICGEN = "musicgen"
WAN_T2V = "wan_t2v"
CATVTON = "catvton"
# Embedded engines (python-backend models, CPU, no weights).
UPSCALE_LANCZOS = "upscale_lanczos"
INPAINT_TELEA = "inpaint_telea"

# Production front models are python-backend (or ensemble) models with uint8 image
# signatures; the weights sit in the ONNX models they call, installed with
# `lightbox models install NAME FILE.onnx`. A front is usable only when every model it
# calls is ready too.
REQUIRES: dict[str, tuple[str, ...]] = {
    MATTING_BIREFNET: ("matting_birefnet_onnx",),
    MATTING_ISNET: ("matting_isnet_onnx",),
    UPSCALE_ESRGAN: ("upscale_realesrgan_onnx",),
    UPSCALE_RRDN: ("upscale_rrdn_onnx",),
    INPAINT_LAMA: ("inpaint_lama_onnx",),
    SEGMENT_CLIPSEG: ("segment_clipseg_onnx",),
    FACE_DETECTOR: ("face_detector_onnx",),
    FACE_RESTORE: ("face_codeformer_onnx", FACE_DETECTOR, "face_detector_onnx"),
    # The SDXL pipeline models drive their exported components over BLS.
    SDXL: tuple(f"{SDXL}_{c}" for c in ("text_encoder", "text_encoder_2", "unet", "vae_decoder")),
    SDXL_INPAINT: tuple(
        f"{SDXL_INPAINT}_{c}"
        for c in ("text_encoder", "text_encoder_2", "unet", "vae_encoder", "vae_decoder")
    ),
    # -- MusicGen (services/models/musicgen) --
    MUSICGEN: tuple(f"{MUSICGEN}_{c}" for c in ("text_encoder", "decoder", "audio_decoder")),
    # -- WAN 2.1 text to video (services/models/wan) --
    WAN_T2V: tuple(f"{WAN_T2V}_{c}" for c in ("text_encoder", "transformer", "vae_decoder")),
    # -- CatVTON virtual try-on (services/models/catvton) --
    CATVTON: tuple(f"{CATVTON}_{c}" for c in ("unet", "vae_encoder", "vae_decoder")),
}


def usable(model: str, ready: set[str]) -> bool:
    """Whether `model` and every model it calls are ready."""
    return model in ready and all(dep in ready for dep in REQUIRES.get(model, ()))


INSTALL_HINT: dict[str, str] = {
    SDXL: "Export an SDXL checkpoint with `lightbox models export sdxl DIFFUSERS_DIR`.",
    SDXL_INPAINT: "Export an SDXL inpainting checkpoint with "
    "`lightbox models export sdxl DIFFUSERS_DIR` (a 9-channel UNet).",
    FLUX_SCHNELL: "Deploy a FLUX.1-schnell pipeline into the model repository.",
    FACE_RESTORE: "Install CodeFormer and a face detector with `lightbox models install "
    "face_codeformer FILE.onnx` and `lightbox models install face_detector FILE.onnx`.",
    MATTING_BIREFNET: "Install BiRefNet with `lightbox models install matting_birefnet FILE.onnx`.",
    MATTING_ISNET: "Provision ISNet from its npm package with `lightbox models fetch isnet`; "
    "with the package fetched elsewhere, `lightbox models fetch isnet --from-tarball "
    "imgly-background-removal-data-1.4.5.tgz`; a raw ISNet ONNX file installs with "
    "`lightbox models install matting_isnet FILE.onnx`.",
    UPSCALE_ESRGAN: "Install Real-ESRGAN with `lightbox models install upscale_realesrgan "
    "FILE.onnx`, or export a checkpoint with `lightbox models export upscale_realesrgan "
    "FILE.pth`.",
    UPSCALE_RRDN: "Provision the ESRGAN (RRDN) model from its npm package with `lightbox "
    "models fetch rrdn`; with the package fetched elsewhere, `lightbox models fetch rrdn "
    "--from-tarball upscalerjs-esrgan-thick-1.0.0.tgz`.",
    INPAINT_LAMA: "Install LaMa with `lightbox models install inpaint_lama FILE.onnx`.",
    FACE_DETECTOR: "Install a YuNet face detector with `lightbox models install face_detector "
    "FILE.onnx`.",
    CATVTON: "Export CatVTON (an SD-1.5 inpainting UNet, sd-vae-ft-mse and CatVTON's "
    "attention weights in the folder docs/catvton.md describes) with `lightbox models "
    "export catvton DIR`.",
    MUSICGEN: "Export MusicGen (facebook/musicgen-small, a transformers folder) with "
    "`lightbox models export musicgen CHECKPOINT_DIR` (docs/musicgen.md).",
    WAN_T2V: "Export WAN 2.1 text to video (Wan-AI/Wan2.1-T2V-1.3B-Diffusers) with "
    "`lightbox models export wan DIFFUSERS_DIR` (docs/wan.md).",
    SEGMENT_CLIPSEG: "Install CLIPSeg with `lightbox models install segment_clipseg FILE.onnx`,"
    " or send a `mask` instead of a prompt.",
}
