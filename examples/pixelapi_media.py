"""Music, video and virtual try-on with `requests`, the way PixelAPI's docs write
clients: submit JSON, poll the job, download the result.

    export LIGHTBOX_BASE_URL=http://localhost:8080 LIGHTBOX_API_KEY=lb_live_...
    python examples/pixelapi_media.py audio "calm acoustic guitar" out.wav [seconds]
    python examples/pixelapi_media.py video "a bottle on marble" out.mp4 [seconds] [480p|720p]
    python examples/pixelapi_media.py tryon person.jpg garment.jpg upperbody out.png

Each answers 503 model_unavailable (and charges nothing) until the operator has
exported the model's weights (docs/media.md)."""

import base64
import os
import sys
import time

import requests

BASE = os.environ.get("LIGHTBOX_BASE_URL", "http://localhost:8080").rstrip("/")
KEY = os.environ["LIGHTBOX_API_KEY"]
HEADERS = {"Authorization": f"Bearer {KEY}"}
DONE = ("completed", "failed", "blocked", "canceled")


def submit(path: str, body: dict) -> dict | None:
    r = requests.post(f"{BASE}{path}", headers=HEADERS, json=body, timeout=60)
    if r.status_code not in (200, 202):
        detail = r.json()["detail"]
        print(f"submit failed: {r.status_code} {detail['error']}: {detail['message']}")
        print(f"  {detail.get('guidance', '')}", file=sys.stderr)
        return None
    job = r.json()
    print(f"submitted {job.get('generation_id') or job['job_id']} ({job['credits_used']} credits)")
    return job


def poll(path: str) -> dict:
    while True:
        job = requests.get(f"{BASE}{path}", headers=HEADERS, timeout=30).json()
        if job["status"] in DONE:
            return job
        time.sleep(1)


def download(job: dict, target: str) -> int:
    if job["status"] != "completed":
        print(f"job {job['status']}: {job.get('error')}", file=sys.stderr)
        return 1
    data = requests.get(job["output_url"], timeout=120)  # a signed link: no key needed
    data.raise_for_status()
    with open(target, "wb") as f:
        f.write(data.content)
    print(f"completed: {job['format']} -> {target}")
    return 0


def audio(prompt: str, target: str, seconds: str = "15") -> int:
    job = submit("/v1/audio/generate", {"prompt": prompt, "duration": int(seconds)})
    if job is None:
        return 1
    return download(poll(f"/v1/image/{job['generation_id']}"), target)


def video(prompt: str, target: str, seconds: str = "3", resolution: str = "480p") -> int:
    body = {"prompt": prompt, "duration": int(seconds), "resolution": resolution}
    job = submit("/v1/video/generate", body)
    if job is None:
        return 1
    return download(poll(f"/v1/video/{job['generation_id']}"), target)


def tryon(person: str, garment: str, category: str, target: str) -> int:
    def b64(path: str) -> str:
        with open(path, "rb") as f:
            return base64.b64encode(f.read()).decode()

    body = {"person_image": b64(person), "garment_image": b64(garment), "category": category}
    job = submit("/v1/virtual-tryon", body)
    if job is None:
        return 1
    job = poll(f"/v1/virtual-tryon/jobs/{job['job_id']}")
    if job["status"] != "completed":
        print(f"job {job['status']}: {job.get('error')}", file=sys.stderr)
        return 1
    with open(target, "wb") as f:
        f.write(base64.b64decode(job["result_image_b64"]))
    print(f"completed in {job['inference_time_ms']} ms -> {target}")
    return 0


if __name__ == "__main__":
    commands = {"audio": audio, "video": video, "tryon": tryon}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(commands[sys.argv[1]](*sys.argv[2:]))
