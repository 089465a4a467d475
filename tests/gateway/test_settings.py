"""The signing secret: generated and kept in local mode, required and strong in production."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from services.gateway.settings import GatewaySettings


def test_local_mode_generates_and_keeps_a_secret(tmp_path: Path) -> None:
    first = GatewaySettings(home=tmp_path)
    assert len(first.signing_secret) >= 32
    assert (tmp_path / "signing-secret").stat().st_mode & 0o777 == 0o600
    assert GatewaySettings(home=tmp_path).signing_secret == first.signing_secret


@pytest.mark.parametrize("secret", ["", "changeme", "secret", "short-but-not-default"])
def test_production_refuses_missing_default_or_weak_secrets(tmp_path: Path, secret: str) -> None:
    with pytest.raises(ValidationError) as err:
        GatewaySettings(home=tmp_path, mode="production", signing_secret=secret)
    assert "LIGHTBOX_SIGNING_SECRET" in str(err.value)
    assert not (tmp_path / "signing-secret").exists()


def test_production_takes_a_strong_secret(tmp_path: Path) -> None:
    strong = "k3" * 20
    assert (
        GatewaySettings(home=tmp_path, mode="production", signing_secret=strong).signing_secret
        == strong
    )


def test_environment_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIGHTBOX_MODE", "production")
    monkeypatch.setenv("LIGHTBOX_HOME", str(tmp_path))
    monkeypatch.delenv("LIGHTBOX_SIGNING_SECRET", raising=False)
    with pytest.raises(ValidationError):
        GatewaySettings()
    monkeypatch.setenv("LIGHTBOX_SIGNING_SECRET", "z" * 40)
    assert GatewaySettings().mode == "production"
