"""Segmind's own Python SDK against Lightbox: the ai-product-photography example
from Segmind's page, with only base_url and the key changed, run the three ways
the SDK offers: run (submit to /v2 and poll), submit_async + wait, and run_sync
(the synchronous POST /v1/ai-product-photography, answering the image itself).

    pip install segmind==1.3.0
    LIGHTBOX_BASE_URL=http://localhost:8080 LIGHTBOX_API_KEY=lb_live_... \
        python examples/segmind_sdk.py IMAGE_URL_OR_FILE out.png ["scene prompt"]

A local file is sent as base64, as Segmind accepts; a URL is fetched by the server.
The default scene is one the compositor draws on a CPU; the page's own prompt (a
living room around an orange sofa) needs a diffusion model (SDXL) installed.
"""

import base64
import os
import sys

from segmind import InferenceFailed, InferenceTimeout, SegmindClient

BASE = os.environ.get("LIGHTBOX_BASE_URL", "http://localhost:8080").rstrip("/")
client = SegmindClient(api_key=os.environ["LIGHTBOX_API_KEY"], base_url=f"{BASE}/v1")


def main(image, target, prompt="light oak wooden floor, soft natural lighting"):
    if not image.startswith(("http://", "https://")):
        with open(image, "rb") as f:
            image = base64.b64encode(f.read()).decode()
    payload = {
        "prompt": prompt,
        "lighting_prompt": "natural day lighting, shadows",
        "negative_prompt": "CGI, Unreal, Airbrushed, Digital, Blur",
        "image": image,
        "megapixel": "1.0",
        "aspect_ratio": "8:5 (Cinematic View)",
        "x_value": 50,
        "y_value": 65,
        "scale": 0.7,
        "steps": 10,
        "guidance_scale": 2,
        "seed": 98522,
        "detailer_mode": "soft_light",
        "lighting": False,
        "detailtransfer": False,
        "image_format": "png",
        "image_quality": 90,
    }

    # Submit to /v2 and block until COMPLETED: the final result body.
    result = client.run("ai-product-photography", **payload)
    print("run:", result["status"], result["output"], result["metrics"]["inference_time"])

    # Or submit and poll with your own deadline and cadence.
    job = client.submit_async("ai-product-photography", **payload)
    print("submitted:", job.request_id)
    try:
        result = job.wait(timeout=600, interval=1.0)
    except InferenceTimeout as e:
        print("still running:", e.request_id, file=sys.stderr)
        return 1
    except InferenceFailed as e:
        print("failed:", e.detail, file=sys.stderr)
        return 1
    print("waited:", result["status"], result["output"], result["metrics"]["inference_time"])

    # One blocking call that answers the encoded image.
    response = client.run_sync("ai-product-photography", **payload)
    with open(target, "wb") as f:
        f.write(response.content)
    print(
        "run_sync:",
        response.headers["x-lightbox-job-id"],
        response.headers["content-type"],
        response.headers["x-lightbox-inference-time"],
        f"{len(response.content)} bytes -> {target}",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
