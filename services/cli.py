"""`lightbox`: the operator's command line.

lightbox run                                  the whole local stack (make run)
lightbox serve compositor|jobs|worker|gateway one service process
lightbox admin create-key --credits N [--plan P] [--rpm N] [--operations a,b]
lightbox admin list-keys | revoke-key ID | add-credits ACCOUNT N | balance ACCOUNT
lightbox admin webhook-secret ACCOUNT [--rotate]   show (or replace) the signing secret
lightbox admin job JOB_ID                     a job's transitions and webhook deliveries
lightbox admin retention                      run one retention pass now
lightbox admin verify-ledger                  re-derive every balance from the ledger
lightbox demo --out DIR                       sample photos through the real stack
lightbox models list|install|export|render|build-trt|make-test-models|verify
                                              the Triton model repository (models -h)
"""

from __future__ import annotations

import argparse
import sys


def _store():  # type: ignore[no-untyped-def]
    from services.common.settings import CommonSettings
    from services.jobs.store import JobStore

    settings = CommonSettings()
    settings.home.mkdir(parents=True, exist_ok=True)
    store = JobStore(settings.database_url)
    store.migrate()
    return store


def _admin(args: argparse.Namespace) -> int:
    store = _store()
    try:
        if args.admin_command == "create-key":
            operations = [o for o in (args.operations or "").split(",") if o]
            account = store.create_account(
                args.name,
                plan=args.plan,
                credits=args.credits,
                rate_limit_per_minute=args.rpm,
                allowed_operations=operations,
                max_concurrent_jobs=args.max_concurrent,
            )
            key, record = store.create_api_key(account.id)
            print(
                f"account {account.id} plan={account.plan} credits={args.credits:g} rpm={args.rpm}"
            )
            print("The key is shown once; store it now:")
            print(key)
        elif args.admin_command == "list-keys":
            for k in store.list_keys(args.account):
                state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
                print(f"{k.id}  {k.prefix}  account={k.account_id}  {state}")
        elif args.admin_command == "revoke-key":
            k = store.revoke_key(args.key)
            print(f"revoked {k.id} ({k.prefix})")
        elif args.admin_command == "add-credits":
            balance = store.add_credits(args.account, args.amount, reason=args.reason)
            print(f"account {args.account}: {balance:g} credits")
        elif args.admin_command == "balance":
            print(f"{store.balance(args.account):g}")
        elif args.admin_command == "webhook-secret":
            account = (
                store.rotate_webhook_secret(args.account)
                if args.rotate
                else store.get_account(args.account)
            )
            print(account.webhook_secret)
        elif args.admin_command == "job":
            _print_job(store, args.job)
        elif args.admin_command == "retention":
            from services.common.blobstore import LocalBlobStore
            from services.jobs.retention import run_retention_with
            from services.jobs.settings import JobsSettings

            settings = JobsSettings()
            report = run_retention_with(settings, store, LocalBlobStore(settings.blob_root))
            print(f"deleted: {report}")
        elif args.admin_command == "verify-ledger":
            mismatches = store.verify_ledger()
            for m in mismatches:
                print(
                    f"MISMATCH account {m.account_id}: balance {m.balance:g}, "
                    f"ledger sum {m.ledger_sum:g}"
                )
            if mismatches:
                return 1
            print("every account's balance equals the sum of its ledger rows")
    finally:
        store.close()
    return 0


def _print_job(store, job_id: str) -> None:  # type: ignore[no-untyped-def]
    job = store.get(job_id)
    print(f"job {job.id} {job.operation} account={job.account_id} status={job.status}")
    for e in store.events(job_id):
        by = f" by {e.worker}" if e.worker else ""
        why = f" ({e.detail})" if e.detail else ""
        print(f"  {e.at:%Y-%m-%d %H:%M:%S.%f}Z  {e.status:<10} attempt {e.attempt}{by}{why}")
    if job.webhook is not None:
        print(f"webhook {job.webhook.url}: {job.webhook.status}")
        for a in job.webhook.attempts:
            answer = a.status_code if a.status_code is not None else a.error
            print(f"  #{a.attempt} {a.at:%Y-%m-%d %H:%M:%S}Z -> {answer} ({a.duration_ms} ms)")


def _serve(name: str) -> int:
    if name == "compositor":
        from services.compositor.server import main
    elif name == "jobs":
        from services.jobs.server import main
    elif name == "worker":
        from services.jobs.worker import main
    elif name == "gateway":
        from services.gateway.server import main
    else:  # argparse restricts the choices
        raise SystemExit(f"unknown service {name}")
    main()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lightbox", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="start the whole local stack in the foreground")
    serve = sub.add_parser("serve", help="run one service")
    serve.add_argument("service", choices=["compositor", "jobs", "worker", "gateway"])
    demo = sub.add_parser("demo", help="run sample product photos through a fresh stack")
    demo.add_argument("--out", default="out")

    admin = sub.add_parser("admin", help="accounts, keys and credits (uses LIGHTBOX_HOME)")
    asub = admin.add_subparsers(dest="admin_command", required=True)
    ck = asub.add_parser("create-key", help="a new account with one key; prints the key last")
    ck.add_argument("--credits", type=float, required=True)
    ck.add_argument("--plan", default="standard")
    ck.add_argument("--rpm", type=int, default=60, help="requests per minute")
    ck.add_argument("--name", default="account")
    ck.add_argument("--operations", default="", help="comma-separated; default: all")
    ck.add_argument("--max-concurrent", type=int, default=4)
    lk = asub.add_parser("list-keys")
    lk.add_argument("--account", default=None)
    rk = asub.add_parser("revoke-key")
    rk.add_argument("key", help="key id or visible prefix")
    ac = asub.add_parser("add-credits")
    ac.add_argument("account")
    ac.add_argument("amount", type=float)
    ac.add_argument("--reason", default="grant")
    bal = asub.add_parser("balance")
    bal.add_argument("account")
    ws = asub.add_parser("webhook-secret", help="print the account's webhook signing secret")
    ws.add_argument("account")
    ws.add_argument("--rotate", action="store_true", help="replace it first (the old one stops)")
    jb = asub.add_parser("job", help="a job's state transitions and webhook deliveries")
    jb.add_argument("job")
    asub.add_parser("retention", help="delete expired blobs and old job rows now")
    asub.add_parser(
        "verify-ledger", help="check every running balance against its ledger (exit 1 if off)"
    )

    sub.add_parser("models", help="the Triton model repository: `lightbox models -h`")

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["models"]:
        from services.models.cli import main as models_main

        return models_main(argv[1:])
    args = parser.parse_args(argv)
    if args.command == "run":
        from services.stack import run_foreground

        return run_foreground()
    if args.command == "serve":
        return _serve(args.service)
    if args.command == "demo":
        from services.demo import run_demo

        return run_demo(args.out)
    if args.command == "admin":
        return _admin(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
