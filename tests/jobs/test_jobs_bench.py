"""The queue benchmark runs end to end at a tiny size, so `make bench` cannot
rot unnoticed: every job is completed on both databases and the report has the
fields BENCHMARKS.md quotes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.postgres
def test_jobs_bench_completes_every_job_on_both_databases(tmp_path: Path) -> None:
    out = tmp_path / "jobs.json"
    subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "jobs_bench.py"),
            "--backends",
            "sqlite,postgresql",
            "--workers",
            "2",
            "--jobs",
            "40",
            "--latency-rate",
            "40",
            "--latency-seconds",
            "0.5",
            "--repeat",
            "1",
            "--settle",
            "0",
            "--out",
            str(out),
        ],
        check=True,
        timeout=300,
        cwd=REPO,
        capture_output=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    report = json.loads(out.read_text())
    rows = {r["backend"]: r for r in report["results"]}
    assert set(rows) == {"sqlite", "postgresql"}
    for row in rows.values():
        assert row["completed"] == row["jobs"] == 40
        assert row["runs"] == 1 and row["jobs_per_s_runs"] == [row["jobs_per_s"]]
        assert row["jobs_per_s"] > 0 and row["latency_jobs"] == 20
        assert 0 <= row["claim_p50_ms"] <= row["claim_p99_ms"] <= row["claim_max_ms"]
        # Where the CPU went, per job (read from /proc, so Linux only).
        cpu = row["cpu_us_per_job"]
        assert set(cpu) == {"workers", "submitters", "postgres", "machine"}
        assert cpu["workers"] > 0 and cpu["submitters"] > 0 and cpu["machine"] > 0
        assert row["cpu_us_per_job_runs"] == [cpu]
    assert rows["postgresql"]["cpu_us_per_job"]["postgres"] > 0
    # Every run's files stayed until the end, and then went.
    assert not list(tmp_path.glob("lightbox-jobs-bench-*"))


def test_a_case_reports_the_median_of_its_runs_and_keeps_each() -> None:
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import jobs_bench
    finally:
        sys.path.remove(str(REPO / "bench"))
    runs = [
        {
            "jobs_per_s": v,
            "claim_p50_ms": 1.0,
            "claim_p99_ms": p99,
            "claim_max_ms": 9.0,
            "seconds": 1.0,
            "submit_seconds": 0.5,
            "load_avg_1m_before": load,
            "cpu_us_per_job": {"workers": w, "postgres": 2 * w},
        }
        for v, p99, load, w in (
            (500.0, 40.0, 1.0, 700),
            (300.0, 60.0, 3.0, 900),
            (400.0, 20.0, 2.0, 800),
        )
    ]
    row = jobs_bench.median_of(runs)
    assert (row["jobs_per_s"], row["claim_p99_ms"], row["runs"]) == (400.0, 40.0, 3)
    assert row["jobs_per_s_runs"] == [500.0, 300.0, 400.0]
    assert row["load_avg_1m_before"] == 3.0
    assert row["cpu_us_per_job"] == {"workers": 800, "postgres": 1600}
    assert [c["workers"] for c in row["cpu_us_per_job_runs"]] == [700, 900, 800]
