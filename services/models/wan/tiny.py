"""Tiny random-weight WAN 2.1 text-to-video checkpoints in diffusers format.

The same component classes, folder layout and configs as the published
Wan-AI/Wan2.1-T2V-1.3B-Diffusers (a UMT5 encoder, a WanTransformer3DModel with 3D
rotary embeddings, the causal 3D AutoencoderKLWan with its 8x spatial and 4x temporal
compression, a UMT5-style Unigram tokenizer, the UniPC flow-matching scheduler config
the checkpoint ships), scaled down to export and run in seconds on a CPU. Tests build
them locally because no weights can be downloaded here; export, serving and parity
then run the code paths a real checkpoint takes.

    make_tiny_wan(out_dir, seed=0)  -> out_dir (a diffusers folder)
    write_tiny(repo)                -> exports one into a model repository (stack tests)
    load_diffusers_pipeline(folder) -> diffusers' WanPipeline over such a folder
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# The scheduler config of Wan-AI/Wan2.1-T2V-1.3B-Diffusers (scheduler/scheduler_config.json):
# UniPC multistep in flow-prediction mode with shifted flow sigmas.
SCHEDULER_CONFIG: dict[str, Any] = {
    "_class_name": "UniPCMultistepScheduler",
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "beta_start": 0.0001,
    "disable_corrector": [],
    "dynamic_thresholding_ratio": 0.995,
    "final_sigmas_type": "zero",
    "flow_shift": 3.0,
    "lower_order_final": True,
    "num_train_timesteps": 1000,
    "predict_x0": True,
    "prediction_type": "flow_prediction",
    "rescale_betas_zero_snr": False,
    "sample_max_value": 1.0,
    "solver_order": 2,
    "solver_p": None,
    "solver_type": "bh2",
    "steps_offset": 0,
    "thresholding": False,
    "timestep_spacing": "linspace",
    "trained_betas": None,
    "use_beta_sigmas": False,
    "use_exponential_sigmas": False,
    "use_flow_sigmas": True,
    "use_karras_sigmas": False,
}

# Words the tiny Unigram vocabulary holds as whole pieces, so prompts tokenize into a
# mix of word pieces and characters as with the real 256k-piece UMT5 vocabulary.
_WORDS = (
    "a cat dog running on the beach at sunset slow motion camera pan close up of "
    "bottle perfume studio light city street rain night neon waves ocean forest "
    "blurry low quality static watermark text ugly"
).split()


def write_tokenizer(out_dir: Path) -> int:
    """A UMT5-style tokenizer (tokenizer.json: Metaspace pre-tokenizer, Unigram model,
    `</s>` appended; <pad>=0, </s>=1, <unk>=2 as in UMT5) plus the transformers config
    files; returns the vocabulary size."""
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )

    out_dir.mkdir(parents=True, exist_ok=True)
    pieces: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    chars = sorted(set("abcdefghijklmnopqrstuvwxyz0123456789.,!?'-:;()"))
    pieces += [("▁", -2.0)] + [(c, -5.0) for c in chars] + [("▁" + c, -5.5) for c in chars]
    pieces += [("▁" + w, -1.0 - 0.01 * i) for i, w in enumerate(dict.fromkeys(_WORDS))]
    tok = Tokenizer(models.Unigram(pieces, unk_id=2, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
    )
    tok.add_special_tokens(["<pad>", "</s>", "<unk>"])
    tok.save(str(out_dir / "tokenizer.json"))
    special = {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"}
    (out_dir / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    config = {"tokenizer_class": "T5Tokenizer", "model_max_length": 512, **special}
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return tok.get_vocab_size()


def load_tokenizer(folder: Path) -> Any:
    """transformers' fast tokenizer over `folder/tokenizer.json` (tiny or real)."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_file=str(folder / "tokenizer.json"),
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=512,
    )


