"""inpaint_lama, segment_clipseg, face_detector and face_codeformer: each served front
(python backend + BLS over its ONNX stand-in) against the same pipeline in-process, and
the geometry each one owns (crops, letterbox, alignment and paste-back)."""

from __future__ import annotations

import ast
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as triton_grpc

from services.common.triton import MODEL_REPOSITORY, TritonProcess
from services.models.pybackend.clip_tokenizer import ClipTokenizer
from tests.model_repository.triton_fixtures import (
    TEST_MODELS,
    config_parameters,
    load_model_module,
)

FRONTS = ("inpaint_lama", "segment_clipseg", "face_detector", "face_codeformer")
# The learned matting fronts are one shared model class, configured per model; so are
# the tiled upscalers.
MATTING_FRONTS = ("matting_birefnet", "matting_isnet")
UPSCALE_FRONTS = ("upscale_realesrgan", "upscale_rrdn")
PYBACKEND = MODEL_REPOSITORY.parent / "services" / "models" / "pybackend"
# Helpers that live only in services/models/pybackend (model folders once held copies).
SHARED = ("triton_bls", "clip_tokenizer")


def params_of(module: ModuleType, cls_name: str, model: str) -> Any:
    cls = getattr(module, cls_name)
    defaults = cls()
    values = {k: type(getattr(defaults, k))(v) for k, v in config_parameters(model).items()}
    return cls(**values)


