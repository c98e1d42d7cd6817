"""Several faces in one photo (issue 15, item 4): `--face central|largest|N|all` on analyze,
describe and verify, in the CLI (its real entry point, in this process), the Python API and the
HTTP API, on face-api.js's real group photos of the Big Bang Theory cast and its identity crops of
the same people. Faces are numbered from 0, left to right by box centre."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest

from facelm.cli import main
from facelm.faces.detect import choose_face, detect_faces
from facelm.imageio import load_rgb


@pytest.fixture(scope="module")
def images(faceapi_dir: Path) -> Path:
    return faceapi_dir / "examples" / "images"


@pytest.fixture
def cli(capsys: pytest.CaptureFixture):
    """`facelm ARGS` -> (exit code, stdout, stderr lines)."""
    def run(*args: str) -> tuple[int, str, list[str]]:
        capsys.readouterr()
        rc = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return rc, out, err.strip().splitlines()
    return run


@pytest.fixture(scope="module")
def bbt4_detections(images: Path) -> tuple[list, tuple[int, int]]:
    rgb = load_rgb(images / "bbt4.jpg")
    return detect_faces(rgb), (rgb.shape[1], rgb.shape[0])


@pytest.fixture(scope="module")
def bbt4_all(images: Path) -> dict:
    """`facelm analyze bbt4.jpg --face all` (6 people), run once for the module."""
    import contextlib
    import io
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["analyze", str(images / "bbt4.jpg"), "--face", "all"]) == 0
    return json.loads(out.getvalue())  # exactly one JSON object: json.loads refuses a second


def _area(box: list[float]) -> float:
    return box[2] * box[3]


def test_analyze_all_returns_every_face_with_its_analysis(bbt4_all: dict, bbt4_detections) -> None:
    dets, size = bbt4_detections
    faces = bbt4_all["faces"]
    assert bbt4_all["faces_found"] == len(faces) == len(dets) == 6
    assert bbt4_all["image_size"] == list(size) and bbt4_all["source"].endswith("bbt4.jpg")
    assert bbt4_all["warnings"] == [] and bbt4_all["schema_version"] >= 1
    boxes = [tuple(f["detection"]["box"]) for f in faces]
    assert len(set(boxes)) == 6
    assert [f["face_index"] for f in faces] == list(range(6))
    centres = [b[0] + b[2] / 2 for b in boxes]
    assert centres == sorted(centres)  # the documented order: left to right
    for f in faces:
        assert len(f["landmarks68"]) == 68 and f["attributes"]["gender"] in ("female", "male")
        x, y, w, h = f["detection"]["box"]  # its landmarks lie on its own face
        assert all(x - 0.2 * w <= px <= x + 1.2 * w and y - 0.2 * h <= py <= y + 1.2 * h
                   for px, py in f["landmarks68"])


def test_face_n_largest_and_central_pick_those_faces(cli, images: Path, bbt4_all: dict,
                                                     bbt4_detections) -> None:
    faces = bbt4_all["faces"]
    rc, out, err = cli("analyze", images / "bbt4.jpg", "--face", "3", "--fast")
    one = json.loads(out)
    assert rc == 0 and one["face_index"] == 3
    assert one["detection"]["box"] == pytest.approx(faces[3]["detection"]["box"], abs=1e-3)
    assert len(one["warnings"]) == 1 and one["warnings"][0].startswith("6 faces found")
    assert err == [f"facelm: warning: {one['warnings'][0]}"]

    largest = max(range(6), key=lambda i: _area(faces[i]["detection"]["box"]))
    rc, out, _ = cli("analyze", images / "bbt4.jpg", "--face", "largest", "--fast")
    assert json.loads(out)["face_index"] == largest

    # the default is still facelm's "large and central" rule, which here is not the largest face
    dets, size = bbt4_detections
    central = choose_face(dets, size)
    rc, out, _ = cli("analyze", images / "bbt4.jpg", "--fast")
    default = json.loads(out)
    assert default["detection"]["box"] == pytest.approx(list(central.box), abs=1e-3)
    assert default["face_index"] != largest and "central" in default["warnings"][0]


def test_bad_face_choices_are_one_line_errors(cli, images: Path) -> None:
    rc, out, err = cli("analyze", images / "bbt4.jpg", "--face", "6")
    assert rc == 2 and out == "" and len(err) == 1
    assert "no face 6" in err[0] and "6 faces found" in err[0]
    rc, _, err = cli("describe", images / "bbt4.jpg", "--face", "left")
    assert rc == 2 and len(err) == 1 and "--face" in err[0]


def test_single_face_photo_has_no_warning(cli, images: Path) -> None:
    rc, out, err = cli("describe", images / "bernadette" / "bernadette2.png", "--aspect", "pose",
                       "--json")
    d = json.loads(out)
    assert rc == 0 and d["warnings"] == [] and err == [] and d["analysis"]["face_index"] == 0


def test_verify_all_finds_the_shared_person(cli, images: Path, bbt4_all: dict) -> None:
    # Bernadette is in bbt4 only, at the right edge; the central face is someone else
    group, crop = images / "bbt4.jpg", images / "bernadette" / "bernadette2.png"
    rc, out, err = cli("verify", group, crop, "--face", "all", "--json")
    d = json.loads(out)
    pair = d["face_pair"]
    assert rc == 0 and d["same"] is True and err == [] and d["warnings"] == []
    assert pair["a"]["face_index"] == 5 and pair["b"]["face_index"] == 0
    assert pair["a"]["box"] == pytest.approx(bbt4_all["faces"][5]["detection"]["box"], abs=1e-3)
    assert pair["pairs_compared"] == 6 and d["score"] == pytest.approx(max(r[0] for r in pair["scores"]))
    assert d["a"]["face_index"] == 5

    rc, out, err = cli("verify", group, crop, "--tier", "concise")  # central face: not her
    assert rc == 0 and "DIFFERENT PEOPLE" in out and len(err) == 1 and "6 faces found" in err[0]
    rc, out, _ = cli("verify", group, crop, "--face", "all", "--tier", "concise")
    assert "SAME PERSON" in out and "best-matching pair: A face 5 of 6" in out


def test_describe_all_describes_each_face(cli, images: Path) -> None:
    rc, out, _ = cli("describe", images / "bbt2.jpg", "--face", "all", "--aspect", "pose", "--json")
    d = json.loads(out)
    assert rc == 0 and d["faces_found"] == len(d["faces"]) == 3
    assert [f["analysis"]["face_index"] for f in d["faces"]] == [0, 1, 2]
    texts = [f["answers"]["pose"] for f in d["faces"]]
    assert all(texts) and len(set(texts)) == 3


def test_python_api_face_choice(images: Path) -> None:
    import facelm
    faces = facelm.analyze(images / "bbt2.jpg", face="all", fast=True)
    assert faces.faces_found == 3
    assert facelm.analyze(images / "bbt2.jpg", face="1", fast=True).detection == faces.faces[1].detection
    cmp = facelm.compare(faces, images / "leonard" / "leonard2.png", face="all", explain=False)
    assert cmp.face_pair["a"]["face_index"] == 1 and cmp.same  # Leonard stands second from left


def test_http_api_accepts_face(images: Path) -> None:
    from facelm.serve.background import BackgroundServer
    from facelm.serve.config import ServeConfig
    from facelm.serve.schemas import DescribeFacesResult, VerifyResult
    group, crop = images / "bbt4.jpg", images / "bernadette" / "bernadette2.png"
    with BackgroundServer(ServeConfig(port=0, workers=1, queue=4)) as url, \
            httpx.Client(base_url=url, timeout=60) as client:
        r = client.post("/v1/describe", data={"face": "all", "aspect": "pose"},
                        files={"image": ("bbt4.jpg", group.read_bytes(), "image/jpeg")})
        assert r.status_code == 200, r.text
        assert len(DescribeFacesResult.model_validate(r.json()).faces) == 6  # the documented shape
        r = client.post("/v1/describe", data={"face": "largest", "aspect": "pose"},
                        files={"image": ("bbt4.jpg", group.read_bytes(), "image/jpeg")})
        assert r.status_code == 200 and "largest" in r.json()["warnings"][0]
        b64 = {"image_a": base64.b64encode(group.read_bytes()).decode(), "name_a": "bbt4.jpg",
               "image_b": base64.b64encode(crop.read_bytes()).decode(), "name_b": "bernadette2.png"}
        d = client.post("/v1/verify", json={**b64, "face": "all", "fast": True}).json()
        assert d["same"] is True and d["face_pair"]["a"]["face_index"] == 5
        assert VerifyResult.model_validate(d).face_pair.pairs_compared == 6
        r = client.post("/v1/verify", json={**b64, "face": 9})
        assert r.status_code == 422 and "6 faces found" in r.json()["error"]["message"]
        r = client.post("/v1/verify", json={**b64, "face": "left"})
        assert r.status_code == 422 and r.json()["error"]["item"] == "face"
        schema = client.get("/openapi.json").json()
        form = schema["paths"]["/v1/verify"]["post"]["requestBody"]["content"]["multipart/form-data"]
        assert "face" in form["schema"]["properties"]
