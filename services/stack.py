"""The embedded stack on one machine: tritonserver, compositor, jobs API,
worker and gateway as child processes, supervised together. `make run` and
the whole-stack tests both use it; Ctrl-C (or SIGTERM) stops every process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from services.common import models, triton
from services.common.settings import CommonSettings
from services.models.repository import loadable_models

DEV_KEY_FILE = "dev-api-key"
DEV_CREDITS = 10_000.0


@dataclass
class Child:
    name: str
    command: list[str]
    env: dict[str, str]
    process: subprocess.Popen | None = None
    log_thread: threading.Thread | None = None


@dataclass
class Stack:
    settings: CommonSettings = field(default_factory=CommonSettings)
    model_repository: Path = triton.MODEL_REPOSITORY
    # Where children's output goes: our stdout (interactive) or a log file (tests).
    log_path: Path | None = None
    # Environment for every child on top of ours (settings of one service, e.g. a test
    # stack's limits).
    extra_env: dict[str, str] = field(default_factory=dict)
    children: list[Child] = field(default_factory=list)
    _log_file: Any = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.http_port}"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["LIGHTBOX_HOME"] = str(self.settings.home)
        env["LIGHTBOX_HTTP_PORT"] = str(self.settings.http_port)
        env["LIGHTBOX_DATABASE_URL"] = self.settings.database_url
        env["PYTHONUNBUFFERED"] = "1"
        env["LIGHTBOX_NUMBA_CACHE_DIR"] = str(self.settings.numba_cache_dir)
        env["LIGHTBOX_MODEL_REPOSITORY"] = str(self.model_repository)
        env.update(self.extra_env)
        return env

    def prepare(self) -> str:
        """Directories, database schema, Triton backend, numba cache and the dev key.
        Returns the dev API key."""
        from services.jobs.store import JobStore

        home = self.settings.home
        home.mkdir(parents=True, exist_ok=True)
        self.settings.blob_root.mkdir(parents=True, exist_ok=True)
        triton.prepare_backend_dir(home / "triton" / "backends")
        triton.warm_numba(self.settings.numba_cache_dir)
        store = JobStore(self.settings.database_url)
        try:
            store.migrate()
            return ensure_dev_key(store, home)
        finally:
            store.close()

    def start(self) -> None:
        s = self.settings
        env = self._env()
        py = sys.executable
        home = s.home
        self.children = [
            Child(
                "triton",
                triton.server_command(
                    self.model_repository,
                    home / "triton" / "backends",
                    grpc_port=int(s.triton_grpc_addr.rsplit(":", 1)[1]),
                    http_port=s.triton_http_port,
                    metrics_port=s.triton_metrics_port,
                    # Only what can load: a production model whose weights are not
                    # installed is left out instead of failing its load.
                    model_control="explicit",
                    load_models=loadable_models(self.model_repository),
                ),
                triton.server_env(self.settings.numba_cache_dir, base=env),
            ),
            Child("compositor", [py, "-m", "services.cli", "serve", "compositor"], env),
            Child("jobs", [py, "-m", "services.cli", "serve", "jobs"], env),
            Child("worker", [py, "-m", "services.cli", "serve", "worker"], env),
            Child("gateway", [py, "-m", "services.cli", "serve", "gateway"], env),
        ]
        self._log_file = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115
        for child in self.children:
            self._spawn(child)

    def _spawn(self, child: Child) -> None:
        width = max(len(c.name) for c in self.children)
        child.process = subprocess.Popen(
            child.command,
            env=child.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        child.log_thread = threading.Thread(
            target=_pump, args=(child, width, self._log_file), daemon=True
        )
        child.log_thread.start()

    def kill(self, name: str) -> None:
        """Stop one process and its group (SIGTERM, then SIGKILL) and wait for it."""
        child = self.child(name)
        if child.process is None:
            return
        _signal_group(child.process.pid, signal.SIGTERM)
        try:
            child.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        _signal_group(child.process.pid, signal.SIGKILL)
        child.process.wait()

    def restart(self, name: str) -> None:
        self.kill(name)
        self._spawn(self.child(name))

    def dead(self) -> list[str]:
        return [c.name for c in self.children if c.process and c.process.poll() is not None]

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.dead():
                raise RuntimeError(f"stack process(es) exited during start: {self.dead()}")
            try:
                r = httpx.get(self.base_url + "/readyz", timeout=2)
                if r.status_code == 200:
                    return
                last = r.text
            except httpx.HTTPError as exc:
                last = str(exc)
            time.sleep(0.25)
        raise TimeoutError(f"stack not ready after {timeout:.0f} s: {last}")

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM every child's whole process group (Triton's python stubs too, even
        when tritonserver itself already died), then SIGKILL what outlives `timeout`."""
        for child in reversed(self.children):
            if child.process is not None:
                _signal_group(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in self.children:
            if child.process is None:
                continue
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(child.process.pid, signal.SIGKILL)
            child.process.wait()

    def child(self, name: str) -> Child:
        return next(c for c in self.children if c.name == name)


def _signal_group(pgid: int, sig: int) -> None:
    """Signal a child's process group; each child leads its own (start_new_session)."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _pump(child: Child, width: int, log_file: object | None) -> None:
    assert child.process is not None and child.process.stdout is not None
    prefix = f"{child.name:<{width}} | ".encode()
    for line in iter(child.process.stdout.readline, b""):
        if log_file is not None:
            log_file.write(prefix + line)  # type: ignore[attr-defined]
            log_file.flush()  # type: ignore[attr-defined]
        else:
            sys.stdout.buffer.write(prefix + line)
            sys.stdout.buffer.flush()


def ensure_dev_key(store: object, home: Path) -> str:
    """The dev key from LIGHTBOX_HOME, created (with credits) on first run."""
    path = home / DEV_KEY_FILE
    if path.exists():
        key = path.read_text().strip()
        if store.authenticate(key) is not None:  # type: ignore[attr-defined]
            return key
    account = store.create_account(
        "dev", plan="dev", credits=DEV_CREDITS, rate_limit_per_minute=600
    )  # type: ignore[attr-defined]
    key, _ = store.create_api_key(account.id)  # type: ignore[attr-defined]
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def model_lines(repo: Path, ready: set[str] | None) -> list[str]:
    """The banner's lines on models: the matting engine that serves (as the worker's
    "auto" picks it), where each provisioned model came from and its licences, and,
    loudly, a packaged model that is missing, why, and how to install it by hand."""
    from services.jobs.engines import MATTING_ENGINES, UPSCALE_ENGINES
    from services.models.packages import packaged_state

    lines: list[str] = []
    if ready is None:
        lines.append("  Matting:  unknown (Triton did not answer)")
        lines.append("  Upscale:  unknown (Triton did not answer)")
    else:
        engine = next((e for m, e in MATTING_ENGINES if models.usable(m, ready)), None)
        neural = engine not in (None, "classical")
        text = engine or "NONE"
        lines.append(f"  Matting:  {text}" + ("" if neural else "  (no learned matting model)"))
        engine = next((e for m, e in UPSCALE_ENGINES if models.usable(m, ready)), None)
        neural = engine not in (None, "lanczos")
        text = engine or "NONE"
        lines.append(f"  Upscale:  {text}" + ("" if neural else "  (no super-resolution network)"))
    for p in packaged_state(repo):
        licence = ", ".join(f"{k} {v.split(' ')[0]}" for k, v in p["licence"].items())
        if p["installed"]:
            origin = p["provenance"]
            source = f"{origin['package']}@{origin['version']}" if origin else "installed by hand"
            lines.append(f"  {p['model']}: {source} (licences: {licence})")
            if ready is not None and not models.usable(p["front"], ready):
                lines.append(f"  !! {p['front']} is installed but not ready in Triton: see its log")
            continue
        last = p["last_provisioning"] or {}
        lines += [
            "",
            f"  !! {p['front']} is NOT installed: the stack serves without it.",
            f"  !! {last.get('message', 'not provisioned (`make run` provisions it)')}",
            f"  !! {p['package']}@{p['version']} (licences: {licence}); install it with:",
            *(f"  !!   {line}" for line in p["by_hand"]),
        ]
    return lines


def _ready_models(addr: str) -> set[str] | None:
    import tritonclient.grpc as triton_grpc
    from tritonclient.utils import InferenceServerException

    client = triton_grpc.InferenceServerClient(addr)
    try:
        index = client.get_model_repository_index(as_json=True, client_timeout=5.0)
    except InferenceServerException:
        return None
    finally:
        client.close()
    return {m["name"] for m in index.get("models", []) if m.get("state") == "READY"}


def run_foreground() -> int:
    """`make run`: start everything, print URL and key, stop it all on Ctrl-C."""
    stack = Stack()
    t0 = time.monotonic()
    print(f"Lightbox: preparing {stack.settings.home} ...", flush=True)
    key = stack.prepare()
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stack.start()
    try:
        stack.wait_ready()
    except (RuntimeError, TimeoutError) as exc:
        print(f"Lightbox failed to start: {exc}", file=sys.stderr, flush=True)
        stack.stop()
        return 1
    ready = _ready_models(stack.settings.triton_grpc_addr)
    print(
        "\n"
        f"  Lightbox is ready in {time.monotonic() - t0:.1f} s\n"
        f"  URL:      {stack.base_url}\n"
        f"  API docs: {stack.base_url}/docs\n"
        f"  Dev key:  {key}\n"
        f"            (also in {stack.settings.home / DEV_KEY_FILE})\n"
        + "\n".join(model_lines(stack.model_repository, ready))
        + "\n  Models:   GET /v1/models, `lightbox models list`\n"
        "  Ctrl-C stops everything.\n",
        flush=True,
    )
    code = 0
    while not stop.wait(0.5):
        if stack.dead():
            print(f"Lightbox: {stack.dead()} exited; stopping the stack", file=sys.stderr)
            code = 1
            break
    stack.stop()
    return code
