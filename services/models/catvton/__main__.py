"""`python -m services.models.catvton`: the CatVTON part of `lightbox models`.

    export DIR [--repo R] [--version mix|vitonhd|dresscode] [--name N] [--target cpu|gpu]
    render --target cpu|gpu [--repo R] [--name N ...]
    make-tiny OUT_DIR                              tiny random-weight checkpoint folder

Exit codes: 0 done; 1 exported but a component failed validation; 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from services.common.triton import MODEL_REPOSITORY


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lightbox models (catvton)")
    sub = parser.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export", help="export a CatVTON folder (docs/catvton.md) to ONNX")
    export.add_argument("folder", type=Path)
    export.add_argument("--repo", type=Path, default=MODEL_REPOSITORY)
    export.add_argument("--version", choices=("mix", "vitonhd", "dresscode"), default="mix")
    export.add_argument("--name", default="catvton")
    export.add_argument("--target", choices=("cpu", "gpu"), default="cpu")
    export.add_argument("--json", action="store_true", help="print the report as JSON")
    render = sub.add_parser("render", help="render the component configs for a target")
    render.add_argument("--target", choices=("cpu", "gpu"), required=True)
    render.add_argument("--repo", type=Path, default=MODEL_REPOSITORY)
    render.add_argument("--name", action="append")
    tiny = sub.add_parser("make-tiny", help="write a tiny random-weight CatVTON folder")
    tiny.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)

    if args.command == "export":
        from services.models.catvton.export import ExportError, export_catvton

        try:
            report = export_catvton(
                args.folder, args.repo, version=args.version, name=args.name, target=args.target
            )
        except (ExportError, FileNotFoundError, OSError) as exc:
            print(f"export failed: {exc}", file=sys.stderr)
            return 2
        print(json.dumps(report.to_dict(), indent=2) if args.json else report.table())
        if not report.ok:
            print("some components differ from torch beyond tolerance", file=sys.stderr)
            return 1
        print(
            f"exported {report.name} ({report.attention_blocks} attention blocks merged) "
            f"into {report.repository} in {report.seconds:.0f} s"
        )
        return 0
    if args.command == "render":
        from services.models.catvton.configs import render_catvton_configs

        for path in render_catvton_configs(args.repo, args.target, names=args.name):
            print(path)
        return 0
    from services.models.catvton.tiny import make_tiny_catvton

    print(make_tiny_catvton(args.out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
