"""services.common.triton: the pieces the stack runner uses to start tritonserver,
and the failure messages when it does not come up."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from services.common import triton
from services.common.triton import TritonProcess, TritonStartError
from tests.model_repository import triton_fixtures

numba_cache = triton_fixtures.numba_cache


def test_backend_dir_holds_the_python_backend_with_this_pythons_stub(tmp_path: Path) -> None:
    dest = triton.prepare_backend_dir(tmp_path / "backends")
    names = sorted(p.name for p in (dest / "python").iterdir())
    assert names == [
        "libtriton_python.so",
        "triton_python_backend_stub",
        "triton_python_backend_utils.py",
    ]
    assert os.access(dest / "python" / "triton_python_backend_stub", os.X_OK)
    # Idempotent: a second call (every stack start) keeps the same files.
    before = (dest / "python" / "libtriton_python.so").stat().st_mtime_ns
    triton.prepare_backend_dir(dest)
    assert (dest / "python" / "libtriton_python.so").stat().st_mtime_ns == before


def test_server_env_puts_this_interpreter_and_its_libraries_first(tmp_path: Path) -> None:
    env = triton.server_env(tmp_path / "numba", base={"PATH": "/usr/bin", "KEEP": "1"})
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    libs = env["LD_LIBRARY_PATH"].split(os.pathsep)
    assert libs[0] == sysconfig.get_config_var("LIBDIR")
    assert libs[1].endswith("nvidia_pytriton.libs")
    assert env["NUMBA_CACHE_DIR"] == str(tmp_path / "numba")
    assert env["KEEP"] == "1"


def test_server_command_flags(tmp_path: Path) -> None:
    cmd = triton.server_command(tmp_path / "repo", tmp_path / "be", 9001, 9002, 9003)
    assert Path(cmd[0]).name == "tritonserver" and Path(cmd[0]).exists()
    assert f"--model-repository={tmp_path / 'repo'}" in cmd
    assert f"--backend-directory={tmp_path / 'be'}" in cmd
    assert {"--grpc-port=9001", "--http-port=9002", "--metrics-port=9003"} <= set(cmd)
    assert "--grpc-address=127.0.0.1" in cmd
    assert "--model-control-mode=none" in cmd
    explicit = triton.server_command(
        tmp_path, tmp_path, 1, 2, 3, model_control="explicit", load_models=["a", "b"]
    )
    assert [c for c in explicit if c.startswith("--load-model")] == [
        "--load-model=a",
        "--load-model=b",
    ]
    with pytest.raises(ValueError, match="load_models"):
        triton.server_command(tmp_path, tmp_path, 1, 2, 3, load_models=["a"])
    with pytest.raises(ValueError, match="model_control"):
        triton.server_command(tmp_path, tmp_path, 1, 2, 3, model_control="auto")


def test_wait_ready_names_the_address_and_the_log(tmp_path: Path) -> None:
    log = tmp_path / "t.log"
    log.write_text("line one\nthe last thing it said\n")
    addr = f"127.0.0.1:{triton.free_port()}"
    with pytest.raises(TritonStartError, match=f"(?s){addr}.*the last thing it said"):
        triton.wait_ready(addr, timeout=0.5, log_path=log)


def test_wait_ready_notices_a_dead_process(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    process.wait()
    with pytest.raises(TritonStartError, match="exited with code 3"):
        triton.wait_ready(f"127.0.0.1:{triton.free_port()}", 30, process=process)


def test_model_that_fails_to_load_fails_the_start_with_the_reason(
    tmp_path: Path, numba_cache: Path
) -> None:
    # The server comes up, the model cannot load: start fails at once (not after the
    # timeout) with Triton's reason, and the process is stopped.
    broken = tmp_path / "repo" / "broken" / "1"
    broken.mkdir(parents=True)
    (broken.parent / "config.pbtxt").write_text('backend: "no_such_backend"\n')
    port = triton.free_port()
    with pytest.raises(TritonStartError, match="could not load.*broken.*no_such_backend"):
        TritonProcess.start(
            tmp_path / "repo",
            tmp_path / "work",
            numba_cache_dir=numba_cache,
            grpc_port=port,
            ready_models=["broken"],
            timeout=120,
        )
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
