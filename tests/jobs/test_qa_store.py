"""The jobs store keeps a job's QA (JobStore.record_qa), on SQLite and PostgreSQL."""

from __future__ import annotations

from services.jobs.convert import job_to_proto
from services.jobs.store import JobStore

from .test_store import submit

QA = {
    "scores": {"edge_halo": {"value": 0.02}, "resolution": {"width": 1000, "height": 1000}},
    "needs_review": True,
    "reasons": [{"code": "upscaled", "message": "The subject is enlarged 4.97x."}],
    "compliance": None,
}
OUTCOME = {
    "output_key": "out/qa",
    "width": 1000,
    "height": 1000,
    "format": "jpeg",
    "processing_ms": 5,
    "engines": {"matting": "isnet"},
    "pipeline": ["remove-background"],
    "output_ttl_seconds": 60,
}


def test_record_qa_then_complete_keeps_it_on_the_job(store: JobStore) -> None:
    account = store.create_account("acme", credits=20)
    job, _ = submit(store, account)
    assert store.get(job.id).qa is None
    store.claim("w1", 30)
    assert store.record_qa(job.id, "w1", QA) is True
    done, _ = store.complete_and_claim(job.id, "w1", lease_seconds=30, **OUTCOME)
    assert done
    finished = store.get(job.id)
    assert finished.status == "completed" and finished.qa == QA
    assert store.list_jobs(account.id)[0][0].qa == QA
    wire = job_to_proto(finished)
    assert wire.qa["needs_review"] is True
    assert wire.qa["reasons"][0]["code"] == "upscaled"


def test_record_qa_without_the_lease_records_nothing(store: JobStore) -> None:
    account = store.create_account("acme", credits=20)
    job, _ = submit(store, account)
    store.claim("w1", 30)
    assert store.record_qa(job.id, "w2", QA) is False
    assert store.get(job.id).qa is None
