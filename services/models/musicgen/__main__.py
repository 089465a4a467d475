"""`python -m services.models.musicgen`: the MusicGen part of `lightbox models`.

    export CHECKPOINT_DIR [--repo R] [--name N] [--target cpu|gpu] [--json]
    render --target cpu|gpu [--repo R] [--name N ...]
    make-tiny OUT_DIR                              tiny random-weight checkpoint

Exit codes: 0 done; 1 exported but a component failed validation or its contract;
2 bad input (not a MusicGen folder, missing files).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from services.common.triton import MODEL_REPOSITORY


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lightbox models (musicgen)")
    sub = parser.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export", help="export a transformers MusicGen folder to ONNX")
    export.add_argument("checkpoint_dir", type=Path)
    export.add_argument("--repo", type=Path, default=MODEL_REPOSITORY)
    export.add_argument("--name", default="musicgen", help="pipeline model name")
    export.add_argument("--target", choices=("cpu", "gpu"), default="cpu")
    export.add_argument("--json", action="store_true", help="print the report as JSON")
    render = sub.add_parser("render", help="render the component configs for a target")
    render.add_argument("--target", choices=("cpu", "gpu"), required=True)
    render.add_argument("--repo", type=Path, default=MODEL_REPOSITORY)
    render.add_argument("--name", action="append")
    tiny = sub.add_parser("make-tiny", help="write a tiny random-weight MusicGen checkpoint")
    tiny.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)

    if args.command == "export":
        from services.models.musicgen.export import ContractError, ExportError, export_musicgen

        try:
            report = export_musicgen(
                args.checkpoint_dir, args.repo, name=args.name, target=args.target
            )
        except (ExportError, FileNotFoundError) as exc:
            print(f"export failed: {exc}", file=sys.stderr)
            return 2
        except ContractError as exc:
            print(f"export refused: {exc}", file=sys.stderr)
            return 1
        print(json.dumps(report.to_dict(), indent=2) if args.json else report.table())
        if not report.ok:
            print("some components differ from transformers beyond tolerance", file=sys.stderr)
            return 1
        print(f"exported {report.name} into {report.repository} in {report.seconds:.0f} s")
        return 0
    if args.command == "render":
        from services.models.musicgen.configs import render_musicgen_configs

        for path in render_musicgen_configs(args.repo, args.target, names=args.name):
            print(path)
        return 0
    from services.models.musicgen.tiny import make_tiny_musicgen

    print(make_tiny_musicgen(args.out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
