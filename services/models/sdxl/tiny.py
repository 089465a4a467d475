"""Tiny random-weight SDXL and SDXL-inpainting checkpoints in diffusers format.

Same component classes, tensor signatures and folder layout as the real
stabilityai/stable-diffusion-xl-base-1.0 and diffusers/stable-diffusion-xl-1.0-inpainting-0.1
repositories (two CLIP text encoders, a text_time UNet with 4 or 9 input channels, a
four-block AutoencoderKL, byte-level BPE tokenizers, an EulerDiscrete scheduler
config), at a size that exports and runs in seconds on a CPU. Tests, benchmarks and
`lightbox models make-test-models` build them locally, since no weights can be
downloaded; the export, serving and parity code then runs on the same code paths as
for a real checkpoint.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table."""
    bs = list(range(ord("!"), ord("~") + 1))
    bs += list(range(ord("\xa1"), ord("\xac") + 1)) + list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


# Words the tiny BPE is trained on; prompts built from them tokenize into merged
# sub-words like a real CLIP vocabulary does, rather than into single bytes.
_CORPUS = (
    "a photo of a bottle on a marble table studio light soft shadow white background "
    "product photography of a perfume bottle on wooden table outdoor garden sunlight "
    "blurry low quality watermark text ugly deformed cup mug sneaker shoe watch bag "
    "concrete floor paper backdrop warm evening golden hour kitchen counter plants "
    "the and with in at beach sand water reflection glass ceramic leather red blue green"
)
_NUM_MERGES = 160


def _train_bpe(corpus: str, num_merges: int) -> list[tuple[str, str]]:
    """Plain BPE merge learning over byte-level symbols with CLIP's `</w>` word end."""
    byte_map = bytes_to_unicode()
    words = collections.Counter(corpus.lower().split())
    vocab = {
        tuple(byte_map[b] for b in w.encode("utf-8")[:-1])
        + (byte_map[w.encode("utf-8")[-1]] + "</w>",): n
        for w, n in words.items()
    }
    merges: list[tuple[str, str]] = []
    for _ in range(num_merges):
        pairs: collections.Counter[tuple[str, str]] = collections.Counter()
        for symbols, n in vocab.items():
            for pair in zip(symbols, symbols[1:], strict=False):
                pairs[pair] += n
        if not pairs:
            break
        best = max(sorted(pairs), key=lambda p: pairs[p])
        merges.append(best)
        merged: dict[tuple[str, ...], int] = {}
        for symbols, n in vocab.items():
            out: list[str] = []
            i = 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    out.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + n
        vocab = merged
    return merges


