"""Tracing a torch module to an ONNX file, the one way every exporter here does it
(sdxl, musicgen, wan, catvton): the TorchScript exporter at opset 17 with named,
dynamic axes, its tracer warnings silenced (each exporter then validates the file at
another shape, which is what shows whether the trace generalises), and weights over
2 GB moved to one external data file beside the model."""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

ONNX_FILE = "model.onnx"
EXTERNAL_DATA_FILE = "model.onnx.data"
# protobuf's limit for one message; bigger models keep their weights beside the graph.
EXTERNAL_DATA_THRESHOLD = 2_000_000_000
OPSET = 17


def trace_to_onnx(
    module: Any,
    args: tuple[Any, ...],
    dest: Path,
    *,
    input_names: list[str],
    output_names: list[str],
    dynamic_axes: dict[str, dict[int, str]],
    opset: int = OPSET,
    transform: Callable[[Any], Any] | None = None,
    external_threshold: int = EXTERNAL_DATA_THRESHOLD,
) -> bool:
    """Trace `module(*args)` to `dest` (an older file and its external data are
    replaced); `transform` rewrites the loaded ModelProto before it is saved (e.g. to
    float16). Returns whether the weights went to external data."""
    import onnx
    import torch

    dest.parent.mkdir(parents=True, exist_ok=True)
    for stale in (dest, dest.with_name(EXTERNAL_DATA_FILE)):
        stale.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"export-{dest.parent.name}-", dir=dest.parent) as tmp:
        raw = Path(tmp) / ONNX_FILE
        with torch.no_grad(), warnings.catch_warnings():
            # Tracing warns at every Python-side shape check in diffusers and
            # transformers. The TorchScript exporter is deprecated in torch (still
            # present in the pinned 2.13) but traces these models in seconds, where the
            # dynamo exporter needs onnxscript and minutes.
            for category in (
                torch.jit.TracerWarning,
                UserWarning,
                DeprecationWarning,
                FutureWarning,
            ):
                warnings.simplefilter("ignore", category)
            torch.onnx.export(
                module,
                args,
                str(raw),
                dynamo=False,
                opset_version=opset,
                input_names=input_names,
                output_names=output_names,
                dynamic_axes=dynamic_axes,
                do_constant_folding=True,
            )
        model = onnx.load(str(raw), load_external_data=True)
        if transform is not None:
            model = transform(model)
        external = model.ByteSize() >= external_threshold
        onnx.save_model(
            model,
            str(dest),
            save_as_external_data=external,
            all_tensors_to_one_file=True,
            location=EXTERNAL_DATA_FILE,
            size_threshold=1024,
        )
    return external
