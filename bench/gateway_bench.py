"""Gateway benchmark: status polls per second and submit latency, through the
real gateway, with a load generator on loopback.

    .venv/bin/python bench/gateway_bench.py                  # starts its own stack
    .venv/bin/python bench/gateway_bench.py --base-url http://127.0.0.1:8080 --key lb_live_...

Polls: GET /v1/image/{id} over keep-alive connections with a minimal HTTP/1.1
client (so the generator spends little of the CPU it shares with the server),
closed-loop at a fixed concurrency for the peak rate, then open-loop at a fixed
offered rate, where latency is timed from each request's scheduled start (a
stalled server cannot hide its queueing). Each poll scenario runs with the
gateway's short GetJob cache (the default) and, on a second gateway started
for the purpose, without it. Submits: sequential multipart uploads of a small
PNG to remove-background. Results go to bench/results/gateway.json and a
markdown table is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TERMINAL = ("completed", "failed", "blocked", "canceled")


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def summary(latencies_s: list[float], elapsed_s: float, errors: int) -> dict[str, Any]:
    ms = sorted(x * 1000 for x in latencies_s)
    return {
        "requests": len(ms),
        "errors": errors,
        "seconds": round(elapsed_s, 2),
        "per_second": round(len(ms) / elapsed_s, 1) if elapsed_s else 0.0,
        "p50_ms": round(percentile(ms, 0.50), 2),
        "p90_ms": round(percentile(ms, 0.90), 2),
        "p99_ms": round(percentile(ms, 0.99), 2),
        "max_ms": round(ms[-1], 2) if ms else float("nan"),
    }


class Connection:
    """One keep-alive HTTP/1.1 connection; GETs with a fixed header set."""

    def __init__(self, host: str, port: int, key: str) -> None:
        self.host, self.port, self.key = host, port, key
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def get(self, path: str) -> int:
        assert self.reader is not None and self.writer is not None
        self.writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Authorization: Bearer {self.key}\r\n\r\n".encode()
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return int(head[9:12])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def closed_loop(
    host: str, port: int, key: str, paths: list[str], concurrency: int, seconds: float
) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(n: int) -> None:
        nonlocal errors
        conn = Connection(host, port, key)
        await conn.open()
        i = n
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                status = await conn.get(paths[i % len(paths)])
                latencies.append(time.perf_counter() - started)
                errors += status != 200
                i += concurrency
        finally:
            conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    out = summary(latencies, time.perf_counter() - started, errors)
    out.update(mode="closed-loop", concurrency=concurrency)
    return out


async def open_loop(
    host: str,
    port: int,
    key: str,
    paths: list[str],
    rate: float,
    seconds: float,
    connections: int,
) -> dict[str, Any]:
    """`rate` requests per second spread over `connections`; a request that
    cannot start on time (its connection still busy) counts its wait."""
    latencies: list[float] = []
    errors = 0
    total = int(rate * seconds)
    t0 = time.perf_counter() + 0.2

    async def worker(n: int) -> None:
        nonlocal errors
        conn = Connection(host, port, key)
        await conn.open()
        try:
            for i in range(n, total, connections):
                scheduled = t0 + i / rate
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                status = await conn.get(paths[i % len(paths)])
                latencies.append(time.perf_counter() - scheduled)
                errors += status != 200
        finally:
            conn.close()

    await asyncio.gather(*(worker(n) for n in range(connections)))
    out = summary(latencies, time.perf_counter() - t0, errors)
    out.update(mode="open-loop", offered_per_second=rate, connections=connections)
    return out


def small_png() -> bytes:
    rgb = np.full((64, 64, 3), 235, np.uint8)
    rgb[16:48, 20:44] = (200, 30, 40)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()


def submit_jobs(base: str, key: str, count: int) -> tuple[dict[str, Any], list[str]]:
    headers = {"Authorization": f"Bearer {key}"}
    data = small_png()
    latencies, ids = [], []
    with httpx.Client(timeout=60) as client:
        for _ in range(count):
            started = time.perf_counter()
            r = client.post(
                f"{base}/v1/image/remove-background",
                headers=headers,
                files={"image": ("p.png", data, "image/png")},
            )
            latencies.append(time.perf_counter() - started)
            if r.status_code != 202:
                raise SystemExit(f"submit failed: {r.status_code} {r.text}")
            ids.append(r.json()["id"])
        deadline = time.monotonic() + 300
        for job_id in ids:
            while (
                client.get(f"{base}/v1/image/{job_id}", headers=headers).json()["status"]
                not in TERMINAL
            ):
                if time.monotonic() > deadline:
                    raise SystemExit("jobs did not finish in 300 s")
                time.sleep(0.1)
    out = summary(latencies, sum(latencies), 0)
    out.pop("per_second")
    out["image"] = "64x64 PNG, multipart"
    return out, ids


class LocalStack:
    """A fresh stack in a temporary LIGHTBOX_HOME, a bench key with a rate limit
    that does not interfere, and a second gateway with the GetJob cache off."""

    def __init__(self) -> None:
        from services.common.ports import free_port_block
        from services.common.settings import CommonSettings
        from services.stack import Stack

        self.home = Path(tempfile.mkdtemp(prefix="lightbox-bench-"))
        settings = CommonSettings(
            home=self.home,
            http_port=free_port_block(7),
            numba_cache_dir=REPO / ".lightbox" / "numba_cache",
        )
        self.stack = Stack(settings=settings, log_path=self.home / "stack.log")
        self.uncached: subprocess.Popen[bytes] | None = None
        self.uncached_port = free_port_block(1)

    def start(self) -> tuple[str, str, str]:
        from services.jobs.store import JobStore

        self.stack.prepare()
        self.stack.start()
        self.stack.wait_ready(timeout=300)
        store = JobStore(self.stack.settings.database_url)
        account = store.create_account(
            "bench", plan="bench", credits=1e6, rate_limit_per_minute=100_000_000
        )
        key, _ = store.create_api_key(account.id)
        store.close()
        s = self.stack.settings
        env = dict(
            os.environ,
            LIGHTBOX_HOME=str(s.home),
            LIGHTBOX_DATABASE_URL=s.database_url,
            LIGHTBOX_HTTP_PORT=str(self.uncached_port),
            LIGHTBOX_JOBS_ADDR=s.jobs_addr,
            LIGHTBOX_COMPOSITOR_ADDR=s.compositor_addr,
            LIGHTBOX_TRITON_HTTP_PORT=str(s.triton_http_port),
            LIGHTBOX_JOB_CACHE_SECONDS="0",
            LIGHTBOX_JOB_CACHE_TERMINAL_SECONDS="0",
        )
        self.uncached = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "serve", "gateway"],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        uncached_url = f"http://127.0.0.1:{self.uncached_port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(uncached_url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the uncached gateway did not start")
            time.sleep(0.2)
        return self.stack.base_url, uncached_url, key

    def stop(self) -> None:
        if self.uncached is not None:
            self.uncached.terminate()
            self.uncached.wait(timeout=10)
        self.stack.stop()


def table(results: dict[str, Any]) -> str:
    rows = [
        "| scenario | mode | req/s | p50 ms | p99 ms | max ms | errors |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for p in results["polls"]:
        mode = (
            f"closed, {p['concurrency']} conns"
            if p["mode"] == "closed-loop"
            else f"open, {p['offered_per_second']:g}/s offered"
        )
        rows.append(
            f"| GET /v1/image/{{id}}, {p['cache']} | {mode} | {p['per_second']:.0f} | "
            f"{p['p50_ms']:.1f} | {p['p99_ms']:.1f} | {p['max_ms']:.1f} | "
            f"{p['errors']} |"
        )
    s = results["submit"]
    rows.append(
        f"| POST /v1/image/remove-background ({s['image']}) | sequential, "
        f"{s['requests']} | — | {s['p50_ms']:.1f} | {s['p99_ms']:.1f} | "
        f"{s['max_ms']:.1f} | {s['errors']} |"
    )
    return "\n".join(rows)


async def poll_scenarios(
    url: str, key: str, paths: list[str], cache: str, args: argparse.Namespace
) -> list[dict[str, Any]]:
    host, port = url.split("//")[1].split(":")
    out = []
    for run in (
        closed_loop(host, int(port), key, paths, args.concurrency, args.seconds),
        open_loop(host, int(port), key, paths, args.rate, args.seconds, args.connections),
    ):
        result = await run
        result["cache"] = cache
        out.append(result)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", help="a running gateway (default: start a stack)")
    parser.add_argument("--key", help="API key for --base-url (needs a high rate limit)")
    parser.add_argument("--uncached-url", help="a second gateway with the job cache off")
    parser.add_argument("--seconds", type=float, default=10.0, help="per poll scenario")
    parser.add_argument("--concurrency", type=int, default=16, help="closed-loop connections")
    parser.add_argument("--rate", type=float, default=800.0, help="open-loop requests/s")
    parser.add_argument("--connections", type=int, default=32, help="open-loop connections")
    parser.add_argument("--submits", type=int, default=40)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "gateway.json")
    args = parser.parse_args()

    load_at_start = [round(x, 2) for x in os.getloadavg()]
    local: LocalStack | None = None
    if args.base_url:
        if not args.key:
            parser.error("--key is required with --base-url")
        url, uncached_url, key = args.base_url.rstrip("/"), args.uncached_url, args.key
    else:
        local = LocalStack()
        url, uncached_url, key = local.start()
    try:
        submit, ids = submit_jobs(url, key, args.submits)
        paths = [f"/v1/image/{job_id}" for job_id in ids]
        polls = asyncio.run(poll_scenarios(url, key, paths, "job cache on (default)", args))
        if uncached_url:
            polls += asyncio.run(poll_scenarios(uncached_url, key, paths, "job cache off", args))
    finally:
        if local is not None:
            local.stop()

    results = {
        "benchmark": "gateway",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_at_start": load_at_start,
            "note": "load generator, gateway, jobs API, worker, compositor and Triton share "
            "these CPUs (and whatever else runs on the machine: see the load average)",
        },
        "config": {
            k: (str(v.relative_to(REPO)) if isinstance(v, Path) and v.is_relative_to(REPO) else v)
            for k, v in vars(args).items()
            if k != "key"
        },
        "targets": {"polls_per_second": 800, "p99_ms": 50},
        "submit": submit,
        "polls": polls,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    default = next(p for p in polls if p["mode"] == "open-loop" and "on" in p["cache"])
    met = default["per_second"] >= 0.97 * args.rate and default["p99_ms"] <= 50
    print(
        f"\ntarget, default configuration (>= 800 polls/s served with p99 <= 50 ms): "
        f"{'met' if met else 'NOT met'} ({default['per_second']:.0f}/s, p99 "
        f"{default['p99_ms']:.1f} ms); results in {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
