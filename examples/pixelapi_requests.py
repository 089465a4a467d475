"""A product photo with `requests`, the way PixelAPI's docs write clients:
upload with multipart, poll the job until it is done, download the result.

    LIGHTBOX_BASE_URL=http://localhost:8080 LIGHTBOX_API_KEY=lb_live_... \
        python examples/pixelapi_requests.py bottle.jpg studio.jpg [preset]
"""

import os
import sys
import time

import requests

BASE = os.environ.get("LIGHTBOX_BASE_URL", "http://localhost:8080").rstrip("/")
KEY = os.environ["LIGHTBOX_API_KEY"]
HEADERS = {"Authorization": f"Bearer {KEY}"}


def main(source: str, target: str, preset: str = "white-studio") -> int:
    with open(source, "rb") as f:
        r = requests.post(
            f"{BASE}/v1/image/product-photo",
            headers=HEADERS,
            files={"image": f},
            data={"preset": preset, "shadow_type": "soft", "output_format": "jpeg"},
            timeout=60,
        )
    if r.status_code not in (200, 202):
        print(f"submit failed: {r.status_code} {r.json()['detail']}", file=sys.stderr)
        return 1
    job = r.json()
    print(f"submitted {job['generation_id']} ({job['credits_used']} credits)")

    while job["status"] not in ("completed", "failed", "blocked", "canceled"):
        time.sleep(1)
        job = requests.get(
            f"{BASE}/v1/image/{job['generation_id']}", headers=HEADERS, timeout=30
        ).json()
        print(f"  {job['status']}")

    if job["status"] != "completed":
        print(f"job {job['status']}: {job.get('error')}", file=sys.stderr)
        return 1
    image = requests.get(job["output_url"], timeout=60)  # a signed link: no key needed
    image.raise_for_status()
    with open(target, "wb") as f:
        f.write(image.content)
    print(f"completed: {job['width']}x{job['height']} {job['format']} -> {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