def make_tiny_wan(out_dir: Path, *, seed: int = 0) -> Path:
    """Build a tiny random-weight WAN 2.1 T2V pipeline, save it in diffusers format to
    `out_dir` and return `out_dir`. Deterministic for a given `seed`.

    Kept from the real configs: 16 latent channels, patch (1, 2, 2), rotary split over
    frames/height/width, qk RMS norm across heads, cross-attention norm, the VAE's
    dim_mult (1, 2, 4, 4) with temporal downsampling in the last two stages (4x) and
    its per-channel latents_mean/std. Scaled down: widths, depths, heads."""
    import torch
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    vocab_size = write_tokenizer(out_dir / "tokenizer")
    text_config = UMT5Config(
        vocab_size=vocab_size,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=32,
        relative_attention_max_distance=128,
        feed_forward_proj="gated-gelu",
        dense_act_fn="gelu_new",
        is_gated_act=True,
        layer_norm_epsilon=1e-6,
        tie_word_embeddings=False,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    text_encoder = UMT5EncoderModel(text_config).eval()
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=16,
        out_channels=16,
        text_dim=32,
        freq_dim=16,
        ffn_dim=48,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        eps=1e-6,
        rope_max_seq_len=1024,
    ).eval()
    vae = AutoencoderKLWan(
        base_dim=8,
        z_dim=16,
        dim_mult=[1, 2, 4, 4],
        num_res_blocks=1,
        attn_scales=[],
        temperal_downsample=[False, True, True],
    ).eval()
    # Random weights leave the output near flat; larger output-layer weights make the
    # decoded video vary, so a parity comparison has something to compare.
    with torch.no_grad():
        transformer.proj_out.weight.mul_(8.0)
        vae.decoder.conv_out.weight.mul_(1.5)
        # and stronger cross-attention, so the prompt (and the negative prompt) shows.
        for block in transformer.blocks:
            block.attn2.to_out[0].weight.mul_(6.0)
    text_encoder.save_pretrained(out_dir / "text_encoder")
    transformer.save_pretrained(out_dir / "transformer")
    vae.save_pretrained(out_dir / "vae")
    UniPCMultistepScheduler.from_config(SCHEDULER_CONFIG).save_pretrained(out_dir / "scheduler")
    model_index = {
        "_class_name": "WanPipeline",
        "_diffusers_version": "0.42.1",
        "scheduler": ["diffusers", "UniPCMultistepScheduler"],
        "text_encoder": ["transformers", "UMT5EncoderModel"],
        "tokenizer": ["transformers", "T5TokenizerFast"],
        "transformer": ["diffusers", "WanTransformer3DModel"],
        "vae": ["diffusers", "AutoencoderKLWan"],
    }
    (out_dir / "model_index.json").write_text(json.dumps(model_index, indent=2))
    return out_dir


def load_model(cls: Any, folder: Path) -> Any:
    """A diffusers model class from a saved folder (config.json plus one safetensors
    file or an index of shards), float32, in eval mode.

    `from_pretrained` refuses WanTransformer3DModel without the `accelerate` package
    (its fp32-kept modules need low_cpu_mem_usage); loading the state dict directly
    needs nothing beyond safetensors."""
    from safetensors.torch import load_file

    model = cls.from_config(cls.load_config(folder))
    index = folder / "diffusion_pytorch_model.safetensors.index.json"
    if index.exists():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        files = [folder / s for s in shards]
    else:
        files = [folder / "diffusion_pytorch_model.safetensors"]
    state: dict[str, Any] = {}
    for f in files:
        if not f.exists():
            raise FileNotFoundError(f"{f} is missing")
        state.update(load_file(str(f)))
    model.load_state_dict(state, strict=True)
    return model.float().eval()


def load_diffusers_pipeline(folder: Path, scheduler: Any = None) -> Any:
    """diffusers' WanPipeline for a diffusers-format WAN folder (tiny or real) on the
    CPU in float32."""
    import torch
    from diffusers import (
        AutoencoderKLWan,
        UniPCMultistepScheduler,
        WanPipeline,
        WanTransformer3DModel,
    )
    from transformers import UMT5EncoderModel

    pipe = WanPipeline(
        tokenizer=load_tokenizer(folder / "tokenizer"),
        text_encoder=UMT5EncoderModel.from_pretrained(folder / "text_encoder", dtype=torch.float32),
        transformer=load_model(WanTransformer3DModel, folder / "transformer"),
        vae=load_model(AutoencoderKLWan, folder / "vae"),
        scheduler=scheduler or UniPCMultistepScheduler.from_pretrained(folder / "scheduler"),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def write_tiny(
    repo: Path, *, seed: int = 0, target: str = "cpu", checkpoint_dir: Path | None = None
) -> Any:
    """Export a tiny random-weight WAN checkpoint into the model repository `repo` for
    `target`, next to the committed pipeline model `repo/wan_t2v` (copied there when
    missing), so that `wan_t2v` and its three components serve. The diffusers folder
    is built in `checkpoint_dir` (kept, e.g. for diffusers' reference pipeline) or in a
    temporary directory. Returns the ExportReport."""
    import shutil
    import tempfile

    from services.common.triton import MODEL_REPOSITORY
    from services.models.wan.export import NAME, export_wan

    repo = Path(repo)
    pipeline = repo / NAME
    if not (pipeline / "config.pbtxt").exists():
        shutil.copytree(
            MODEL_REPOSITORY / NAME,
            pipeline,
            ignore=shutil.ignore_patterns("__pycache__", "checkpoint"),
        )
    if checkpoint_dir is not None:
        return export_wan(make_tiny_wan(checkpoint_dir, seed=seed), repo, target=target)
    with tempfile.TemporaryDirectory(prefix="wan-tiny-") as tmp:
        folder = make_tiny_wan(Path(tmp) / "checkpoint", seed=seed)
        return export_wan(folder, repo, target=target)
