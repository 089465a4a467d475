"""clients/python installs with pip as its own distribution, needing nothing but
httpx: a wheel is built from the folder, installed into a throwaway virtualenv, and
its console script answers --help. Offline-safe: no build isolation, no index."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from importlib.metadata import PathDistribution
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLIENT = REPO / "clients" / "python"


def run(*args: str | Path) -> str:
    # Without PYTHONPATH, so that nothing but the install can provide lightbox_client.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=180, env=env
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_pip_install_into_a_fresh_venv_and_run_the_cli(tmp_path: Path) -> None:
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    # A copy, so that the build leaves nothing in the checkout.
    source = tmp_path / "src"
    shutil.copytree(CLIENT, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    run(*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", tmp_path, source)
    (wheel,) = tmp_path.glob("lightbox_client-*.whl")
    env = tmp_path / "venv"
    venv.create(env, with_pip=False)
    python = env / "bin" / "python"
    run(*pip, "--python", python, "install", "--no-deps", "--no-index", wheel)
    where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(run(python, "-c", where).strip())
    (dist,) = site.glob("lightbox_client-*.dist-info")
    requires = PathDistribution(dist).requires or []
    assert [r.split(">")[0].split(";")[0].strip() for r in requires] == ["httpx"]
    assert (site / "lightbox_client" / "py.typed").exists()
    # httpx (and only what it needs) comes from the test's own environment.
    shared = Path(sysconfig.get_paths()["purelib"])
    (site / "shared-httpx.pth").write_text(str(shared) + "\n")
    help_text = run(env / "bin" / "lightbox-client", "--help")
    for command in ("product-photo", "remove-background", "batch", "balance", "profile", "tryon"):
        assert command in help_text
    batch_help = run(env / "bin" / "lightbox-client", "batch", "--help")
    assert "--dry-run" in batch_help and "--profile" in batch_help
