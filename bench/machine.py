"""What CPU a benchmark ran on, for its results' meta.

The developer and CI machines all have two cores, but not the same cores: sessions have
drawn AMD EPYC machines of different generations, and the same matting stage took
1.00 s p50 on one and 0.46 s on another. A timing without the CPU it came from cannot
be compared with the next run's, so every benchmark that reports seconds records this.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

# The instruction sets the CPU runtimes pick kernels by (OpenVINO, onnxruntime, oneDNN).
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def cpu_identity(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, Any]:
    """Vendor, model name, family/model/stepping and the ISA flags above, from
    /proc/cpuinfo (only `machine` and `cpus` where there is none)."""
    ident: dict[str, Any] = {"machine": platform.machine(), "cpus": os.cpu_count()}
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ident
    first = text.split("\n\n", 1)[0]
    fields: dict[str, str] = {}
    for line in first.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    for key, name in (
        ("vendor_id", "vendor"),
        ("model name", "model_name"),
        ("cpu family", "family"),
        ("model", "model"),
        ("stepping", "stepping"),
    ):
        if key in fields:
            ident[name] = fields[key]
    flags = set(fields.get("flags", "").split())
    ident["isa"] = [f for f in ISA_FLAGS if f in flags]
    return ident


def describe(ident: dict[str, Any]) -> str:
    """One line for a results table: 'AMD EPYC, family 26 model 2, 2 cpus, avx512_bf16'."""
    parts = [str(ident.get("model_name") or ident.get("machine", "?"))]
    if "family" in ident:
        parts.append(f"family {ident['family']} model {ident.get('model', '?')}")
    parts.append(f"{ident.get('cpus', '?')} cpus")
    best = [f for f in ident.get("isa", []) if f.startswith(("avx512_bf16", "amx"))]
    if best:
        parts.append(", ".join(best))
    return ", ".join(parts)
