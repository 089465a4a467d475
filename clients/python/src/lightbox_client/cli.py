"""`lightbox-client`: one command per operation on one or many files, `batch` for a
catalog, `audio`, `video` and `tryon` (one job each, into one file), and the account,
job and profile reads. The server and key come from --base-url/--api-key or
LIGHTBOX_BASE_URL/LIGHTBOX_API_KEY.

Exit status: 0 all done, 1 something failed (or the API refused), 2 bad usage or a
refused catalog, 130 interrupted (a re-run of a batch picks up where it stopped)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lightbox_client import catalog as catalog_mod
from lightbox_client import report
from lightbox_client._version import __version__
from lightbox_client.client import AsyncLightbox, Lightbox
from lightbox_client.errors import LightboxError, WaitTimeout
from lightbox_client.inputs import is_url, sniff
from lightbox_client.jobs import EXTENSIONS, AsyncJob, Job, JobBase
from lightbox_client.manifest import Manifest, ManifestMismatch
from lightbox_client.progress import Progress
from lightbox_client.runner import Plan, Runner


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")


# Each operation's fields (API.md) and the type their option parses to.
FIELDS: dict[str, dict[str, Callable[[str], Any]]] = {
    "product-photo": {
        "preset": str,
        "background_prompt": str,
        "shadow_type": str,
        "output_format": str,
        "image_quality": int,
        "aspect_ratio": str,
        "output_size": str,
        "scale": float,
        "x": float,
        "y": float,
        "seed": int,
        "negative_prompt": str,
        "steps": int,
        "guidance_scale": float,
        "lighting": parse_bool,
        "detail_transfer": parse_bool,
        "detailer_mode": str,
    },
    "remove-background": {
        "output_format": str,
        "bg_color": str,
        "crop": parse_bool,
        "mask_only": parse_bool,
    },
    "replace-background": {
        "prompt": str,
        "preserve_shadow": parse_bool,
        "negative_prompt": str,
        "seed": int,
        "output_format": str,
    },
    "upscale": {"scale": int},
    "remove-object": {"prompt": str},
    "restore-face": {"fidelity": float},
    "generate": {
        "prompt": str,
        "model": str,
        "negative_prompt": str,
        "width": int,
        "height": int,
        "steps": int,
        "guidance_scale": float,
        "seed": int,
    },
}
ALL_FIELDS = sorted({name for fields in FIELDS.values() for name in fields})


class Fail(Exception):
    """A message for stderr and an exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def _add_connection(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--base-url",
        default=os.environ.get("LIGHTBOX_BASE_URL"),
        help="the server, e.g. http://localhost:8080 (env LIGHTBOX_BASE_URL)",
    )
    p.add_argument(
        "--api-key",
        default=os.environ.get("LIGHTBOX_API_KEY"),
        help="the API key (env LIGHTBOX_API_KEY)",
    )


def _add_fields(p: argparse.ArgumentParser, names: Sequence[str], typed: bool, op: str) -> None:
    group = p.add_argument_group("operation fields (see the API reference)")
    for name in names:
        kind = FIELDS[op][name] if typed else str
        group.add_argument(
            "--" + name.replace("_", "-"), dest="f_" + name, type=kind, metavar="VALUE"
        )
    group.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="any other field by its API name",
    )


