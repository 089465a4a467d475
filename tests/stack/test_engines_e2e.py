"""upscale, remove-object, restore-face and remove-background through the front door
on whichever engine is deployed: the embedded stack (no weights: Lanczos, Telea,
classical matting; prompts and faces answer 503) and a stack whose model repository
has every production contract's tiny stand-in installed (Real-ESRGAN, LaMa, CLIPSeg,
BiRefNet, YuNet + CodeFormer)."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator

import numpy as np
import pytest
import requests
from PIL import Image

from services.common.settings import CommonSettings
from services.models.install import install
from services.models.testmodels import make_test_models, tokenizer_dir
from services.samples.synthetic import make_sample
from services.stack import Stack
from tests.conftest import NUMBA_CACHE, free_port_block
from tests.model_repository.triton_fixtures import TEST_MODELS, copy_repository
from tests.stack.conftest import RunningStack, expected_upscale

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def production_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    home = tmp_path_factory.mktemp("stack-production")
    repo = copy_repository(home / "model_repository")
    for name, path in make_test_models(TEST_MODELS).items():
        tok = tokenizer_dir(TEST_MODELS) if name == "segment_clipseg_onnx" else None
        install(name, path, repo, tokenizer=tok)
    settings = CommonSettings(
        home=home, http_port=free_port_block(), database_url="", numba_cache_dir=NUMBA_CACHE
    )
    stack = Stack(settings=settings, model_repository=repo, log_path=home / "stack.log")
    key = stack.prepare()
    stack.start()
    try:
        stack.wait_ready(timeout=300)
        _wait_for_models(stack, ["upscale_realesrgan", "face_codeformer", "matting_birefnet"])
    except Exception:
        stack.stop()
        log = (home / "stack.log").read_text(errors="replace")[-6000:]
        raise RuntimeError(f"stack did not start; log tail:\n{log}") from None
    yield RunningStack(stack, key, home)
    stack.stop()


def _wait_for_models(stack: Stack, names: list[str], timeout: float = 120) -> None:
    import tritonclient.grpc as triton_grpc

    client = triton_grpc.InferenceServerClient(stack.settings.triton_grpc_addr)
    deadline = time.monotonic() + timeout
    try:
        while not all(client.is_model_ready(n) for n in names):
            if time.monotonic() > deadline:
                raise TimeoutError(f"models not ready: {names}")
            time.sleep(0.5)
    finally:
        client.close()


def png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def run_job(
    stack: RunningStack, op: str, files: dict[str, bytes], fields: dict[str, object]
) -> dict:
    r = requests.post(
        f"{stack.url}/v1/image/{op}",
        headers=stack.headers(Prefer="wait=60"),
        files={role: (f"{role}.png", data, "image/png") for role, data in files.items()},
        data={k: str(v) for k, v in fields.items()},
        timeout=120,
    )
    assert r.status_code in (200, 202), r.text
    body = r.json()
    deadline = time.monotonic() + 120
    while body["status"] not in ("completed", "failed", "blocked", "canceled"):
        assert time.monotonic() < deadline, body
        time.sleep(0.3)
        body = requests.get(
            f"{stack.url}/v1/image/{body['id']}", headers=stack.headers(), timeout=10
        ).json()
    return body


def fetch(done: dict) -> np.ndarray:
    r = requests.get(done["output_url"], timeout=30)
    assert r.status_code == 200
    return np.asarray(Image.open(io.BytesIO(r.content)))


@pytest.fixture(scope="module")
def mug() -> np.ndarray:
    return make_sample("mug", "plain", size=(320, 256), seed=5).rgb


def object_and_mask(photo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`photo` with a dark blob added, and a mask (white = remove) covering it."""
    painted = photo.copy()
    painted[20:50, 20:60] = (15, 15, 15)
    mask = np.zeros(photo.shape[:2], np.uint8)
    mask[16:54, 16:64] = 255
    return painted, mask


# -- the embedded stack ----------------------------------------------------------------------


