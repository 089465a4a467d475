"""CLIP's byte-level BPE tokenizer in plain Python, token for token what transformers'
CLIPTokenizer (the `tokenizers`-backed one that diffusers uses) produces for SDXL's
two tokenizers, so the sdxl pipeline and segment_clipseg models need neither
transformers nor tokenizers inside Triton.

The steps mirror that tokenizer: the special tokens (start, end, pad, unknown) are
cut out of the raw text first and map to their own ids (so with SDXL's second
tokenizer, whose pad token is "!", a "!" in a prompt is the pad id, as in
diffusers); each remaining piece is NFC-normalised, whitespace runs become one
space, then lower-cased; it is split by CLIP's pattern (contractions, letter runs, single
digits, runs of other non-space characters); each split is byte-level mapped and
BPE-merged with `</w>` marking the word end; `<|startoftext|>`, at most
max_length - 2 tokens, `<|endoftext|>`, then padding.
"""

from __future__ import annotations

import json
import unicodedata
from functools import lru_cache
from pathlib import Path

import numpy as np

_CONTRACTIONS = ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d")
_BOS = "<|startoftext|>"
_EOS = "<|endoftext|>"


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


def _is_space(c: str) -> bool:
    # The tokenizers regex engine's \s is Unicode White_Space; Python's isspace()
    # also counts the four ASCII separators 0x1c-0x1f, which White_Space does not.
    return c.isspace() and c not in "\x1c\x1d\x1e\x1f"


def _is_letter(c: str) -> bool:
    return unicodedata.category(c).startswith("L")


def _is_number(c: str) -> bool:
    return unicodedata.category(c).startswith("N")


