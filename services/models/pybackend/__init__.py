"""Helpers shared by the python-backend models in `model_repository/`, kept once here
instead of copied into each model's version folder:

    triton_bls      typed config.pbtxt `parameters`, tensor dtype checks against the
                    config, BLS calls to other models with their errors, error responses
    clip_tokenizer  CLIP's BPE tokenizer in plain Python (sdxl, segment_clipseg)
    torch_rng       torch's CPU random normals in numpy, so a seed gives diffusers'
                    latents without torch in the stub (sdxl, wan_t2v, catvton)
    schedulers      SDXL's samplers and the noise tables in numpy with diffusers'
                    numerics (sdxl, sdxl_inpaint; catvton's DDIM uses its tables)
    matting, matting_model
                    the learned-matting front (matting_isnet, matting_birefnet)
    tiling, upscale_model
                    the tiled super-resolution front (upscale_realesrgan,
                    upscale_rrdn); tiling is plain numpy/OpenCV

Models import them as `from services.models.pybackend.triton_bls import ...`, inside
Triton's python stub only: `triton_bls` needs `triton_python_backend_utils`, which exists
only there. The stub finds this package through the project's venv in the embedded
stack (services/common/triton.py `server_env`) and through a .pth file in the GPU
image (deploy/docker/Dockerfile.triton), which copies just this package and the two
`__init__.py` files above it: keep them, and this one, free of heavy imports.
"""
