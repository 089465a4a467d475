"""The key that signs public output links and the base they are built on.

Shared by the gateway (output_url in its responses) and the webhook dispatcher
(the same output_url inside webhook bodies), so both sign with one secret."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

SECRET_FILE = "signing-secret"
_WEAK_SECRETS = {"changeme", "secret"}


def load_signing_secret(configured: str, home: Path, mode: str) -> str:
    """The configured secret; in local mode without one, the secret kept in
    `home/signing-secret`, created on first use.

    Processes starting together (gateway, workers) agree on one secret: the
    file is created complete under a temporary name and hard-linked into
    place, which fails for all but the first.
    """
    if configured:
        if mode == "production" and (len(configured) < 32 or configured in _WEAK_SECRETS):
            raise ValueError(
                "LIGHTBOX_SIGNING_SECRET must be at least 32 random characters in production"
            )
        return configured
    if mode == "production":
        raise ValueError("LIGHTBOX_SIGNING_SECRET is required when LIGHTBOX_MODE=production")
    path = home / SECRET_FILE
    if path.exists():
        return path.read_text().strip()
    home.mkdir(parents=True, exist_ok=True)
    candidate = secrets.token_urlsafe(32)
    tmp = home / f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    tmp.write_text(candidate)
    tmp.chmod(0o600)
    try:
        os.link(tmp, path)
    except FileExistsError:
        candidate = path.read_text().strip()
    finally:
        tmp.unlink(missing_ok=True)
    return candidate


def public_base_url(configured: str, http_port: int) -> str:
    """Where clients reach the gateway when no request says so (webhooks):
    LIGHTBOX_PUBLIC_BASE_URL, else the local gateway port."""
    return (configured or f"http://127.0.0.1:{http_port}").rstrip("/")
