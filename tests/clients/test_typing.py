"""clients/python is typed (it ships py.typed): the package is clean under
`mypy --strict`, so a caller's own strict type check sees the real signatures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2] / "clients" / "python" / "src"


def test_the_client_is_clean_under_mypy_strict(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path), str(SOURCE)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("Success: no issues found")
