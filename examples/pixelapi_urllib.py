"""The same product photo with nothing but the standard library (urllib):
a hand-built multipart body, a poll loop, the download.

    LIGHTBOX_BASE_URL=http://localhost:8080 LIGHTBOX_API_KEY=lb_live_... \
        python3 examples/pixelapi_urllib.py bottle.jpg cutout.png
"""

import json
import os
import secrets
import sys
import time
import urllib.error
import urllib.request

BASE = os.environ.get("LIGHTBOX_BASE_URL", "http://localhost:8080").rstrip("/")
KEY = os.environ["LIGHTBOX_API_KEY"]


def call(method, path, body=None, content_type=None):
    req = urllib.request.Request(BASE + path, data=body, method=method)
    req.add_header("Authorization", f"Bearer {KEY}")
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def multipart(fields, files):
    boundary = secrets.token_hex(16)
    out = []
    for name, value in fields.items():
        out.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
            f"{value}\r\n".encode()
        )
    for name, (filename, data) in files.items():
        out.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
            + data
            + b"\r\n"
        )
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


def main(source, target):
    with open(source, "rb") as f:
        body, ctype = multipart(
            {"output_format": "png", "crop": "false"},
            {"image": (os.path.basename(source), f.read())},
        )
    status, job = call("POST", "/v1/image/remove-background", body, ctype)
    if status not in (200, 202):
        print(f"submit failed: {status} {job['detail']}", file=sys.stderr)
        return 1
    print(f"submitted {job['generation_id']}")
    while job["status"] not in ("completed", "failed", "blocked", "canceled"):
        time.sleep(1)
        status, job = call("GET", f"/v1/image/{job['generation_id']}")
        print(f"  {job['status']}")
    if job["status"] != "completed":
        print(f"job {job['status']}: {job.get('error')}", file=sys.stderr)
        return 1
    with urllib.request.urlopen(job["output_url"], timeout=60) as resp, open(target, "wb") as f:
        f.write(resp.read())
    print(f"completed: {job['width']}x{job['height']} {job['format']} -> {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
