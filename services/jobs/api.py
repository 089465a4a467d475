"""The JobService and AccountService servicers: thin translations between the
wire and the JobStore. Errors are domain exceptions; `handle_errors` maps them."""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import json_format
from lightbox.v1 import accounts_pb2, accounts_pb2_grpc, jobs_pb2, jobs_pb2_grpc

from services.common.errors import InvalidParameter, Unauthorized
from services.common.grpcutil import handle_errors
from services.common.logs import request_id
from services.common.operations import Operation
from services.jobs.availability import Availability
from services.jobs.convert import job_to_proto
from services.jobs.settings import JobsSettings
from services.jobs.store import JobStore

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

# Operations whose output depends on a random seed (generated or procedural scenes).
SEEDED_OPERATIONS = {
    "product-photo",
    "replace-background",
    "generate",
    "audio-generate",
    "video-generate",
    "virtual-tryon",
}

PROMPT_FIELDS = (
    "prompt",
    "background_prompt",
    "scene_prompt",
    "negative_prompt",
    "lighting_prompt",
)


def blocked_reason(params: dict, denylist: list[str]) -> str | None:
    """The first deny-listed word in any prompt field, if one is there."""
    for field in PROMPT_FIELDS:
        text = str(params.get(field) or "").lower()
        for word in denylist:
            if word and word.lower() in text:
                return f"The {field} contains a term this server does not allow."
    return None


def with_request_id(method: F) -> F:
    """Log under the caller's X-Request-ID (the gateway sends it as metadata), so
    one request can be followed from the gateway's log into this one."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        metadata = dict(context.invocation_metadata() or ())
        token = request_id.set(str(metadata.get("x-request-id") or "-")[:128])
        try:
            return method(self, request, context)
        finally:
            request_id.reset(token)

    return wrapper  # type: ignore[return-value]


class JobService(jobs_pb2_grpc.JobServiceServicer):
    def __init__(
        self,
        store: JobStore,
        operations: dict[str, Operation],
        availability: Availability,
        settings: JobsSettings,
    ) -> None:
        self.store = store
        self.operations = operations
        self.availability = availability
        self.settings = settings

    @with_request_id
    @handle_errors
    def SubmitJob(
        self, request: jobs_pb2.SubmitJobRequest, context: grpc.ServicerContext
    ) -> jobs_pb2.SubmitJobResponse:
        op = self.operations.get(request.operation)
        if op is None:
            raise InvalidParameter("operation", f"Unknown operation {request.operation!r}.")
        for role in op.inputs:
            if role not in request.inputs:
                raise InvalidParameter(role, f"{op.name} needs an input image ({role}).")
        params = json_format.MessageToDict(request.params)
        if op.name in SEEDED_OPERATIONS and params.get("seed") is None:
            # Fixed now so the job shows the seed that ran and a retry redraws the same.
            params["seed"] = secrets.randbelow(2**32)
        reason = blocked_reason(params, self.settings.content_denylist)
        if reason is None:
            self.availability.check(op.name, params)
        job, replayed = self.store.submit(
            account_id=request.account_id,
            operation=op.name,
            params=params,
            inputs=dict(request.inputs),
            # Priced by the request where the table has tiers (audio length, video
            # resolution and length): computed once, here, and refunded as charged.
            credits=op.credits_for(params),
            pipeline=list(op.pipeline),
            estimated_seconds=op.estimated_seconds,
            idempotency_key=request.idempotency_key or None,
            request_fingerprint=request.request_fingerprint,
            webhook_url=request.webhook_url or None,
            max_attempts=self.settings.max_attempts,
            blocked_reason=reason,
        )
        log.info("job %s %s account=%s replayed=%s", job.id, job.status, job.account_id, replayed)
        return jobs_pb2.SubmitJobResponse(job=job_to_proto(job), replayed=replayed)

    @with_request_id
    @handle_errors
    def GetJob(
        self, request: jobs_pb2.GetJobRequest, context: grpc.ServicerContext
    ) -> jobs_pb2.Job:
        return job_to_proto(self.store.get(request.job_id, account_id=request.account_id))

    @with_request_id
    @handle_errors
    def ListJobs(
        self, request: jobs_pb2.ListJobsRequest, context: grpc.ServicerContext
    ) -> jobs_pb2.ListJobsResponse:
        limit = request.limit or 20
        if not 1 <= limit <= 100:
            raise InvalidParameter("limit", "limit must be between 1 and 100.")
        jobs, cursor = self.store.list_jobs(
            request.account_id, limit=limit, cursor=request.cursor or None
        )
        return jobs_pb2.ListJobsResponse(
            jobs=[job_to_proto(j) for j in jobs], next_cursor=cursor or ""
        )

    @with_request_id
    @handle_errors
    def CancelJob(
        self, request: jobs_pb2.CancelJobRequest, context: grpc.ServicerContext
    ) -> jobs_pb2.Job:
        return job_to_proto(self.store.cancel(request.job_id, request.account_id))

    @with_request_id
    @handle_errors
    def ListOperations(
        self, request: jobs_pb2.ListOperationsRequest, context: grpc.ServicerContext
    ) -> jobs_pb2.ListOperationsResponse:
        return jobs_pb2.ListOperationsResponse(
            operations=[
                jobs_pb2.OperationInfo(
                    name=op.name,
                    credits=op.credits,
                    pipeline=list(op.pipeline),
                    estimated_seconds=op.estimated_seconds,
                    description=" ".join(filter(None, (op.description, op.price_note()))),
                    takes_image=op.takes_image,
                )
                for op in self.operations.values()
            ]
        )

    @with_request_id
    @handle_errors
    def GetQueueStats(
        self, request: jobs_pb2.GetQueueStatsRequest, context: grpc.ServicerContext
    ) -> jobs_pb2.QueueStats:
        return jobs_pb2.QueueStats(queued=self.store.queue_depth())


class AccountService(accounts_pb2_grpc.AccountServiceServicer):
    def __init__(self, store: JobStore) -> None:
        self.store = store

    @with_request_id
    @handle_errors
    def Authenticate(
        self, request: accounts_pb2.AuthenticateRequest, context: grpc.ServicerContext
    ) -> accounts_pb2.Account:
        found = self.store.authenticate(request.api_key)
        if found is None:
            raise Unauthorized("The API key is unknown or revoked.")
        account, key = found
        return accounts_pb2.Account(
            id=account.id,
            name=account.name,
            plan=account.plan,
            rate_limit_per_minute=account.rate_limit_per_minute,
            allowed_operations=list(account.allowed_operations),
            key_id=key.id,
        )

    @with_request_id
    @handle_errors
    def GetBalance(
        self, request: accounts_pb2.GetBalanceRequest, context: grpc.ServicerContext
    ) -> accounts_pb2.Balance:
        account = self.store.get_account(request.account_id)
        return accounts_pb2.Balance(
            credits_remaining=self.store.balance(account.id),
            plan=account.plan,
            rate_limit_per_minute=account.rate_limit_per_minute,
        )
