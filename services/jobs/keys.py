"""API key format, generation and verification.

A key reads `lb_live_ab12cd34_<secret>`: the first 16 characters are a visible
prefix (stored, shown in listings, used to find the key's row) and the secret is
32 random bytes. Only the sha256 of the whole key is stored. A slow password
hash would add nothing: the secret has 256 bits of entropy, so the digest cannot
be brute-forced, and a fast hash keeps authentication off the request's
critical path.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

KEY_NAMESPACE = "lb_live_"
PREFIX_HEX_CHARS = 8
PREFIX_LENGTH = len(KEY_NAMESPACE) + PREFIX_HEX_CHARS
SECRET_BYTES = 32
# token_urlsafe(32) is 43 characters; bounds keep absurd input off the database.
_MIN_KEY_LENGTH = PREFIX_LENGTH + 1 + 40
_MAX_KEY_LENGTH = 200


@dataclass(frozen=True)
class GeneratedKey:
    plaintext: str
    prefix: str
    key_hash: str


def generate_key() -> GeneratedKey:
    prefix = KEY_NAMESPACE + secrets.token_hex(PREFIX_HEX_CHARS // 2)
    plaintext = f"{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}"
    return GeneratedKey(plaintext=plaintext, prefix=prefix, key_hash=hash_key(plaintext))


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def prefix_of(plaintext: str) -> str | None:
    """The lookup prefix of a presented key, or None if it cannot be one of ours."""
    if not (_MIN_KEY_LENGTH <= len(plaintext) <= _MAX_KEY_LENGTH):
        return None
    if not plaintext.startswith(KEY_NAMESPACE) or plaintext[PREFIX_LENGTH] != "_":
        return None
    prefix = plaintext[:PREFIX_LENGTH]
    hex_part = prefix[len(KEY_NAMESPACE) :]
    if any(c not in "0123456789abcdef" for c in hex_part):
        return None
    return prefix


def verify_key(plaintext: str, stored_hash: str) -> bool:
    # Constant time, so response timing reveals nothing about how much of a
    # guessed key matched the stored digest.
    return hmac.compare_digest(hash_key(plaintext).encode(), stored_hash.encode())
