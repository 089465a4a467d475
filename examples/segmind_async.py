"""Segmind's async flow against Lightbox's /v2: submit ai-product-photography
with Segmind's own field names, poll status_url, fetch response_url.

    LIGHTBOX_BASE_URL=http://localhost:8080 LIGHTBOX_API_KEY=lb_live_... \
        python examples/segmind_async.py IMAGE_URL_OR_FILE out.png ["scene prompt"]

A local file is sent as base64, as Segmind accepts; a URL is fetched by the server.
"""

import base64
import os
import sys
import time

import requests

BASE = os.environ.get("LIGHTBOX_BASE_URL", "http://localhost:8080").rstrip("/")
HEADERS = {"Authorization": f"Bearer {os.environ['LIGHTBOX_API_KEY']}"}


def main(image, target, prompt="white marble"):
    if not image.startswith(("http://", "https://")):
        with open(image, "rb") as f:
            image = base64.b64encode(f.read()).decode()
    payload = {
        "prompt": prompt,
        "negative_prompt": "blur, CGI",
        "image": image,
        "megapixel": "0.25",
        "aspect_ratio": "4:5 (Portrait)",
        "x_value": 50,
        "y_value": 60,
        "scale": 0.7,
        "seed": -1,
        "detailer_mode": "soft_light",
        "lighting": False,
        "detailtransfer": False,
        "image_format": "png",
        "image_quality": 90,
    }
    r = requests.post(
        f"{BASE}/v2/ai-product-photography", json=payload, headers=HEADERS, timeout=60
    )
    if r.status_code not in (200, 202):
        print(f"submit failed: {r.status_code} {r.json()['detail']}", file=sys.stderr)
        return 1
    request = r.json()
    print(f"queued {request['request_id']}")

    while True:
        status = requests.get(request["status_url"], headers=HEADERS, timeout=30).json()
        print(f"  {status['status']}")
        if status["status"] in ("COMPLETED", "FAILED"):
            break
        time.sleep(1)

    r = requests.get(request["response_url"], headers=HEADERS, timeout=30)
    if status["status"] == "FAILED":
        print(f"failed: {r.json()['detail']}", file=sys.stderr)
        return 1
    result = r.json()
    with open(target, "wb") as f:
        f.write(requests.get(result["output"], timeout=60).content)
    print(
        f"completed in {result['metrics']['inference_time']} s: "
        f"{result['width']}x{result['height']} -> {target}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
