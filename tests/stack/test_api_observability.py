"""What operators and client authors read: Prometheus metrics from the gateway
and the worker, the OpenAPI document and the Swagger UI."""

from __future__ import annotations

import re

import pytest
import requests

from tests.gateway.stackutil import Key, make_key, product
from tests.stack.conftest import RunningStack

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def key(sqlite_stack: RunningStack) -> Key:
    return make_key(sqlite_stack)


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one series in Prometheus text format."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        series, value = line.rsplit(" ", 1)
        found = dict(re.findall(r'(\w+)="([^"]*)"', series))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(value)
    return None


def test_gateway_metrics(sqlite_stack: RunningStack, key: Key) -> None:
    for _ in range(3):
        requests.get(f"{sqlite_stack.url}/v1/image/abcdef", headers=key.headers)
    requests.get(f"{sqlite_stack.url}/v1/no-such-route/{'x' * 20}")
    r = requests.get(f"{sqlite_stack.url}/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    # Requests by route template (never by raw path) and status.
    assert (
        sample(
            text,
            "lightbox_http_requests_total",
            method="GET",
            route="/v1/image/{job_id}",
            status="404",
        )
        >= 3
    )
    assert "abcdef" not in text and "x" * 20 not in text
    assert sample(text, "lightbox_http_requests_total", route="unmatched", status="404") >= 1
    assert (
        sample(
            text,
            "lightbox_http_request_duration_seconds_count",
            method="GET",
            route="/v1/image/{job_id}",
        )
        >= 3
    )
    assert (
        sample(
            text,
            "lightbox_http_request_duration_seconds_bucket",
            method="GET",
            route="/v1/image/{job_id}",
            le="+Inf",
        )
        >= 3
    )
    assert sample(text, "lightbox_queue_depth") is not None
    assert sample(text, "lightbox_jobs_api_up") == 1


def test_submits_and_worker_stage_timings(sqlite_stack: RunningStack, key: Key) -> None:
    r = requests.post(
        f"{sqlite_stack.url}/v1/image/remove-background",
        headers=key.h(Prefer="wait=60"),
        files={"image": ("p.png", product())},
    )
    assert r.status_code == 200 and r.json()["status"] == "completed"
    gateway = requests.get(f"{sqlite_stack.url}/metrics").text
    assert sample(gateway, "lightbox_jobs_submitted_total", operation="remove-background") >= 1
    worker_port = sqlite_stack.stack.settings.http_port + 6
    worker = requests.get(f"http://127.0.0.1:{worker_port}/metrics", timeout=10).text
    for stage in ("decode", "remove-background", "encode", "store"):
        count = sample(
            worker,
            "lightbox_worker_stage_seconds_count",
            operation="remove-background",
            stage=stage,
        )
        assert count is not None and count >= 1, stage
    assert (
        sample(
            worker, "lightbox_worker_jobs_total", operation="remove-background", outcome="completed"
        )
        >= 1
    )


def test_openapi_describes_every_endpoint_field_and_error(sqlite_stack: RunningStack) -> None:
    spec = requests.get(f"{sqlite_stack.url}/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    paths = spec["paths"]
    ops = [
        "product-photo",
        "remove-background",
        "replace-background",
        "generate",
        "upscale",
        "restore-face",
        "remove-object",
    ]
    for op in ops:
        assert "post" in paths[f"/v1/image/{op}"] and "post" in paths[f"/v2/{op}"]
    for path, method in [
        ("/v1/image/{job_id}", "get"),
        ("/v1/image/{job_id}", "delete"),
        ("/v1/models", "get"),
        ("/v1/account/balance", "get"),
        ("/v1/account/usage", "get"),
        ("/v2/ai-product-photography", "post"),
        ("/v2/requests/{request_id}/status", "get"),
        ("/v2/requests/{request_id}", "get"),
        ("/v1/files/{key}", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
    ]:
        assert method in paths[path], (path, method)

    photo = paths["/v1/image/product-photo"]["post"]
    content = photo["requestBody"]["content"]
    multipart = content["multipart/form-data"]["schema"]
    assert multipart["properties"]["image"]["format"] == "binary"
    assert "image" in multipart["required"]
    assert content["application/json"]["schema"]["required"] == ["image_url"]
    scale = multipart["properties"]["scale"]
    assert (scale["minimum"], scale["maximum"]) == (0.05, 1.0) and scale["description"]
    assert set(multipart["properties"]["shadow_type"]["enum"]) == {
        "soft",
        "hard",
        "natural",
        "floating",
        "none",
    }
    headers = {p["name"] for p in photo["parameters"]}
    assert {"Idempotency-Key", "Prefer"} <= headers
    for code in ("400", "401", "402", "403", "409", "413", "415", "422", "429", "503"):
        assert code in photo["responses"], code
        assert "ErrorBody" in str(photo["responses"][code]["content"])
    assert "X-RateLimit-Remaining" in photo["responses"]["202"]["headers"]
    mask = paths["/v1/image/remove-object"]["post"]["requestBody"]["content"]
    assert mask["multipart/form-data"]["schema"]["properties"]["mask"]["format"] == "binary"
    generate = paths["/v1/image/generate"]["post"]["requestBody"]["content"]
    assert list(generate) == ["application/json"]
    width = generate["application/json"]["schema"]["properties"]["width"]
    assert (width["minimum"], width["maximum"], width["multipleOf"]) == (512, 1536, 8)
    segmind = paths["/v2/ai-product-photography"]["post"]["requestBody"]["content"]
    assert {"prompt", "x_value", "y_value", "detailtransfer", "image_format", "image"} <= set(
        segmind["application/json"]["schema"]["properties"]
    )
    # No dangling references anywhere in the document.
    schemas = spec["components"]["schemas"]
    for ref in re.findall(r'"\$ref": "([^"]+)"', str(spec).replace("'", '"')):
        assert ref.startswith("#/components/schemas/") and ref.split("/")[-1] in schemas, ref
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_swagger_ui(sqlite_stack: RunningStack) -> None:
    r = requests.get(f"{sqlite_stack.url}/docs")
    assert r.status_code == 200 and "swagger-ui" in r.text and "/openapi.json" in r.text