def _normalize(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    out: list[str] = []
    in_space = False
    for c in text:
        if _is_space(c):
            if not in_space:
                out.append(" ")
            in_space = True
        else:
            out.append(c)
            in_space = False
    return "".join(out).lower()


def _pre_split(text: str) -> list[str]:
    """CLIP's split pattern `<|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|
    [\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+`, keeping matches and dropping the rest."""
    pieces: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        special = next((s for s in (_BOS, _EOS) if text.startswith(s, i)), None)
        contraction = next((s for s in _CONTRACTIONS if text.startswith(s, i)), None)
        if special or contraction:
            token = special or contraction
            assert token is not None
            pieces.append(token)
            i += len(token)
        elif _is_letter(c):
            j = i + 1
            while j < n and _is_letter(text[j]):
                j += 1
            pieces.append(text[i:j])
            i = j
        elif _is_number(c):
            pieces.append(c)
            i += 1
        elif _is_space(c):
            i += 1
        else:
            j = i + 1
            while j < n and not (_is_space(text[j]) or _is_letter(text[j]) or _is_number(text[j])):
                j += 1
            pieces.append(text[i:j])
            i = j
    return pieces


class ClipTokenizer:
    """Token ids for prompts, padded and truncated to `max_length` like diffusers'
    `tokenizer(prompt, padding="max_length", truncation=True)`."""

    def __init__(
        self,
        vocab: dict[str, int],
        merges: list[tuple[str, str]],
        *,
        pad_token: str = _EOS,
        unk_token: str = _EOS,
        max_length: int = 77,
    ) -> None:
        for token in (_BOS, _EOS, pad_token, unk_token):
            if token not in vocab:
                raise ValueError(f"tokenizer vocabulary has no {token!r}")
        if max_length < 2:
            raise ValueError(
                f"max_length must leave room for the start and end tokens: {max_length}"
            )
        self.vocab = vocab
        self.ranks = {pair: i for i, pair in enumerate(merges)}
        self.bos_id = vocab[_BOS]
        self.eos_id = vocab[_EOS]
        self.pad_id = vocab[pad_token]
        self.unk_id = vocab[unk_token]
        self.max_length = max_length
        self.specials = tuple(dict.fromkeys((_BOS, _EOS, pad_token, unk_token)))
        self._byte_map = bytes_to_unicode()
        self._bpe = lru_cache(maxsize=65536)(self._bpe_uncached)

    @classmethod
    def from_dir(cls, folder: Path) -> ClipTokenizer:
        """Load a diffusers `tokenizer/` folder: vocab.json + merges.txt, or
        tokenizer.json, with the special tokens and length from tokenizer_config.json
        (or special_tokens_map.json)."""
        settings: dict[str, object] = {}
        for name in ("special_tokens_map.json", "tokenizer_config.json"):
            path = folder / name
            if path.exists():
                settings.update(json.loads(path.read_text(encoding="utf-8")))
        if (folder / "vocab.json").exists() and (folder / "merges.txt").exists():
            vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
            lines = (folder / "merges.txt").read_text(encoding="utf-8").splitlines()
            merges = [
                _pair(line.split()) for line in lines if line and not line.startswith("#version")
            ]
        elif (folder / "tokenizer.json").exists():
            model = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))["model"]
            vocab = model["vocab"]
            merges = [_pair(m.split() if isinstance(m, str) else m) for m in model["merges"]]
        else:
            raise FileNotFoundError(
                f"{folder} has neither vocab.json + merges.txt nor tokenizer.json"
            )
        max_length = int(str(settings.get("model_max_length", 77)))
        if max_length > 10_000:
            # transformers writes a huge sentinel when no length is set; CLIP's is 77.
            max_length = 77
        return cls(
            vocab,
            merges,
            pad_token=_token_text(settings.get("pad_token", _EOS)),
            unk_token=_token_text(settings.get("unk_token", _EOS)),
            max_length=max_length,
        )

    def _bpe_uncached(self, word: str) -> tuple[str, ...]:
        symbols = list(word[:-1]) + [word[-1] + "</w>"]
        while len(symbols) > 1:
            best_rank, best_at = None, -1
            for i in range(len(symbols) - 1):
                rank = self.ranks.get((symbols[i], symbols[i + 1]))
                if rank is not None and (best_rank is None or rank < best_rank):
                    best_rank, best_at = rank, i
            if best_rank is None:
                break
            first, second = symbols[best_at], symbols[best_at + 1]
            merged: list[str] = []
            i = 0
            while i < len(symbols):
                if i < len(symbols) - 1 and symbols[i] == first and symbols[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        return tuple(symbols)

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` without the start/end tokens and without truncation."""
        ids: list[int] = []
        for segment, is_special in _cut_specials(text, self.specials):
            if is_special:
                ids.append(self.vocab[segment])
                continue
            for piece in _pre_split(_normalize(segment)):
                mapped = "".join(self._byte_map[b] for b in piece.encode("utf-8"))
                ids.extend(self.vocab.get(s, self.unk_id) for s in self._bpe(mapped))
        return ids

    def __call__(self, texts: list[str]) -> np.ndarray:
        """int32 [len(texts), max_length]: start, the first max_length - 2 tokens, end,
        padding."""
        out = np.full((len(texts), self.max_length), self.pad_id, dtype=np.int32)
        for row, text in enumerate(texts):
            ids = [self.bos_id, *self.encode(text)[: self.max_length - 2], self.eos_id]
            out[row, : len(ids)] = ids
        return out


def _pair(parts: list[str]) -> tuple[str, str]:
    if len(parts) != 2:
        raise ValueError(f"malformed BPE merge {parts!r}")
    return parts[0], parts[1]


def _token_text(value: object) -> str:
    # tokenizer_config.json stores special tokens as plain strings or as AddedToken
    # dicts ({"content": ...}).
    if isinstance(value, dict):
        return str(value["content"])
    return str(value)


def _cut_specials(text: str, specials: tuple[str, ...]) -> list[tuple[str, bool]]:
    """Split raw `text` around literal special tokens, which the reference tokenizer
    matches before normalisation (leftmost, then longest) and maps to their own ids."""
    out: list[tuple[str, bool]] = []
    i = 0
    while i < len(text):
        hits = [(text.find(s, i), -len(s), s) for s in specials]
        hits = [h for h in hits if h[0] >= 0]
        if not hits:
            out.append((text[i:], False))
            break
        at, _, special = min(hits)
        if at > i:
            out.append((text[i:at], False))
        out.append((special, True))
        i = at + len(special)
    return out
