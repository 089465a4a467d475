"""`python -m services.models.wan`: the WAN 2.1 part of `lightbox models`, usable on its
own.

    export DIFFUSERS_DIR [--repo R] [--target cpu|gpu] [--json]
    render --target cpu|gpu [--repo R]
    make-tiny OUT_DIR                       tiny random-weight checkpoint (diffusers format)

Exit codes: 0 done; 1 exported but a component failed its check against torch; 2 bad
input (not a WAN folder, missing parts).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from services.common.triton import MODEL_REPOSITORY


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lightbox models (wan)")
    sub = parser.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export", help="export a diffusers WAN 2.1 T2V folder")
    export.add_argument("diffusers_dir", type=Path)
    export.add_argument("--repo", type=Path, default=MODEL_REPOSITORY)
    export.add_argument("--target", choices=("cpu", "gpu"), default="cpu")
    export.add_argument("--json", action="store_true", help="print the report as JSON")
    render = sub.add_parser("render", help="render the component configs for a target")
    render.add_argument("--target", choices=("cpu", "gpu"), required=True)
    render.add_argument("--repo", type=Path, default=MODEL_REPOSITORY)
    tiny = sub.add_parser("make-tiny", help="write a tiny random-weight WAN checkpoint")
    tiny.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)

    if args.command == "export":
        from services.models.wan.export import ExportError, export_wan

        try:
            report = export_wan(args.diffusers_dir, args.repo, target=args.target)
        except (ExportError, FileNotFoundError) as exc:
            print(f"export failed: {exc}", file=sys.stderr)
            return 2
        print(json.dumps(report.to_dict(), indent=2) if args.json else report.table())
        if not report.ok:
            print("some components differ from torch beyond tolerance", file=sys.stderr)
            return 1
        print(f"exported {report.name} into {report.repository} in {report.seconds:.0f} s")
        return 0
    if args.command == "render":
        from services.models.wan.configs import render_wan_configs

        for path in render_wan_configs(args.repo, args.target):
            print(path)
        return 0
    from services.models.wan.tiny import make_tiny_wan

    print(make_tiny_wan(args.out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
