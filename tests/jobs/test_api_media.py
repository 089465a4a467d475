"""The jobs service's submit of the audio, video and try-on operations
(services/jobs/api.py): the price computed from the request and charged once,
an Idempotency-Key replay charging nothing more, the seed fixed at submit,
503 model_unavailable (nothing charged) while the pipeline model is not deployed,
and the price tiers in the operations listing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2
from lightbox.v1 import jobs_pb2

from services.common import models
from services.common.errors import MD_CODE, MD_GUIDANCE
from services.common.operations import OPERATIONS
from services.jobs.api import JobService
from services.jobs.availability import Availability
from services.jobs.settings import JobsSettings
from services.jobs.store import AccountRecord, JobStore

ALL_MEDIA = {
    models.MUSICGEN,
    models.WAN_T2V,
    models.CATVTON,
    *models.REQUIRES[models.MUSICGEN],
    *models.REQUIRES[models.WAN_T2V],
    *models.REQUIRES[models.CATVTON],
}


class Aborted(Exception):
    pass


class Context:
    """The servicer's side of a call: aborts raise, with the trailing metadata kept."""

    def __init__(self) -> None:
        self.metadata: dict[str, str] = {}
        self.code: grpc.StatusCode | None = None

    def invocation_metadata(self) -> tuple:
        return ()

    def set_trailing_metadata(self, md: tuple) -> None:
        self.metadata = dict(md)

    def abort(self, code: grpc.StatusCode, message: str) -> None:
        self.code = code
        raise Aborted(message)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[JobStore, AccountRecord, set[str], JobService]]:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    store = JobStore(url)
    store.migrate()
    ready: set[str] = set(ALL_MEDIA)
    availability = Availability(None, lambda: ready, cache_seconds=0)  # type: ignore[arg-type]
    settings = JobsSettings(home=tmp_path, database_url=url)
    service = JobService(store, dict(OPERATIONS), availability, settings)
    account = store.create_account("media", credits=200, max_concurrent_jobs=10)
    yield store, account, ready, service
    store.close()


def _submit(
    service: JobService,
    account: AccountRecord,
    operation: str,
    params: dict[str, Any],
    inputs: dict[str, str] | None = None,
    key: str = "",
    ctx: Context | None = None,
) -> jobs_pb2.SubmitJobResponse:
    struct = struct_pb2.Struct()
    struct.update(params)
    return service.SubmitJob(
        jobs_pb2.SubmitJobRequest(
            account_id=account.id,
            operation=operation,
            params=struct,
            inputs=inputs or {},
            idempotency_key=key,
            request_fingerprint=f"{operation}{sorted(params.items())}",
        ),
        ctx or Context(),  # type: ignore[arg-type]
    )


def test_credits_by_tier_charged_once_and_replayed_free(world: tuple[Any, ...]) -> None:
    store, account, _, service = world
    audio = _submit(service, account, "audio-generate", {"prompt": "rain", "duration": 20}, key="a")
    assert audio.job.credits_used == 10.0 and not audio.replayed
    again = _submit(service, account, "audio-generate", {"prompt": "rain", "duration": 20}, key="a")
    assert again.replayed and again.job.id == audio.job.id
    video = _submit(service, account, "video-generate", {"prompt": "sea", "resolution": "720p"})
    assert video.job.credits_used == 65.0
    assert store.balance(account.id) == 200 - 10 - 65
    # The seed is fixed at submit, so that a retry makes the same output.
    assert isinstance(store.get(audio.job.id).params["seed"], int)


def test_tryon_needs_both_photos(world: tuple[Any, ...]) -> None:
    store, account, _, service = world
    ctx = Context()
    with pytest.raises(Aborted):
        _submit(service, account, "virtual-tryon", {"category": "dress"}, {"person": "k"}, ctx=ctx)
    assert ctx.metadata[MD_CODE] == "invalid_parameter"
    ok = _submit(
        service, account, "virtual-tryon", {"category": "dress"}, {"person": "p", "garment": "g"}
    )
    assert ok.job.credits_used == 25.0 and store.balance(account.id) == 175.0


@pytest.mark.parametrize(
    ("operation", "params", "model"),
    [
        ("audio-generate", {"prompt": "rain"}, models.MUSICGEN),
        ("video-generate", {"prompt": "sea"}, models.WAN_T2V),
        ("virtual-tryon", {"category": "dress"}, models.CATVTON),
    ],
)
def test_model_unavailable_until_deployed_and_uncharged(
    world: tuple[Any, ...], operation: str, params: dict[str, Any], model: str
) -> None:
    store, account, ready, service = world
    ready.discard(models.REQUIRES[model][0])  # one component missing is enough
    ctx = Context()
    inputs = {"person": "p", "garment": "g"} if operation == "virtual-tryon" else {}
    with pytest.raises(Aborted, match=model):
        _submit(service, account, operation, params, inputs, ctx=ctx)
    assert ctx.code == grpc.StatusCode.UNAVAILABLE and ctx.metadata[MD_CODE] == "model_unavailable"
    hint = models.INSTALL_HINT.get(model, f"Install '{model}' with `lightbox models install`.")
    assert ctx.metadata[MD_GUIDANCE] == hint
    assert store.balance(account.id) == 200.0


def test_listing_shows_the_tiers_in_force(world: tuple[Any, ...]) -> None:
    service = world[3]
    listed = {
        op.name: op
        for op in service.ListOperations(jobs_pb2.ListOperationsRequest(), Context()).operations  # type: ignore[arg-type]
    }
    assert listed["audio-generate"].credits == 5.0 and not listed["audio-generate"].takes_image
    assert "10 for 16-30 s" in listed["audio-generate"].description
    assert "720p 65 credits" in listed["video-generate"].description
    assert listed["virtual-tryon"].credits == 25.0 and listed["virtual-tryon"].takes_image
