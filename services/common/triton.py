"""Running the embedded Triton server: the real `tritonserver` 2.51 binary that ships
inside the `nvidia-pytriton` wheel, serving `model_repository/` on CPU through the
python backend.

This module is the one place that knows where the wheel keeps the binary, the python
backend and its stub, and which environment they need. The stack runner, tests and
benchmarks all go through it:

    backend = prepare_backend_dir(home / "triton" / "backends")
    warm_numba(home / "numba_cache")
    cmd = server_command(repo, backend, grpc_port=..., http_port=..., metrics_port=...)
    subprocess.Popen(cmd, env=server_env(home / "numba_cache"), ...)
    wait_ready("127.0.0.1:8003", timeout=120)

or, for tests and benchmarks, `TritonProcess.start(repo, work_dir)` which does all of it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

from services.common.ports import free_port_block

MODEL_REPOSITORY = Path(__file__).resolve().parents[2] / "model_repository"

_SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"])
_PYTRITON_TRITON = _SITE_PACKAGES / "pytriton" / "tritonserver"
TRITONSERVER_BIN = _PYTRITON_TRITON / "bin" / "tritonserver"
# The stub links against libcudart even on CPU; the wheel vendors it here.
_PYTRITON_LIBS = _SITE_PACKAGES / "nvidia_pytriton.libs"
_PY_TAG = f"{sys.version_info.major}.{sys.version_info.minor}"
_BACKEND_FILES = {
    "libtriton_python.so": _PYTRITON_TRITON / "backends" / "python" / "libtriton_python.so",
    "triton_python_backend_utils.py": _PYTRITON_TRITON
    / "backends"
    / "python"
    / "triton_python_backend_utils.py",
    "triton_python_backend_stub": _PYTRITON_TRITON
    / "python_backend_stubs"
    / _PY_TAG
    / "triton_python_backend_stub",
}

LOG_TAIL_LINES = 40


class TritonStartError(RuntimeError):
    """tritonserver did not come up (or died); the message carries its log tail."""


def prepare_backend_dir(dest: Path) -> Path:
    """Lay out a Triton backend directory at `dest` holding the python backend with the
    stub built for this interpreter's Python version, and return `dest`.

    The wheel keeps the backend library and the per-version stubs in different folders;
    Triton wants them side by side in `<backend-directory>/python/`. Idempotent."""
    python_dir = dest / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    for name, src in _BACKEND_FILES.items():
        if not src.exists():
            raise FileNotFoundError(
                f"{src} is missing: is nvidia-pytriton installed for Python {_PY_TAG}?"
            )
        target = python_dir / name
        if not target.exists() or target.stat().st_size != src.stat().st_size:
            shutil.copy2(src, target)
    return dest


def server_env(numba_cache_dir: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment tritonserver (and the python stubs it spawns) must run with.

    The stub ignores PYTHONPATH and finds site-packages through the `python` first on
    PATH, so this interpreter's bin dir goes first. It also needs libpython and the
    wheel's vendored libcudart on LD_LIBRARY_PATH. Python models importing pymatting
    compile numba code; NUMBA_CACHE_DIR makes that a one-time cost (see `warm_numba`)."""
    env = dict(os.environ if base is None else base)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "/usr/bin:/bin")])
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    ld = [p for p in (libdir, str(_PYTRITON_LIBS), env.get("LD_LIBRARY_PATH", "")) if p]
    env["LD_LIBRARY_PATH"] = os.pathsep.join(ld)
    env["NUMBA_CACHE_DIR"] = str(numba_cache_dir)
    return env


def server_command(
    model_repository: Path,
    backend_dir: Path,
    grpc_port: int,
    http_port: int,
    metrics_port: int,
    model_control: str = "none",
    load_models: list[str] | None = None,
    bind_address: str = "127.0.0.1",
) -> list[str]:
    """The tritonserver command line. `model_control` is Triton's
    --model-control-mode (none|poll|explicit); `load_models` names the models to load
    at start in explicit mode (all of them when None). Triton has no auth, so it
    listens on loopback unless `bind_address` says otherwise (e.g. 0.0.0.0 in a
    container behind a private network)."""
    if model_control not in ("none", "poll", "explicit"):
        raise ValueError(f"model_control must be none, poll or explicit, not {model_control!r}")
    if load_models is not None and model_control != "explicit":
        raise ValueError("load_models only applies with model_control='explicit'")
    cmd = [
        str(TRITONSERVER_BIN),
        f"--model-repository={model_repository}",
        f"--backend-directory={backend_dir}",
        f"--http-address={bind_address}",
        f"--http-port={http_port}",
        f"--grpc-address={bind_address}",
        f"--grpc-port={grpc_port}",
        f"--metrics-address={bind_address}",
        f"--metrics-port={metrics_port}",
        f"--model-control-mode={model_control}",
        # A broken model must not keep the healthy ones from serving; readiness is per
        # model and the worker picks engines by it.
        "--exit-on-error=false",
        "--strict-readiness=false",
    ]
    if model_control == "explicit":
        for name in load_models if load_models is not None else ["*"]:
            cmd.append(f"--load-model={name}")
    return cmd


