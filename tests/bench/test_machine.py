"""Benchmarks record which CPU their timings came from (bench/machine.py)."""

from __future__ import annotations

from pathlib import Path

from bench.machine import cpu_identity, describe

ZEN5 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 26
model\t\t: 2
model name\t: AMD EPYC
stepping\t: 1
flags\t\t: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16 vaes

processor\t: 1
vendor_id\t: AuthenticAMD
cpu family\t: 26
model\t\t: 2
model name\t: AMD EPYC
flags\t\t: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16 vaes
"""


def test_cpu_identity_reads_the_first_processor(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(ZEN5)
    ident = cpu_identity(info)
    assert ident["vendor"] == "AuthenticAMD" and ident["model_name"] == "AMD EPYC"
    assert (ident["family"], ident["model"], ident["stepping"]) == ("26", "2", "1")
    assert ident["isa"] == ["avx2", "avx512f", "avx512_vnni", "avx512_bf16"]
    assert describe(ident) == f"AMD EPYC, family 26 model 2, {ident['cpus']} cpus, avx512_bf16"


def test_cpu_identity_without_cpuinfo_keeps_machine_and_count(tmp_path: Path) -> None:
    ident = cpu_identity(tmp_path / "missing")
    assert set(ident) == {"machine", "cpus"}
    assert describe(ident).endswith(f"{ident['cpus']} cpus")