def write_tokenizer(out_dir: Path, pad_token: str) -> int:
    """Write a CLIP-style byte-level BPE tokenizer (vocab.json, merges.txt,
    tokenizer_config.json, special_tokens_map.json) to `out_dir`, laid out like the
    real CLIP vocabulary: 256 bytes, 256 bytes + `</w>`, merges, then the two special
    tokens last. Returns the vocabulary size."""
    out_dir.mkdir(parents=True, exist_ok=True)
    chars = list(bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars]
    merges = _train_bpe(_CORPUS, _NUM_MERGES)
    tokens += ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    merges_text = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)
    (out_dir / "merges.txt").write_text(merges_text, encoding="utf-8")
    special = {
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": pad_token,
    }
    (out_dir / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": 77,
        "do_lower_case": True,
        **special,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return len(vocab)


def load_tokenizer(folder: Path) -> Any:
    """transformers' CLIPTokenizer over a folder written by `write_tokenizer` (or a
    real checkpoint's tokenizer folder). transformers 5 takes vocab/merges as values."""
    from transformers import CLIPTokenizer

    config = json.loads((folder / "tokenizer_config.json").read_text())
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    lines = (folder / "merges.txt").read_text(encoding="utf-8").splitlines()
    merges = [tuple(line.split()) for line in lines if line and not line.startswith("#version")]
    return CLIPTokenizer(
        vocab=vocab,
        merges=merges,
        bos_token=config["bos_token"],
        eos_token=config["eos_token"],
        unk_token=config["unk_token"],
        pad_token=config["pad_token"],
        model_max_length=config["model_max_length"],
    )


def make_tiny_sdxl(out_dir: Path, *, inpaint: bool = False, seed: int = 0) -> Path:
    """Build a tiny random-weight SDXL (or SDXL-inpainting, 9-channel UNet) pipeline,
    save it in diffusers format to `out_dir` and return `out_dir`.

    Deterministic for a given `seed`. Text encoders differ in width (32 and 48, with a
    40-wide projection) so that any mix-up of the two shows as a shape error."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    vocab_size = write_tokenizer(out_dir / "tokenizer", pad_token="<|endoftext|>")
    # SDXL's second tokenizer pads with "!" (id 0), not with the end token.
    write_tokenizer(out_dir / "tokenizer_2", pad_token="!")

    def clip_config(hidden: int, heads: int, projection: int) -> CLIPTextConfig:
        # eos_token_id=2 is what the real SDXL configs carry: CLIP then pools at the
        # argmax id, which is the end token because the specials come last.
        return CLIPTextConfig(
            vocab_size=vocab_size,
            hidden_size=hidden,
            intermediate_size=hidden * 2,
            num_hidden_layers=3,
            num_attention_heads=heads,
            max_position_embeddings=77,
            projection_dim=projection,
            hidden_act="gelu",
            bos_token_id=0,
            eos_token_id=2,
            pad_token_id=1,
        )

    text_encoder = CLIPTextModel(clip_config(32, 4, 32)).eval()
    text_encoder_2 = CLIPTextModelWithProjection(clip_config(48, 4, 40)).eval()
    time_embed_dim = 8
    unet = UNet2DConditionModel(
        sample_size=16,
        in_channels=9 if inpaint else 4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        transformer_layers_per_block=(1, 1),
        cross_attention_dim=32 + 48,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_embed_dim,
        projection_class_embeddings_input_dim=6 * time_embed_dim + 40,
        norm_num_groups=8,
    ).eval()
    # Four blocks: the latent is 1/8 of the image, as in the real SDXL VAE.
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
        scaling_factor=0.13025,
        force_upcast=True,
    ).eval()
    scheduler = EulerDiscreteScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        timestep_spacing="leading",
        interpolation_type="linear",
        prediction_type="epsilon",
    )
    text_encoder.save_pretrained(out_dir / "text_encoder")
    text_encoder_2.save_pretrained(out_dir / "text_encoder_2")
    unet.save_pretrained(out_dir / "unet")
    vae.save_pretrained(out_dir / "vae")
    scheduler.save_pretrained(out_dir / "scheduler")
    pipeline_class = "StableDiffusionXLInpaintPipeline" if inpaint else "StableDiffusionXLPipeline"
    model_index = {
        "_class_name": pipeline_class,
        "_diffusers_version": "0.42.1",
        "force_zeros_for_empty_prompt": True,
        "scheduler": ["diffusers", "EulerDiscreteScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "tokenizer_2": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    if inpaint:
        model_index["requires_aesthetics_score"] = False
    (out_dir / "model_index.json").write_text(json.dumps(model_index, indent=2))
    return out_dir


def load_diffusers_pipeline(
    folder: Path, scheduler: Any = None, inpaint: bool | None = None
) -> Any:
    """The diffusers pipeline for a diffusers-format SDXL folder (tiny or real), on CPU
    in float32, with tokenizers built the transformers-5 way (see `load_tokenizer`).
    `inpaint` picks the inpainting pipeline (None: when the UNet has 9 channels)."""
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionXLInpaintPipeline,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    index = json.loads((folder / "model_index.json").read_text())
    unet = UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=torch.float32)
    if inpaint is None:
        inpaint = unet.config.in_channels == 9
    cls = StableDiffusionXLInpaintPipeline if inpaint else StableDiffusionXLPipeline
    extra: dict[str, Any] = {}
    if cls is StableDiffusionXLInpaintPipeline:
        extra["requires_aesthetics_score"] = bool(index.get("requires_aesthetics_score", False))
    pipe = cls(
        vae=AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=torch.float32),
        text_encoder=CLIPTextModel.from_pretrained(folder / "text_encoder"),
        text_encoder_2=CLIPTextModelWithProjection.from_pretrained(folder / "text_encoder_2"),
        tokenizer=load_tokenizer(folder / "tokenizer"),
        tokenizer_2=load_tokenizer(folder / "tokenizer_2"),
        unet=unet,
        scheduler=scheduler or EulerDiscreteScheduler.from_pretrained(folder / "scheduler"),
        force_zeros_for_empty_prompt=bool(index.get("force_zeros_for_empty_prompt", True)),
        add_watermarker=False,
        **extra,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe
