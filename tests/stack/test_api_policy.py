"""The content policy end to end: a prompt with a deny-listed term makes a
blocked job that costs nothing; the list comes from LIGHTBOX_CONTENT_DENYLIST."""

from __future__ import annotations

import pytest
import requests

from services.common.ports import free_port_block
from tests.gateway.stackutil import error_of, make_key, product, service
from tests.stack.conftest import RunningStack

pytestmark = pytest.mark.stack


def balance(url: str, headers: dict[str, str]) -> float:
    return float(
        requests.get(f"{url}/v1/account/balance", headers=headers).json()["credits_remaining"]
    )


def test_default_denylist_blocks_without_charge(sqlite_stack: RunningStack) -> None:
    k = make_key(sqlite_stack, credits=20)
    r = requests.post(
        f"{sqlite_stack.url}/v1/image/product-photo",
        headers=k.headers,
        files={"image": ("p.png", product())},
        data={"preset": "custom", "background_prompt": "a NUDE figure behind the bottle"},
    )
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["status"] == "blocked" and job["credits_used"] == 0
    assert job["error"]["error"] == "content_blocked"
    assert "background_prompt" in job["error"]["message"]
    assert balance(sqlite_stack.url, k.headers) == 20
    # Negative prompts are checked as well; the job stays blocked when read back.
    r = requests.post(
        f"{sqlite_stack.url}/v1/image/generate",
        headers=k.headers,
        json={"prompt": "a vase", "negative_prompt": "gore"},
    )
    assert r.json()["status"] == "blocked"
    got = requests.get(f"{sqlite_stack.url}/v1/image/{r.json()['id']}", headers=k.headers)
    assert got.json()["status"] == "blocked"
    assert balance(sqlite_stack.url, k.headers) == 20


def test_denylist_is_configurable(sqlite_stack: RunningStack) -> None:
    k = make_key(sqlite_stack, credits=20)
    jobs_addr = f"127.0.0.1:{free_port_block(1)}"
    with (
        service(
            sqlite_stack,
            "jobs",
            LIGHTBOX_JOBS_ADDR=jobs_addr,
            LIGHTBOX_CONTENT_DENYLIST="forbidden-term, zebra stripes",
        ),
        service(sqlite_stack, "gateway", LIGHTBOX_JOBS_ADDR=jobs_addr) as gw,
    ):

        def generate(base: str, prompt: str) -> requests.Response:
            return requests.post(
                f"{base}/v1/image/generate", headers=k.headers, json={"prompt": prompt}
            )

        r = generate(gw.url, "A Forbidden-Term poster")
        assert r.status_code == 200 and r.json()["status"] == "blocked"
        assert generate(gw.url, "zebra stripes everywhere").json()["status"] == "blocked"
        # The configured list replaces the default one.
        r = generate(gw.url, "a nude statue")
        assert r.status_code == 503 and error_of(r) == "model_unavailable"
        # The stack's own jobs API keeps the default list.
        r = generate(sqlite_stack.url, "a forbidden-term poster")
        assert r.status_code == 503 and error_of(r) == "model_unavailable"
    assert balance(sqlite_stack.url, k.headers) == 20
