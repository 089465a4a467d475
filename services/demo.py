"""`make demo`: sample product photos (generated here, with known alpha) through a
fresh local stack over the public REST API, written to OUT as before/after
images and a contact sheet of every preset x shadow type."""

from __future__ import annotations

import io
import json
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from services.common.ports import free_port_block
from services.common.settings import CommonSettings
from services.compositor.contact_sheet import make_contact_sheet
from services.samples.synthetic import all_samples
from services.stack import Stack


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()


def _run_job(
    client: httpx.Client, op: str, image: bytes, fields: dict[str, str]
) -> tuple[dict, bytes]:
    r = client.post(
        f"/v1/image/{op}",
        files={"image": ("sample.png", image, "image/png")},
        data=fields,
        headers={"Prefer": "wait=60"},
    )
    r.raise_for_status()
    job = r.json()
    while job["status"] not in ("completed", "failed", "blocked", "canceled"):
        time.sleep(0.3)
        job = client.get(f"/v1/image/{job['id']}").json()
    if job["status"] != "completed":
        raise RuntimeError(f"{op} failed: {job.get('error')}")
    return job, httpx.get(job["output_url"], timeout=30).content


def _side_by_side(before: np.ndarray, after: np.ndarray, height: int = 512) -> np.ndarray:
    def fit(a: np.ndarray) -> np.ndarray:
        img = Image.fromarray(a)
        w = round(img.width * height / img.height)
        return np.asarray(img.convert("RGB").resize((w, height), Image.Resampling.LANCZOS))

    gap = np.full((height, 16, 3), 255, np.uint8)
    return np.hstack([fit(before), gap, fit(after)])


def _checker(rgba: np.ndarray) -> np.ndarray:
    """RGBA over a grey checkerboard, so transparency is visible."""
    h, w = rgba.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    board = np.where(((yy // 24 + xx // 24) % 2)[..., None] == 0, 235, 200).astype(np.float32)
    a = rgba[..., 3:4].astype(np.float32) / 255
    return (rgba[..., :3] * a + board * (1 - a)).round().astype(np.uint8)


def run_demo(out_dir: str) -> int:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = CommonSettings()
    with tempfile.TemporaryDirectory(prefix="lightbox-demo-") as tmp:
        settings = CommonSettings(
            home=Path(tmp), http_port=free_port_block(), numba_cache_dir=base.numba_cache_dir
        )
        stack = Stack(settings=settings, log_path=Path(tmp) / "stack.log")
        print(f"demo: starting a stack in {tmp} ...", flush=True)
        key = stack.prepare()
        stack.start()
        try:
            stack.wait_ready()
            return _demo(stack.base_url, key, out)
        finally:
            stack.stop()


def _demo(url: str, key: str, out: Path) -> int:
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120)
    report = []
    cutouts: list[np.ndarray] = []
    for sample in all_samples(size=(1024, 1024)):
        source = _png(sample.rgb)
        job, photo = _run_job(
            client,
            "product-photo",
            source,
            {"preset": "white-studio", "shadow_type": "soft", "output_format": "png"},
        )
        after = np.asarray(Image.open(io.BytesIO(photo)).convert("RGB"))
        Image.fromarray(_side_by_side(sample.rgb, after)).save(
            out / f"{sample.name}-product-photo.png"
        )
        cjob, cut = _run_job(client, "remove-background", source, {})
        rgba = np.asarray(Image.open(io.BytesIO(cut)).convert("RGBA"))
        cutouts.append(rgba)
        Image.fromarray(_side_by_side(sample.rgb, _checker(rgba))).save(
            out / f"{sample.name}-remove-background.png"
        )
        found, truth = rgba[..., 3] > 127, sample.alpha > 127
        iou = float((found & truth).sum() / max(1, (found | truth).sum()))
        report.append(
            {
                "sample": sample.name,
                "matting_iou": round(iou, 4),
                "product_photo_ms": job["processing_ms"],
                "remove_background_ms": cjob["processing_ms"],
                "engines": job["engines"],
            }
        )
        print(
            f"demo: {sample.name:<12} IoU {iou:.3f}  product-photo {job['processing_ms']} ms",
            flush=True,
        )

    # Contact sheet: every preset x shadow type, on the cut-outs the stack just made.
    sheet = make_contact_sheet(cutouts)
    Image.fromarray(sheet).save(out / "contact-sheet.png")
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"demo: wrote {out}/: before/after per sample, report.json, contact-sheet.png "
        "(every preset x shadow type)",
        flush=True,
    )
    return 0