def test_embedded_upscale_is_the_provisioned_network(
    sqlite_stack: RunningStack, mug: np.ndarray
) -> None:
    done = run_job(sqlite_stack, "upscale", {"image": png(mug)}, {"scale": 2})
    assert done["status"] == "completed", done
    assert expected_upscale(done["engines"]), done["engines"]
    assert done["pipeline"] == ["upscale"]
    out = fetch(done)
    assert out.shape == (512, 640, 3)
    assert (done["width"], done["height"]) == (640, 512)


def test_embedded_remove_object_with_a_mask_is_telea(
    sqlite_stack: RunningStack, mug: np.ndarray
) -> None:
    painted, mask = object_and_mask(mug)
    done = run_job(sqlite_stack, "remove-object", {"image": png(painted), "mask": png(mask)}, {})
    assert done["status"] == "completed", done
    assert done["engines"] == {"inpaint": "telea"}
    out = fetch(done)[..., :3].astype(int)
    # The blob is gone: the filled area looks like the backdrop around it, not the blob.
    assert out[20:50, 20:60].mean() > 100
    assert np.array_equal(out[100:, 100:], mug[100:, 100:])


def test_embedded_prompt_only_remove_object_and_restore_face_are_503(
    sqlite_stack: RunningStack, mug: np.ndarray
) -> None:
    for op, fields, model in (
        ("remove-object", {"prompt": "the mug"}, "segment_clipseg"),
        ("restore-face", {"fidelity": 0.5}, "face_codeformer"),
    ):
        r = requests.post(
            f"{sqlite_stack.url}/v1/image/{op}",
            headers=sqlite_stack.headers(),
            files={"image": ("p.png", png(mug), "image/png")},
            data=fields,
            timeout=30,
        )
        assert r.status_code == 503, r.text
        detail = r.json()["detail"]
        assert detail["error"] == "model_unavailable" and detail["model"] == model


# -- the production engines (tiny stand-ins) ------------------------------------------------


def test_production_remove_background_is_birefnet(
    production_stack: RunningStack, mug: np.ndarray
) -> None:
    done = run_job(production_stack, "remove-background", {"image": png(mug)}, {})
    assert done["status"] == "completed", done
    assert done["engines"] == {"matting": "birefnet"}
    assert fetch(done).shape == (256, 320, 4)


def test_production_upscale_is_realesrgan(production_stack: RunningStack, mug: np.ndarray) -> None:
    done = run_job(production_stack, "upscale", {"image": png(mug)}, {"scale": 4})
    assert done["status"] == "completed", done
    assert done["engines"] == {"upscale": "realesrgan"}
    assert fetch(done).shape == (1024, 1280, 3)


def test_production_remove_object_is_lama_and_prompts_use_clipseg(
    production_stack: RunningStack, mug: np.ndarray
) -> None:
    painted, mask = object_and_mask(mug)
    done = run_job(
        production_stack, "remove-object", {"image": png(painted), "mask": png(mask)}, {}
    )
    assert done["status"] == "completed", done
    assert done["engines"] == {"inpaint": "lama"}
    out = fetch(done)[..., :3]
    assert np.array_equal(out[100:, 100:], mug[100:, 100:])

    by_prompt = run_job(production_stack, "remove-object", {"image": png(mug)}, {"prompt": "mug"})
    # The random-weight CLIPSeg finds something or nothing; either way it ran.
    if by_prompt["status"] == "completed":
        assert by_prompt["engines"] == {"segmentation": "clipseg", "inpaint": "lama"}
    else:
        assert by_prompt["error"]["error"] == "invalid_parameter", by_prompt


def test_production_restore_face_is_codeformer(production_stack: RunningStack) -> None:
    photo = np.full((240, 320, 3), 40, np.uint8)
    photo[80:144, 128:192] = 230  # what the detector stand-in takes for a face
    done = run_job(production_stack, "restore-face", {"image": png(photo)}, {"fidelity": 0.7})
    assert done["status"] == "completed", done
    assert done["engines"] == {"face-detection": "face-detector", "restore-face": "codeformer"}
    out = fetch(done)
    assert out.shape == (240, 320, 3)
    assert np.array_equal(out[:40], photo[:40])  # far from the face: untouched