def warm_numba(numba_cache_dir: Path, timeout: float = 300) -> float:
    """Compile pymatting's numba kernels into `numba_cache_dir` and return the seconds
    it took (about 40 s on 2 cores the first time, about 1 s once cached).

    Run before tritonserver starts so model initialisation only loads the cache instead
    of compiling inside Triton's load (where it would delay readiness by ~40 s). It runs
    in a child process with the same interpreter so the cache matches the stub's."""
    numba_cache_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["NUMBA_CACHE_DIR"] = str(numba_cache_dir)
    t0 = time.monotonic()
    subprocess.run(
        [sys.executable, "-c", "import pymatting"],
        env=env,
        check=True,
        timeout=timeout,
        capture_output=True,
    )
    return time.monotonic() - t0


def log_tail(log_path: Path | None, lines: int = LOG_TAIL_LINES) -> str:
    if log_path is None or not log_path.exists():
        return "(no log)"
    text = log_path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def wait_ready(
    grpc_addr: str,
    timeout: float,
    *,
    process: subprocess.Popen[bytes] | None = None,
    log_path: Path | None = None,
    models: Sequence[str] = (),
) -> None:
    """Block until the server at `grpc_addr` reports ready (and each of `models` is
    ready). Raises TritonStartError with the log tail if `process` exits first or
    `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    client = triton_grpc.InferenceServerClient(grpc_addr)
    last_error = "no answer yet"
    try:
        while True:
            if process is not None and process.poll() is not None:
                raise TritonStartError(
                    f"tritonserver exited with code {process.returncode} before becoming "
                    f"ready on {grpc_addr}; log tail:\n{log_tail(log_path)}"
                )
            try:
                if client.is_server_ready(client_timeout=2.0):
                    pending = [
                        m for m in models if not client.is_model_ready(m, client_timeout=2.0)
                    ]
                    if not pending:
                        return
                    failed = _failed_loads(client, pending)
                    if failed:
                        raise TritonStartError(
                            f"tritonserver on {grpc_addr} is up but could not load "
                            f"{failed}; log tail:\n{log_tail(log_path)}"
                        )
                    last_error = f"models not ready: {pending}"
                else:
                    last_error = "server answered but is not ready"
            except InferenceServerException as exc:
                last_error = str(exc)
            if time.monotonic() >= deadline:
                raise TritonStartError(
                    f"tritonserver on {grpc_addr} not ready after {timeout:.0f} s "
                    f"({last_error}); log tail:\n{log_tail(log_path)}"
                )
            time.sleep(0.2)
    finally:
        client.close()


def _failed_loads(client: triton_grpc.InferenceServerClient, names: list[str]) -> dict[str, str]:
    """Models among `names` whose load failed, with Triton's reason. Triton opens its
    endpoints only after the startup loads finish, so UNAVAILABLE here is final."""
    index = client.get_model_repository_index(as_json=True, client_timeout=2.0)
    return {
        m["name"]: m.get("reason", "")
        for m in index.get("models", [])
        if m["name"] in names and m.get("state") == "UNAVAILABLE"
    }


def free_port() -> int:
    """A TCP port that was free a moment ago, outside the ephemeral range (a port 0
    bind would hand out one that any outgoing connection may take first)."""
    return free_port_block(1)


class TritonProcess:
    """A tritonserver child process for tests, benchmarks and the local stack.

    with TritonProcess.start(MODEL_REPOSITORY, tmp_dir) as triton:
        client = tritonclient.grpc.InferenceServerClient(triton.grpc_addr)

    Ports left at 0 are picked free. `work_dir` holds the backend dir, the numba cache
    (unless given) and `tritonserver.log`."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        grpc_port: int,
        http_port: int,
        metrics_port: int,
        log_path: Path,
    ) -> None:
        self.process = process
        self.grpc_port = grpc_port
        self.http_port = http_port
        self.metrics_port = metrics_port
        self.log_path = log_path

    @property
    def grpc_addr(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @classmethod
    def start(
        cls,
        model_repository: Path,
        work_dir: Path,
        *,
        grpc_port: int = 0,
        http_port: int = 0,
        metrics_port: int = 0,
        model_control: str = "none",
        load_models: list[str] | None = None,
        numba_cache_dir: Path | None = None,
        ready_models: Sequence[str] = (),
        timeout: float = 120,
    ) -> TritonProcess:
        """Start tritonserver and return once it (and `ready_models`) is ready;
        on failure the process is stopped and TritonStartError carries the log tail."""
        work_dir.mkdir(parents=True, exist_ok=True)
        numba_cache_dir = numba_cache_dir or work_dir / "numba_cache"
        warm_numba(numba_cache_dir)
        backend_dir = prepare_backend_dir(work_dir / "backends")
        grpc_port = grpc_port or free_port()
        http_port = http_port or free_port()
        metrics_port = metrics_port or free_port()
        cmd = server_command(
            model_repository,
            backend_dir,
            grpc_port=grpc_port,
            http_port=http_port,
            metrics_port=metrics_port,
            model_control=model_control,
            load_models=load_models,
        )
        log_path = work_dir / f"tritonserver-{grpc_port}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                cmd,
                env=server_env(numba_cache_dir),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        triton = cls(process, grpc_port, http_port, metrics_port, log_path)
        try:
            wait_ready(
                triton.grpc_addr,
                timeout,
                process=process,
                log_path=log_path,
                models=ready_models,
            )
        except BaseException:
            triton.stop()
            raise
        return triton

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return log_tail(self.log_path, lines)

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM, then SIGKILL after `timeout` s; the python stubs are Triton's
        children and go with it."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout)

    def __enter__(self) -> TritonProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