def session(repo: Path, name: str) -> ort.InferenceSession:
    return ort.InferenceSession(
        str(repo / name / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
    )


def infer(
    server: TritonProcess, model: str, inputs: dict[str, np.ndarray], outputs: list[str]
) -> list[np.ndarray]:
    client = triton_grpc.InferenceServerClient(server.grpc_addr)
    types = {
        np.dtype(np.uint8): "UINT8",
        np.dtype(np.float32): "FP32",
        np.dtype(np.object_): "BYTES",
    }
    try:
        tensors = []
        for name, array in inputs.items():
            tensor = triton_grpc.InferInput(name, list(array.shape), types[array.dtype])
            tensor.set_data_from_numpy(array)
            tensors.append(tensor)
        result = client.infer(
            model, tensors, outputs=[triton_grpc.InferRequestedOutput(o) for o in outputs]
        )
        return [result.as_numpy(o) for o in outputs]
    finally:
        client.close()


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports (`import a.b` and `from a.b import c` give a.b)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_no_model_folder_holds_its_own_copy_of_a_shared_helper() -> None:
    for name in SHARED:
        assert (PYBACKEND / f"{name}.py").is_file(), name
    copies = [p for p in MODEL_REPOSITORY.rglob("*.py") if p.stem in SHARED]
    assert copies == [], f"copies of services/models/pybackend modules: {copies}"
    for path in MODEL_REPOSITORY.rglob("*.py"):
        bare = imported_modules(path) & set(SHARED)
        assert not bare, f"{path} imports {bare} from beside itself"


def test_the_models_import_the_shared_helpers_from_services() -> None:
    users = {MODEL_REPOSITORY / name / "1" / "model.py": {"triton_bls"} for name in FRONTS}
    users[MODEL_REPOSITORY / "segment_clipseg" / "1" / "model.py"].add("clip_tokenizer")
    users[MODEL_REPOSITORY / "sdxl" / "1" / "sdxl_pipeline.py"] = {"clip_tokenizer"}
    for name in MATTING_FRONTS:
        users[MODEL_REPOSITORY / name / "1" / "model.py"] = {"matting_model"}
    for name in UPSCALE_FRONTS:
        users[MODEL_REPOSITORY / name / "1" / "model.py"] = {"upscale_model"}
    users[PYBACKEND / "upscale_model.py"] = {"triton_bls", "tiling"}
    for path, modules in users.items():
        expected = {f"services.models.pybackend.{module}" for module in modules}
        assert expected <= imported_modules(path), path


def scene(h: int = 360, w: int = 480) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = np.stack([90 + 0.2 * xx, 110 + 0.2 * yy, 140 + 0.05 * (xx + yy)], axis=2)
    return np.clip(rgb, 0, 255).astype(np.uint8)


# -- LaMa --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lama() -> ModuleType:
    return load_model_module("inpaint_lama", "lama")


def test_lama_served_matches_in_process_and_keeps_pixels_away_from_the_mask(
    production_server: TritonProcess, production_repo: Path, lama: ModuleType
) -> None:
    photo = scene()
    photo[100:140, 200:260] = (20, 30, 40)
    photo[300:320, 20:40] = (250, 250, 250)
    mask = np.zeros(photo.shape[:2], np.uint8)
    mask[98:142, 198:262] = 255
    mask[298:322, 18:42] = 255
    (served,) = infer(
        production_server, "inpaint_lama", {"IMAGE": photo, "MASK": mask}, ["INPAINTED"]
    )
    lama_onnx = session(production_repo, "inpaint_lama_onnx")
    params = params_of(lama, "LamaParams", "inpaint_lama")
    expected = lama.inpaint(
        photo, mask, lambda x, m: lama_onnx.run(["output"], {"image": x, "mask": m})[0], params
    )
    assert np.abs(served.astype(int) - expected.astype(int)).max() <= 1
    grown = mask.copy()
    grown[90:150, 190:270] = 255
    grown[290:330, 10:50] = 255
    assert np.array_equal(served[grown == 0], photo[grown == 0])
    assert not np.array_equal(served[mask > 0], photo[mask > 0])


def test_lama_works_on_crops_around_the_mask_only(lama: ModuleType) -> None:
    photo = np.random.default_rng(0).integers(0, 256, (3000, 4000, 3), dtype=np.uint8)
    mask = np.zeros(photo.shape[:2], np.uint8)
    mask[100:130, 200:240] = 255  # a blemish near the corner
    mask[2500:2900, 3000:3500] = 255  # a larger object far away
    seen: list[tuple[int, ...]] = []

    def run(x: np.ndarray, m: np.ndarray) -> np.ndarray:
        seen.append(x.shape)
        return x * 255.0

    params = lama.LamaParams()
    boxes = lama.crop_boxes(mask >= 128, params)
    assert len(boxes) == 2
    assert all((x1 - x0) * (y1 - y0) < 0.1 * 3000 * 4000 for x0, y0, x1, y1 in boxes)
    lama.inpaint(photo, mask, run, params)
    assert seen == [(1, 3, 512, 512)] * 2


# -- CLIPSeg -----------------------------------------------------------------------------


def test_clipseg_served_matches_in_process(
    production_server: TritonProcess, production_repo: Path
) -> None:
    clipseg = load_model_module("segment_clipseg", "clipseg")
    tokenizer = ClipTokenizer.from_dir(TEST_MODELS / "tokenizer")
    photo = scene(300, 400)
    prompt = np.array([b"the red cup"], dtype=np.object_)
    (served,) = infer(
        production_server, "segment_clipseg", {"IMAGE": photo, "PROMPT": prompt}, ["MASK"]
    )
    onnx = session(production_repo, "segment_clipseg_onnx")
    params = params_of(clipseg, "ClipSegParams", "segment_clipseg")

    def run(ids: np.ndarray, pixels: np.ndarray, attention: np.ndarray) -> np.ndarray:
        feed = {"input_ids": ids, "pixel_values": pixels, "attention_mask": attention}
        return onnx.run(["logits"], feed)[0]

    expected = clipseg.segment(photo, "the red cup", tokenizer, run, params)
    assert served.shape == (300, 400) and set(np.unique(served)) <= {0, 255}
    assert np.mean(served != expected) < 0.001  # bilinear ties at the threshold aside
    ids, attention = clipseg.tokens(tokenizer, "the red cup")
    assert ids.shape == attention.shape == (1, 77) and ids.dtype == np.int64
    assert attention.sum() == len(tokenizer.encode("the red cup")) + 2


# -- faces -------------------------------------------------------------------------------


def face_photo() -> np.ndarray:
    """A dark photo with one light square that the detector stand-in calls a face."""
    photo = np.full((480, 640, 3), 40, np.uint8)
    yy, xx = np.mgrid[0:480, 0:640]
    photo[160:288, 256:384] = 230
    photo[160:288, 256:384, 0] = (200 + 30 * np.sin(xx[160:288, 256:384] / 5)).astype(np.uint8)
    return photo


def test_detector_finds_the_face_where_it_is(
    production_server: TritonProcess, production_repo: Path
) -> None:
    yunet = load_model_module("face_detector", "yunet")
    photo = face_photo()
    (faces,) = infer(production_server, "face_detector", {"IMAGE": photo}, ["FACES"])
    onnx = session(production_repo, "face_detector_onnx")
    params = params_of(yunet, "DetectParams", "face_detector")
    expected = yunet.detect(
        photo,
        lambda x: dict(zip(yunet.OUTPUTS, onnx.run(yunet.OUTPUTS, {"input": x}), strict=True)),
        params,
    )
    assert faces.shape[1] == 15 and len(faces) >= 1
    assert np.allclose(faces, expected, atol=1e-3)
    cx, cy = faces[:, 0] + faces[:, 2] / 2, faces[:, 1] + faces[:, 3] / 2
    assert ((cx > 240) & (cx < 400) & (cy > 140) & (cy < 310)).all()
    (none,) = infer(
        production_server,
        "face_detector",
        {"IMAGE": np.full((100, 100, 3), 30, np.uint8)},
        ["FACES"],
    )
    assert none.shape == (0, 15)


def test_codeformer_restores_only_the_faces(
    production_server: TritonProcess, production_repo: Path
) -> None:
    restore = load_model_module("face_codeformer", "restore")
    photo = face_photo()
    restored, count = infer(
        production_server,
        "face_codeformer",
        {"IMAGE": photo, "FIDELITY": np.array([0.3], np.float32)},
        ["RESTORED", "FACES"],
    )
    assert int(count[0]) >= 1
    (faces,) = infer(production_server, "face_detector", {"IMAGE": photo}, ["FACES"])
    onnx = session(production_repo, "face_codeformer_onnx")
    params = params_of(restore, "RestoreParams", "face_codeformer")
    expected, n = restore.restore(
        photo, faces, 0.3, lambda x, w: onnx.run(["output"], {"input": x, "weight": w})[0], params
    )
    assert n == int(count[0])
    assert np.abs(restored.astype(int) - expected.astype(int)).max() <= 1
    # Pixels outside every face's aligned square are the photo's own.
    touched = np.zeros(photo.shape[:2], bool)
    for face in faces:
        x, y, w, h = face[:4]
        touched[max(0, int(y - h)) : int(y + 2 * h), max(0, int(x - w)) : int(x + 2 * w)] = True
    assert np.array_equal(restored[~touched], photo[~touched])
    assert not np.array_equal(restored[touched], photo[touched])


def test_codeformer_leaves_a_photo_without_faces_alone(production_server: TritonProcess) -> None:
    photo = np.full((120, 160, 3), 30, np.uint8)
    restored, count = infer(
        production_server,
        "face_codeformer",
        {"IMAGE": photo, "FIDELITY": np.array([0.5], np.float32)},
        ["RESTORED", "FACES"],
    )
    assert int(count[0]) == 0 and np.array_equal(restored, photo)


def test_alignment_maps_the_landmarks_onto_the_template() -> None:
    restore = load_model_module("face_codeformer", "restore")
    template = restore.FFHQ_TEMPLATE_512
    # A face at half the template's scale, shifted: the transform undoes it.
    landmarks = template * 0.5 + np.array([100.0, 40.0], np.float32)
    matrix = restore.alignment(landmarks.reshape(-1), 512)
    mapped = np.hstack([landmarks, np.ones((5, 1), np.float32)]) @ matrix.T
    assert np.abs(mapped - template).max() < 0.5