def _add_profile(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", help="a generation profile: NAME, NAME@latest or NAME@VERSION")
    p.add_argument("--placement", help="a placement of the profile")
    p.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a template variable of the profile's prompts",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lightbox-client",
        description="Lightbox API client: operations on files, audio, video and try-on, "
        "catalog batches, account.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)
    for op in FIELDS:
        p = sub.add_parser(op, help=f"{op} on one or many files")
        if op != "generate":
            p.add_argument("files", nargs="+", help="image paths or http(s) URLs")
        if op == "remove-object":
            p.add_argument("--mask", help="mask image (white = remove), same size as each image")
        p.add_argument("--out", required=True, type=Path, help="folder for the results")
        p.add_argument("--concurrency", type=int, default=4, help="jobs in flight (4)")
        p.add_argument("--timeout", type=float, default=600, help="seconds per job (600)")
        _add_fields(p, sorted(FIELDS[op]), typed=True, op=op)
        _add_profile(p)
        _add_connection(p)
        p.set_defaults(handler=cmd_operation, operation=op)

    _add_media(sub)

    p = sub.add_parser("batch", help="run a catalog (CSV or JSON Lines) into a folder")
    p.add_argument("catalog", type=Path, help="sku,image,variant[,placement][,vars...]")
    p.add_argument("--out", required=True, type=Path, help="results, manifest and report")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--profile", help="NAME or NAME@VERSION: the generation profile")
    how.add_argument("--operation", choices=sorted(FIELDS), help="an operation, with its fields")
    p.add_argument("--dry-run", action="store_true", help="check the catalog, send nothing")
    p.add_argument("--concurrency", type=int, default=4, help="items in flight (4)")
    p.add_argument(
        "--mode",
        choices=("auto", "batches", "jobs"),
        default="auto",
        help="server batches, one job per item, or batches when the server has them",
    )
    p.add_argument(
        "--retry-failed", action="store_true", help="send items that failed before again"
    )
    p.add_argument("--timeout", type=float, default=600, help="seconds per item (600)")
    _add_fields(p, ALL_FIELDS, typed=False, op="")
    _add_connection(p)
    p.set_defaults(handler=cmd_batch)

    for name, helptext in (
        ("balance", "credits, plan and rate limit"),
        ("models", "operations, prices, engines and presets"),
        ("usage", "this account's latest jobs"),
    ):
        p = sub.add_parser(name, help=helptext)
        if name == "usage":
            p.add_argument("--limit", type=int, default=20)
        _add_connection(p)
        p.set_defaults(handler=cmd_account)
    p = sub.add_parser("job", help="a job's body")
    p.add_argument("job_id")
    _add_connection(p)
    p.set_defaults(handler=cmd_job)

    p = sub.add_parser("profile", help="create, show or list generation profiles")
    psub = p.add_subparsers(dest="action", required=True)
    c = psub.add_parser("create", help="a new profile or its next version, from a JSON file")
    c.add_argument("file", type=Path)
    s = psub.add_parser("show", help="one version: NAME, NAME@latest or NAME@VERSION")
    s.add_argument("ref")
    psub.add_parser("list", help="every profile of the account")
    for q in (c, s, psub.choices["list"]):
        _add_connection(q)
    p.set_defaults(handler=cmd_profile)
    return parser


def _add_media(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """audio, video and tryon: one job, waited for, its output written to --out."""
    p = sub.add_parser("audio", help="music from a text prompt (MusicGen): a WAV file")
    p.add_argument("prompt", help="what the music is like, 3-500 characters")
    p.add_argument("--duration", type=float, help="seconds, 5-30 (server default 15)")
    p.add_argument("--model", help="musicgen-small (the default, and the only one)")
    p.add_argument("--seed", type=int, help="for repeatable music")
    media = [(p, "audio", 600.0)]

    p = sub.add_parser("video", help="a video from a text prompt (WAN 2.1): an MP4 file")
    p.add_argument("prompt", help="the scene, 1-2000 characters")
    p.add_argument("--duration", type=float, help="seconds, 1-10 (server default 3)")
    p.add_argument("--resolution", help="480p (832x480, the default) or 720p (1280x720)")
    p.add_argument("--negative-prompt", help="what to keep out of the video")
    p.add_argument("--seed", type=int, help="for a repeatable video")
    p.add_argument("--steps", type=int, help="diffusion steps (the model's default)")
    p.add_argument("--guidance-scale", type=float, help="classifier-free guidance")
    media.append((p, "video", 1800.0))

    p = sub.add_parser("tryon", help="dress a person in a garment (CatVTON): a PNG file")
    p.add_argument("person", type=Path, help="photo of the person (portrait or square)")
    p.add_argument("garment", type=Path, help="photo of the garment")
    p.add_argument(
        "--category", required=True, help="upperbody, lowerbody or dress (what the garment is)"
    )
    p.add_argument("--seed", type=int, help="for a repeatable result")
    p.add_argument("--steps", type=int, help="diffusion steps (the model's default)")
    p.add_argument("--guidance-scale", type=float, help="classifier-free guidance")
    media.append((p, "tryon", 600.0))

    for p, _, timeout in media:
        p.add_argument(
            "-o", "--out", required=True, type=Path, help="the output file (or a folder)"
        )
        p.add_argument(
            "--timeout", type=float, default=timeout, help=f"seconds to wait ({timeout:g})"
        )
        p.add_argument("--webhook-url", help="also POST the finished job to this URL")
        _add_connection(p)
        p.set_defaults(handler=cmd_media)


def _connection(args: argparse.Namespace) -> tuple[str, str]:
    if not args.base_url:
        raise Fail("no server: pass --base-url or set LIGHTBOX_BASE_URL", 2)
    if not args.api_key:
        raise Fail("no API key: pass --api-key or set LIGHTBOX_API_KEY", 2)
    return args.base_url, args.api_key


def _fields(args: argparse.Namespace, op: str, typed: bool) -> dict[str, Any]:
    """The operation's fields from the options; with `typed` False (batch, where
    options are text) each is parsed by the operation's table, and an option the
    operation does not take is refused."""
    fields: dict[str, Any] = {}
    for name in ALL_FIELDS:
        value = getattr(args, "f_" + name, None)
        if value is None:
            continue
        if name not in FIELDS[op]:
            raise Fail(f"{op} has no field {name!r} (--{name.replace('_', '-')})", 2)
        try:
            fields[name] = value if typed else FIELDS[op][name](value)
        except (ValueError, argparse.ArgumentTypeError) as exc:
            raise Fail(f"--{name.replace('_', '-')}: {exc}", 2) from None
    try:
        extra = catalog_mod.parse_assignments(args.set, "--set")
    except ValueError as exc:
        raise Fail(str(exc), 2) from None
    for name, text in extra.items():
        if name in fields:
            raise Fail(f"{name} is given twice (--set and its own option)", 2)
        fields[name] = FIELDS[op][name](text) if name in FIELDS[op] else text
    return fields


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


# -- operations on files -----------------------------------------------------------------


def _stem(source: str) -> str:
    name = source.rstrip("/").rsplit("/", 1)[-1] if is_url(source) else Path(source).name
    return name.rsplit(".", 1)[0] or "image"


async def _one(
    client: AsyncLightbox,
    args: argparse.Namespace,
    fields: dict[str, Any],
    source: str | None,
    slots: asyncio.Semaphore,
) -> bool:
    op = args.operation
    label = source or "generate"
    async with slots:
        try:
            if op == "remove-object" and args.mask:
                job: AsyncJob = await client.remove_object(
                    source or "",
                    mask=args.mask,
                    fields=fields,
                    profile=args.profile,
                    placement=args.placement,
                    vars=catalog_mod.parse_assignments(args.var, "--var") or None,
                )
            else:
                job = await client.submit(
                    op,
                    source,
                    fields=fields,
                    profile=args.profile,
                    placement=args.placement,
                    vars=catalog_mod.parse_assignments(args.var, "--var") or None,
                )
            await job.wait(timeout=args.timeout)
            data = await job.read()
        except (LightboxError, OSError, ValueError) as exc:
            print(f"{label}: {exc}", file=sys.stderr)
            return False
    ext = (sniff(data) or ("", EXTENSIONS.get(job.format or "", "bin")))[1]
    target = args.out / f"{_stem(source) if source else job.id}.{ext}"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    print(f"{label} -> {target} ({job.id}, {job.width}x{job.height}, {job.credits_used} credits)")
    return True


def cmd_operation(args: argparse.Namespace) -> int:
    base_url, key = _connection(args)
    fields = _fields(args, args.operation, typed=True)
    sources: list[str | None] = list(getattr(args, "files", None) or [None])
    stems = Counter(_stem(s) for s in sources if s)
    twice = sorted(s for s, n in stems.items() if n > 1)
    if twice:
        raise Fail(f"several inputs would write the same output name: {', '.join(twice)}", 2)

    async def run() -> list[bool]:
        async with AsyncLightbox(base_url, key) as client:
            slots = asyncio.Semaphore(max(1, args.concurrency))
            return await asyncio.gather(*(_one(client, args, fields, s, slots) for s in sources))

    results = asyncio.run(run())
    return 0 if all(results) else 1


# -- audio, video, try-on -----------------------------------------------------------------


def _submit_media(client: Lightbox, args: argparse.Namespace) -> Job:
    if args.command == "audio":
        return client.generate_audio(
            args.prompt,
            duration=args.duration,
            model=args.model,
            seed=args.seed,
            webhook_url=args.webhook_url,
        )
    if args.command == "video":
        return client.generate_video(
            args.prompt,
            duration=args.duration,
            resolution=args.resolution,
            negative_prompt=args.negative_prompt,
            seed=args.seed,
            steps=args.steps,
            guidance_scale=args.guidance_scale,
            webhook_url=args.webhook_url,
        )
    for role in ("person", "garment"):
        path: Path = getattr(args, role)
        if not path.is_file():
            raise Fail(f"no {role} photo at {path}", 2)
    return client.virtual_tryon(
        args.person,
        args.garment,
        category=args.category,
        seed=args.seed,
        steps=args.steps,
        guidance_scale=args.guidance_scale,
        webhook_url=args.webhook_url,
    )


def _report_progress(job: JobBase) -> None:
    stage = f" ({job.stage})" if job.stage else ""
    print(f"{job.id}: {job.status}{stage}", file=sys.stderr)


def cmd_media(args: argparse.Namespace) -> int:
    with Lightbox(*_connection(args)) as client:
        try:
            job = _submit_media(client, args)
        except (OSError, ValueError) as exc:
            raise Fail(str(exc), 2) from None
        print(f"{job.id}: submitted, {job.credits_used:g} credits", file=sys.stderr)
        try:
            job.wait(timeout=args.timeout, on_progress=_report_progress)
        except WaitTimeout as exc:
            raise Fail(f"{exc}; it goes on: `lightbox-client job {exc.job_id}` finds it") from None
        data = job.result_image() if args.command == "tryon" else job.read()
    target: Path = args.out
    if target.is_dir():
        target = target / f"{job.id}.{job.extension}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    except OSError as exc:
        raise Fail(f"{target}: {exc.strerror or exc}") from None
    facts = [job.id]
    if job.width and job.height:
        facts.append(f"{job.width}x{job.height}")
    if job.duration:
        facts.append(f"{job.duration:g} s")
    facts.append(f"{job.credits_used:g} credits")
    print(f"{target} ({', '.join(facts)})")
    return 0


# -- catalogs ----------------------------------------------------------------------------


def _plan(client: Lightbox, args: argparse.Namespace) -> Plan:
    if args.profile:
        try:
            profile = client.profile(args.profile)
        except ValueError as exc:
            raise Fail(str(exc), 2) from None
        op = profile.operation
        return Plan(op, profile, _fields(args, op, typed=False))
    return Plan(args.operation, None, _fields(args, args.operation, typed=False))


def cmd_batch(args: argparse.Namespace) -> int:
    base_url, key = _connection(args)
    if not args.catalog.is_file():
        raise Fail(f"no catalog at {args.catalog}", 2)
    with Lightbox(base_url, key) as client:
        plan = _plan(client, args)
        checked = catalog_mod.load(args.catalog, plan.profile)
        if checked.errors:
            lines = "\n".join(f"  {e}" for e in checked.errors)
            rows = len({e.line for e in checked.errors})
            raise Fail(f"{args.catalog}: {rows} row(s) refused, nothing sent:\n{lines}", 2)
        try:
            manifest = Manifest.open(args.out, plan.settings()) if not args.dry_run else None
        except ManifestMismatch as exc:
            raise Fail(str(exc), 2) from None
        if args.dry_run:
            return _dry_run(client, args, plan, checked)
        use_batches = args.mode != "jobs" and client.batches_supported()
        if args.mode == "batches" and not use_batches:
            raise Fail(f"{base_url} offers no batches (GET /v1/batches is 404); use --mode jobs", 2)
    assert manifest is not None
    items = checked.items
    progress = Progress(len(items))

    async def run() -> None:
        async with AsyncLightbox(base_url, key) as aclient:
            runner = Runner(
                aclient,
                plan,
                items,
                manifest,
                args.out,
                progress,
                concurrency=args.concurrency,
                retry_failed=args.retry_failed,
                job_timeout=args.timeout,
            )
            stats_holder.append(runner.stats)
            await runner.run(use_batches)

    stats_holder: list[Any] = []
    interrupted = False
    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        interrupted = True
    run_info = stats_holder[0].as_dict() if stats_holder else {}
    result = report.write(args.out, items, manifest, {**run_info, "interrupted": interrupted})
    counts = ", ".join(f"{n} {s}" for s, n in result["counts"].items())
    print(
        f"{len(items)} items: {counts}; this run submitted {run_info.get('submitted', 0)} "
        f"(refused {run_info.get('refused', 0)}), "
        f"followed {run_info.get('resumed', 0)} sent before, skipped "
        f"{run_info.get('skipped', 0)} done ({run_info.get('mode', '')}); "
        f"report: {args.out / report.REPORT_HTML}"
    )
    if interrupted:
        print("interrupted: run the same command again to finish", file=sys.stderr)
        return 130
    return 0 if result["counts"].get("completed", 0) == len(items) else 1


def _dry_run(
    client: Lightbox, args: argparse.Namespace, plan: Plan, checked: catalog_mod.Catalog
) -> int:
    items = checked.items
    done = 0
    manifest_path = args.out / "manifest.jsonl"
    if manifest_path.exists():
        try:
            manifest = Manifest.open(args.out, plan.settings())
        except ManifestMismatch as exc:
            raise Fail(str(exc), 2) from None
        done = sum(1 for i in items if manifest.entry(i.sku, i.variant).status == "completed")
    prices = {o["operation"]: float(o["credits"]) for o in client.models().get("operations", [])}
    price = prices.get(plan.operation, 0.0)
    balance = client.balance().credits_remaining
    placements = Counter(i.placement or "(none)" for i in items)
    what = plan.profile_ref or plan.operation
    print(f"{args.catalog}: {len(items)} items OK for {what}")
    print("  placements: " + ", ".join(f"{n} {p}" for p, n in sorted(placements.items())))
    todo = len(items) - done
    print(
        f"  to send: {todo} ({done} done in {args.out}); at most {todo * price:g} credits "
        f"at {price:g} each; balance {balance:g}"
    )
    if todo * price > balance:
        print("  the balance does not cover every item", file=sys.stderr)
    return 0


# -- account, jobs, profiles -------------------------------------------------------------


def cmd_account(args: argparse.Namespace) -> int:
    with Lightbox(*_connection(args)) as client:
        if args.command == "balance":
            b = client.balance()
            _print_json(
                {
                    "credits_remaining": b.credits_remaining,
                    "plan": b.plan,
                    "rate_limit_per_minute": b.rate_limit_per_minute,
                }
            )
        elif args.command == "models":
            _print_json(client.models())
        else:
            page = client.usage(limit=args.limit)
            _print_json({"jobs": page.jobs, "next_cursor": page.next_cursor})
    return 0


def cmd_job(args: argparse.Namespace) -> int:
    with Lightbox(*_connection(args)) as client:
        _print_json(client.job(args.job_id).data)
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    with Lightbox(*_connection(args)) as client:
        if args.action == "create":
            try:
                body = json.loads(args.file.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise Fail(f"{args.file}: {exc}", 2) from None
            if not isinstance(body, dict) or "name" not in body or "operation" not in body:
                raise Fail(f"{args.file}: a JSON object with name and operation", 2)
            profile = client.create_profile(
                body["name"],
                body["operation"],
                fields=body.get("fields"),
                locked=body.get("locked"),
                placements=body.get("placements"),
                prompts=body.get("prompts"),
                qa_thresholds=body.get("qa_thresholds"),
                description=body.get("description"),
            )
            _print_json(profile.data)
        elif args.action == "show":
            _print_json(client.profile(args.ref).data)
        else:
            _print_json(client.profiles())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except Fail as exc:
        print(f"lightbox-client: {exc}", file=sys.stderr)
        return exc.status
    except LightboxError as exc:
        print(f"lightbox-client: {exc}", file=sys.stderr)
        guidance = getattr(exc, "guidance", "")
        if guidance:
            print(f"  {guidance}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The output went to `head` or a pager that stopped reading; the interpreter's
        # own flush at exit must not fail on it again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
