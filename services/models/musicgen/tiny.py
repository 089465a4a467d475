"""A tiny random-weight MusicGen checkpoint in transformers format, and `write_tiny`,
which exports one into a model repository for stack tests.

The architecture is facebook/musicgen-small's, scaled down: a T5 text encoder (relu
feed-forward, relative position buckets) whose width differs from the decoder's, so
the encoder-to-decoder projection exists as in the real model; a MusicGen decoder with
the real 4 codebooks, delay pattern, sinusoidal positions and start/pad token at
`vocab_size`; an EnCodec codec at 32 kHz with the real upsampling ratios (8, 5, 4, 4):
640 samples per frame, 50 frames a second, 4 codebooks at 2.2 kbps. Widths, depths
and the codebook size are what shrink. The tokenizer is a T5-style sentencepiece
Unigram `tokenizer.json` (Metaspace pieces, `</s>` appended) over a fixed vocabulary
of a few music words.
No weights are downloaded; tests and `write_tiny` build it in about a second.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

# Words of the tiny Unigram vocabulary, so prompts split into real pieces.
_CORPUS = (
    "lofi hip hop beat with soft piano and rain",
    "80s pop track with bassy drums and synth",
    "90s rock song with loud guitars and heavy drums",
    "calm ambient pad with slow strings and a warm bass line",
    "upbeat electronic dance music with a driving kick",
    "acoustic folk guitar melody in a small room",
    "jazz trio with brushed drums upright bass and piano",
)
CODEBOOK_SIZE = 64
NUM_CODEBOOKS = 4
SAMPLING_RATE = 32_000
UPSAMPLING_RATIOS = (8, 5, 4, 4)


def _pieces() -> list[tuple[str, float]]:
    """A fixed Unigram vocabulary: whole words of the corpus, their 3-letter stems,
    common English endings, and single characters as the fallback, scored so the
    segmentation prefers longer pieces (as a trained sentencepiece model does)."""
    words = sorted({w for line in _CORPUS for w in line.split()})
    pieces: dict[str, float] = {}
    for word in words:
        pieces[f"▁{word}"] = -2.0 - 0.01 * len(word)
        pieces.setdefault(f"▁{word[:3]}", -4.0)
    for ending in ("s", "ing", "er", "ed", "y", "ly"):
        pieces.setdefault(ending, -5.0)
    chars = sorted(set("".join(words)) | set("abcdefghijklmnopqrstuvwxyz0123456789.,!?'-"))
    pieces["▁"] = -6.0
    for char in chars:
        pieces.setdefault(char, -8.0)
    return list(pieces.items())


def write_t5_tokenizer(out_dir: Path) -> int:
    """A T5-style Unigram tokenizer (tokenizer.json, tokenizer_config.json,
    special_tokens_map.json) in `out_dir`: ids 0, 1, 2 are <pad>, </s>, <unk> as in
    T5's. The vocabulary is fixed (no training), so every build is identical. Returns
    the vocabulary size."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers.processors import TemplateProcessing

    out_dir.mkdir(parents=True, exist_ok=True)
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), *_pieces()]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=2, byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.post_processor = TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
    )
    tokenizer.add_special_tokens(["<pad>", "</s>", "<unk>"])
    tokenizer.save(str(out_dir / "tokenizer.json"))
    special = {"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}
    (out_dir / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    config = {
        "tokenizer_class": "T5Tokenizer",
        "model_max_length": 512,
        "extra_ids": 0,
        "additional_special_tokens": [],
        **special,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return tokenizer.get_vocab_size()


def make_tiny_musicgen(out_dir: Path, *, seed: int = 0) -> Path:
    """Build a tiny random-weight MusicgenForConditionalGeneration, save it (weights,
    config, generation config, tokenizer) to `out_dir` as `save_pretrained` lays out
    facebook/musicgen-small, and return `out_dir`. Deterministic for a given `seed`."""
    import torch
    from transformers import (
        EncodecConfig,
        GenerationConfig,
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenForConditionalGeneration,
        T5Config,
    )

    out_dir.mkdir(parents=True, exist_ok=True)
    vocab = write_t5_tokenizer(out_dir)
    torch.manual_seed(seed)
    text = T5Config(
        vocab_size=vocab,
        d_model=24,
        d_kv=6,
        d_ff=48,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=32,
        feed_forward_proj="relu",
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    codec = EncodecConfig(
        sampling_rate=SAMPLING_RATE,
        audio_channels=1,
        normalize=False,
        chunk_length_s=None,
        overlap=None,
        num_filters=4,
        num_residual_layers=1,
        upsampling_ratios=list(UPSAMPLING_RATIOS),
        norm_type="weight_norm",
        kernel_size=7,
        last_kernel_size=7,
        residual_kernel_size=3,
        dilation_growth_rate=2,
        use_causal_conv=False,
        pad_mode="reflect",
        compress=2,
        num_lstm_layers=2,
        trim_right_ratio=1.0,
        codebook_size=CODEBOOK_SIZE,
        codebook_dim=16,
        hidden_size=16,
        use_conv_shortcut=False,
        # 2.2 kbps at 50 frames/s and 11 bits a code would be 4 codebooks of 2048; the
        # tiny codebook has 6 bits, so the bandwidth that gives 4 codebooks is 1.2.
        target_bandwidths=[1.2],
    )
    decoder = MusicgenDecoderConfig(
        vocab_size=CODEBOOK_SIZE,
        max_position_embeddings=2048,
        num_hidden_layers=2,
        ffn_dim=64,
        num_attention_heads=4,
        hidden_size=32,
        activation_function="gelu",
        num_codebooks=NUM_CODEBOOKS,
        audio_channels=1,
        scale_embedding=False,
        pad_token_id=CODEBOOK_SIZE,
        bos_token_id=CODEBOOK_SIZE,
        eos_token_id=None,
    )
    config = MusicgenConfig(text_encoder=text, audio_encoder=codec, decoder=decoder)
    model = MusicgenForConditionalGeneration(config).eval()
    # transformers initialises the decoder with std 0.02, at which a tiny decoder's
    # logits barely depend on the prompt: guidance and prompt would change nothing and
    # a pipeline that dropped the condition would still match. Fan-in scaled weights
    # make every input count. EnCodec's codebooks are spread for the same reason.
    with torch.no_grad():
        for module in (model.decoder, model.enc_to_dec_proj):
            for weight in module.parameters():
                if weight.ndim == 2:
                    weight.normal_(0.0, weight.shape[1] ** -0.5)
        for layer in model.audio_encoder.quantizer.layers:
            layer.codebook.embed.normal_(0.0, 1.0)
    model.generation_config = GenerationConfig(
        do_sample=True,
        guidance_scale=3.0,
        max_length=1500,
        top_k=250,
        pad_token_id=CODEBOOK_SIZE,
        bos_token_id=CODEBOOK_SIZE,
        decoder_start_token_id=CODEBOOK_SIZE,
    )
    model.save_pretrained(out_dir)
    return out_dir


def write_tiny(repo: Path, *, name: str = "musicgen", seed: int = 0, target: str = "cpu") -> Any:
    """Export a tiny random-weight MusicGen into the model repository `repo`: its three
    component models, the pipeline's checkpoint folder, and a copy of the committed
    pipeline model (model_repository/musicgen) named `name` when `repo` has none.
    Returns the ExportReport."""
    from services.common.triton import MODEL_REPOSITORY
    from services.models.musicgen.export import export_musicgen

    repo = Path(repo)
    if not (repo / name / "config.pbtxt").exists():
        shutil.copytree(
            MODEL_REPOSITORY / "musicgen",
            repo / name,
            ignore=shutil.ignore_patterns("__pycache__", "checkpoint"),
        )
        config = repo / name / "config.pbtxt"
        config.write_text(config.read_text().replace('name: "musicgen"', f'name: "{name}"'))
    with tempfile.TemporaryDirectory(prefix="tiny-musicgen-") as tmp:
        checkpoint = make_tiny_musicgen(Path(tmp) / "musicgen-tiny", seed=seed)
        return export_musicgen(checkpoint, repo, name=name, target=target)
