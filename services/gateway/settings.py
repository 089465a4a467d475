"""Gateway settings (LIGHTBOX_* environment)."""

from __future__ import annotations

from pydantic import Field, model_validator

from services.common.links import load_signing_secret
from services.common.settings import CommonSettings


class GatewaySettings(CommonSettings):
    # HMAC key for output links. Local mode generates one into LIGHTBOX_HOME;
    # production refuses to start without an explicit, strong value.
    signing_secret: str = ""
    # Absolute base for output links ("https://img.example.com"); default: the request's host.
    public_base_url: str = ""
    max_upload_bytes: int = Field(10 * 1024 * 1024, gt=0)
    # Tests only: lets image_url/webhook_url reach loopback addresses.
    allow_loopback_urls: bool = False
    max_wait_seconds: int = Field(60, ge=0, le=300)
    # How long Segmind's synchronous POST /v1/{slug} holds the answer for its job;
    # past it, 504 with the request id (the job goes on; poll /v2/requests/{id}).
    segmind_sync_wait_seconds: int = Field(60, ge=0, le=300)
    # A key's account is re-read this often (a revoked key stops working within it);
    # an unknown key is remembered as unknown as long, so guessing costs no RPCs.
    auth_cache_seconds: float = Field(5.0, ge=0)
    # Polls of one job within this window share one read of the jobs service, so a
    # running job's completion shows up to this late: 0.25 s made a 1 MP product
    # photo 0.3-0.4 s slower end to end for a client polling every 50 ms (BENCHMARKS.md,
    # end to end), and 0.05 s still turns a storm of polls into 20 reads a second per
    # job. Terminal jobs change rarely (webhook records), so they may be kept longer.
    job_cache_seconds: float = Field(0.05, ge=0, le=5)
    job_cache_terminal_seconds: float = Field(2.0, ge=0, le=60)
    # Shared rate limits across gateway replicas when set.
    redis_url: str = ""
    # Requests per minute for callers without a key (health, output links).
    anonymous_rate_limit_per_minute: int = Field(600, gt=0)
    grpc_timeout_seconds: float = Field(30.0, gt=0)
    # Uploads checked (fully decoded) at once; more wait their turn.
    max_concurrent_decodes: int = Field(4, ge=1, le=64)

    @model_validator(mode="after")
    def _secret(self) -> GatewaySettings:
        # Shared with the webhook dispatcher, whose bodies carry the same links.
        self.signing_secret = load_signing_secret(self.signing_secret, self.home, self.mode)
        return self
