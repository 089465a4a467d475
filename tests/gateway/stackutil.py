"""Helpers for the API tests against the running stack: accounts with chosen
limits, test images, polling, and extra service processes (a second gateway,
a jobs API with other settings) wired to the same stack."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import requests
from PIL import Image

from services.common.ports import free_port_block
from services.jobs.store import JobStore
from tests.stack.conftest import RunningStack

REPO = Path(__file__).resolve().parents[2]
TERMINAL = ("completed", "failed", "blocked", "canceled")

_stores: dict[str, JobStore] = {}


def store_of(stack: RunningStack) -> JobStore:
    url = stack.stack.settings.database_url
    if url not in _stores:
        _stores[url] = JobStore(url)
    return _stores[url]


@dataclass
class Key:
    key: str
    account_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def h(self, **extra: str) -> dict[str, str]:
        return {**self.headers, **extra}


def make_key(
    stack: RunningStack,
    credits: float = 500,
    rpm: int = 6000,
    max_concurrent: int = 4,
    operations: tuple[str, ...] = (),
    plan: str = "test",
) -> Key:
    store = store_of(stack)
    account = store.create_account(
        "api-test",
        plan=plan,
        credits=credits,
        rate_limit_per_minute=rpm,
        allowed_operations=list(operations),
        max_concurrent_jobs=max_concurrent,
    )
    key, _ = store.create_api_key(account.id)
    return Key(key, account.id)


def encode(rgb: np.ndarray, fmt: str = "PNG", **kw: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, fmt, **kw)
    return buf.getvalue()


def product(w: int = 96, h: int = 128, fmt: str = "PNG", **kw: object) -> bytes:
    """A small red box on a light backdrop: quick to matte."""
    rgb = np.full((h, w, 3), 235, np.uint8)
    rgb[h // 4 : 3 * h // 4, w // 3 : 2 * w // 3] = (200, 30, 40)
    return encode(rgb, fmt, **kw)


def error_of(r: requests.Response | httpx.Response) -> str:
    body = r.json()
    assert set(body["detail"]) >= {"error", "message", "guidance"}, body
    return str(body["detail"]["error"])


def poll(base: str, job_id: str, headers: dict[str, str], timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = requests.get(f"{base}/v1/image/{job_id}", headers=headers, timeout=10)
        assert r.status_code == 200, r.text
        if r.json()["status"] in TERMINAL:
            return dict(r.json())
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


def stack_env(stack: RunningStack, **overrides: str) -> dict[str, str]:
    """The environment a service process needs to join `stack`."""
    s = stack.stack.settings
    env = dict(os.environ)
    env.update(
        LIGHTBOX_HOME=str(s.home),
        LIGHTBOX_DATABASE_URL=s.database_url,
        LIGHTBOX_JOBS_ADDR=s.jobs_addr,
        LIGHTBOX_COMPOSITOR_ADDR=s.compositor_addr,
        LIGHTBOX_TRITON_GRPC_ADDR=s.triton_grpc_addr,
        LIGHTBOX_TRITON_HTTP_PORT=str(s.triton_http_port),
        LIGHTBOX_TRITON_METRICS_PORT=str(s.triton_metrics_port),
        LIGHTBOX_NUMBA_CACHE_DIR=str(s.numba_cache_dir),
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


@dataclass
class Process:
    name: str
    url: str
    process: subprocess.Popen
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def service(stack: RunningStack, name: str, ready_path: str = "", **env: str) -> Iterator[Process]:
    """`lightbox serve NAME` with `env` over the stack's settings. For a gateway,
    waits until `ready_path` answers; for the jobs API until it serves gRPC."""
    from services.common.grpcutil import check_health

    port = int(env.get("LIGHTBOX_HTTP_PORT") or free_port_block(1))
    env.setdefault("LIGHTBOX_HTTP_PORT", str(port))
    log = stack.home / f"{name}-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "serve", name],
            env=stack_env(stack, **env),
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited: {log.read_text(errors='replace')[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not up: {log.read_text(errors='replace')[-3000:]}")
            if name == "gateway":
                try:
                    if httpx.get(url + (ready_path or "/healthz"), timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
            elif check_health(env["LIGHTBOX_JOBS_ADDR"], timeout=0.5):
                break
            time.sleep(0.1)
        yield Process(name, url, proc, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def rss_peak_kib(pid: int) -> int:
    """The process's peak resident memory (VmHWM) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmHWM for {pid}")


def child_pid(stack: RunningStack, name: str) -> int:
    process = stack.stack.child(name).process
    assert process is not None
    return process.pid
