"""`python -m services.models.sdxl`: the SDXL part of `lightbox models`, usable on its
own.

    export DIFFUSERS_DIR [--repo R] [--fp16] [--name N] [--target cpu|gpu]
    render --target cpu|gpu [--repo R] [--name N ...]
    build-trt [--repo R] [--name N ...]            GPU hosts with TensorRT only
    make-tiny OUT_DIR [--inpaint]                  tiny random-weight checkpoint

Exit codes: 0 done; 1 exported but a component failed validation; 2 cannot run here
(build-trt without a GPU) or bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from services.common.triton import MODEL_REPOSITORY


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lightbox models (sdxl)")
    sub = parser.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export", help="export a diffusers SDXL folder to ONNX components")
    export.add_argument("diffusers_dir", type=Path)
    export.add_argument("--repo", type=Path, default=MODEL_REPOSITORY)
    export.add_argument("--fp16", action="store_true")
    export.add_argument("--name", help="pipeline model name (default: sdxl or sdxl_inpaint)")
    export.add_argument("--target", choices=("cpu", "gpu"), default="cpu")
    export.add_argument("--json", action="store_true", help="print the report as JSON")
    render = sub.add_parser("render", help="render the component configs for a target")
    render.add_argument("--target", choices=("cpu", "gpu"), required=True)
    render.add_argument("--repo", type=Path, default=MODEL_REPOSITORY)
    render.add_argument("--name", action="append")
    build = sub.add_parser("build-trt", help="build TensorRT plans (GPU host)")
    build.add_argument("--repo", type=Path, default=MODEL_REPOSITORY)
    build.add_argument("--name", action="append")
    tiny = sub.add_parser("make-tiny", help="write a tiny random-weight SDXL checkpoint")
    tiny.add_argument("out_dir", type=Path)
    tiny.add_argument("--inpaint", action="store_true")
    args = parser.parse_args(argv)

    if args.command == "export":
        from services.models.sdxl.export import ExportError, export_sdxl

        try:
            report = export_sdxl(
                args.diffusers_dir, args.repo, fp16=args.fp16, name=args.name, target=args.target
            )
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
        from services.models.sdxl.configs import render_sdxl_configs

        for path in render_sdxl_configs(args.repo, args.target, names=args.name):
            print(path)
        return 0
    if args.command == "build-trt":
        from services.models.sdxl.trt import NoGpuError, build_sdxl_plans

        try:
            report = build_sdxl_plans(args.repo, names=args.name)
        except NoGpuError as exc:
            print(str(exc), file=sys.stderr)
            return 2
        for model in report.built:
            print(f"{model}: {report.seconds[model]:.0f} s")
        return 0
    from services.models.sdxl.tiny import make_tiny_sdxl

    print(make_tiny_sdxl(args.out_dir, inpaint=args.inpaint))
    return 0


if __name__ == "__main__":
    sys.exit(main())
