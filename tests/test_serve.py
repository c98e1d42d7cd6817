"""The HTTP API against the real app on a real uvicorn socket (127.0.0.1), with real photos.

One server for the module (models warmed once); limits are lowered so that real photos cross them:
2 MiB per upload (deepface's 2.5 MB camera JPEG is over), 200,000 pixels (a 600x600 PNG is over).
"""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from facelm.serve.app import STATIC
from facelm.serve.background import BackgroundServer
from facelm.serve.config import ServeConfig

MAX_UPLOAD = 2 * 1024 * 1024
MAX_PIXELS = 200_000


@pytest.fixture(scope="module")
def url() -> str:
    cfg = ServeConfig(port=0, max_upload_bytes=MAX_UPLOAD, max_pixels=MAX_PIXELS, workers=2, queue=8)
    with BackgroundServer(cfg) as base:
        yield base


@pytest.fixture(scope="module")
def client(url: str) -> httpx.Client:
    with httpx.Client(base_url=url, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def same_pair(lfw_dir: Path, lfw_pairs: list[dict]) -> tuple[Path, Path]:
    row = next(r for r in lfw_pairs if r["same"] == "1")
    return lfw_dir / row["file_a"], lfw_dir / row["file_b"]


@pytest.fixture(scope="module")
def different_pair(lfw_dir: Path, lfw_pairs: list[dict]) -> tuple[Path, Path]:
    row = next(r for r in lfw_pairs if r["same"] == "0")
    return lfw_dir / row["file_a"], lfw_dir / row["file_b"]


def files(**paths: Path) -> dict:
    return {field: (p.name, p.read_bytes(), "image/jpeg") for field, p in paths.items()}


@pytest.fixture
def cli_json(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    """Run `facelm ... --json` (its real entry point, in this process) inside the photos' folder, so
    that it names them by file name as the API does (the name is the analysis' `source`, and it
    also seeds the explanations' wording)."""
    from facelm.cli import main

    def run(folder: Path, *args: str) -> dict:
        monkeypatch.chdir(folder)
        capsys.readouterr()
        assert main([*args, "--json"]) == 0
        return json.loads(capsys.readouterr().out)
    return run


def error_of(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["status"] == status and err["message"] and err["type"]
    return err


# ---- health, schema, page ----

def test_healthz_reports_ready_and_limits(client: httpx.Client) -> None:
    h = client.get("/healthz").json()
    assert h["status"] == "ok" and h["ready"] is True and h["workers"] == 2
    assert h["auth_required"] is False
    assert h["max_upload_bytes"] == MAX_UPLOAD and h["max_pixels"] == MAX_PIXELS


def test_openapi_documents_both_body_forms(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    for path in ("/v1/verify", "/v1/describe", "/v1/chat/completions"):
        assert path in schema["paths"]
    body = schema["paths"]["/v1/verify"]["post"]["requestBody"]["content"]
    assert body["multipart/form-data"]["schema"]["required"] == ["image_a", "image_b"]
    assert body["application/json"]["schema"]["properties"]["image_a"]["format"] == "byte"
    assert "413" in schema["paths"]["/v1/verify"]["post"]["responses"]
    chat = schema["paths"]["/v1/chat/completions"]["post"]["requestBody"]["content"]
    assert chat["application/json"]["schema"]["required"] == ["messages"]


def test_page_and_assets_are_served_locally(client: httpx.Client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/style.css"):
        assert client.get(asset).status_code == 200
    for path in STATIC.iterdir():  # no CDN, no external fonts: the page must work offline
        text = path.read_text()
        assert "http://" not in text and "https://" not in text, path.name


# ---- verify ----

def test_verify_multipart_is_the_cli_json(client: httpx.Client, same_pair: tuple[Path, Path],
                                          cli_json) -> None:
    a, b = same_pair
    r = client.post("/v1/verify", files=files(image_a=a, image_b=b))
    assert r.status_code == 200, r.text
    api = r.json()
    assert api["same"] is True and api["a"]["source"] == a.name
    assert a.parent == b.parent
    assert api == cli_json(a.parent, "verify", a.name, b.name)


def test_verify_base64_json_equals_multipart(client: httpx.Client, different_pair: tuple[Path, Path]) -> None:
    a, b = different_pair
    multipart = client.post("/v1/verify", files=files(image_a=a, image_b=b)).json()
    data_url = "data:image/jpeg;base64," + base64.b64encode(b.read_bytes()).decode()
    r = client.post("/v1/verify", json={"image_a": base64.b64encode(a.read_bytes()).decode(),
                                        "image_b": data_url, "name_a": a.name, "name_b": b.name})
    assert r.status_code == 200, r.text
    assert r.json()["same"] is False
    assert r.json() == multipart
    unnamed = client.post("/v1/verify", json={"image_a": base64.b64encode(a.read_bytes()).decode(),
                                              "image_b": data_url}).json()
    assert unnamed["a"]["source"] == "image_a" and unnamed["score"] == multipart["score"]


def test_verify_options_threshold_and_fast(client: httpx.Client, same_pair: tuple[Path, Path]) -> None:
    a, b = same_pair
    r = client.post("/v1/verify", files=files(image_a=a, image_b=b),
                    data={"threshold": "0.999", "fast": "true", "seed": "3"})
    out = r.json()
    assert r.status_code == 200 and out["threshold"] == 0.999 and out["same"] is False
    assert out["a"]["attributes"] is None  # fast: identity only


# ---- describe ----

def test_describe_all_aspects_is_the_cli_json(client: httpx.Client, portrait_path: Path,
                                              cli_json) -> None:
    r = client.post("/v1/describe", files=files(image=portrait_path))
    assert r.status_code == 200, r.text
    out = r.json()
    assert len(out["answers"]) == 8 and len(out["analysis"]["landmarks68"]) == 68
    assert out == cli_json(portrait_path.parent, "describe", portrait_path.name)


def test_describe_one_aspect_from_base64(client: httpx.Client, portrait_path: Path) -> None:
    r = client.post("/v1/describe", json={"image": base64.b64encode(portrait_path.read_bytes()).decode(),
                                          "aspect": "pose"})
    assert r.status_code == 200, r.text
    assert list(r.json()["answers"]) == ["pose"] and "frontal" in r.json()["answers"]["pose"]


# ---- bad input: each is refused with a status and a message naming the item ----

def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def test_not_an_image(client: httpx.Client, lfw_dir: Path) -> None:
    r = client.post("/v1/describe", files={"image": ("pairs.csv", (lfw_dir / "pairs.csv").read_bytes())})
    err = error_of(r, 422)
    assert err["item"] == "pairs.csv" and "not an image" in err["message"] and err["hint"]


def test_truncated_jpeg(client: httpx.Client, portrait_path: Path) -> None:
    data = portrait_path.read_bytes()
    r = client.post("/v1/describe", files={"image": ("cut.jpg", data[: len(data) // 2])})
    err = error_of(r, 422)
    assert err["item"] == "cut.jpg" and "truncated" in err["message"]


def test_upload_over_the_byte_limit_is_413(client: httpx.Client, deepface_dir: Path) -> None:
    big = deepface_dir / "images" / "img26.jpg"  # a 2.5 MB camera photo
    assert big.stat().st_size > MAX_UPLOAD
    r = client.post("/v1/describe", files=files(image=big))
    err = error_of(r, 413)
    assert "limit" in err["message"] and "--max-upload-mb" in err["hint"]
    b64 = base64.b64encode(big.read_bytes()).decode()
    err = error_of(client.post("/v1/describe", json={"image": b64}), 413)
    assert err["item"] == "request body"
    # The body as a whole is under verify's limit (two images): the per-file limit names the field.
    r = client.post("/v1/verify", files={"image_a": ("big.jpg", big.read_bytes()),
                                         "image_b": ("small.jpg", b"x")})
    assert error_of(r, 413)["item"] == "image_a"
    # Chunked, with no Content-Length to refuse up front: cut off while streaming.
    body = json.dumps({"image": b64}).encode()
    chunks = (body[i:i + 65536] for i in range(0, len(body), 65536))
    r = client.post("/v1/describe", content=chunks, headers={"content-type": "application/json"})
    assert error_of(r, 413)["item"] == "request body"


def test_image_over_the_pixel_limit_is_413(client: httpx.Client, portrait_path: Path) -> None:
    big = np.asarray(Image.open(portrait_path).convert("RGB").resize((600, 600)))  # 360,000 px
    r = client.post("/v1/describe", files={"image": ("big.png", _png(big))})
    err = error_of(r, 413)
    assert err["item"] == "big.png" and "MP limit" in err["message"]


def test_photo_without_a_face_is_422(client: httpx.Client, portrait_path: Path) -> None:
    from skimage import data
    coffee = data.coffee()[:, :400]  # a real photo of a cup of coffee, 400x400
    r = client.post("/v1/verify", files={"image_a": ("coffee.png", _png(coffee)),
                                         "image_b": ("face.jpg", portrait_path.read_bytes())})
    err = error_of(r, 422)
    assert err["type"] == "NoFaceError" and err["item"] == "coffee.png"


@pytest.mark.parametrize("kwargs, status, item", [
    ({"files": {"image_a": ("a.jpg", b"x")}}, 422, "image_b"),
    ({"json": {"image_a": "not base64!", "image_b": "AAAA"}}, 422, "image_a"),
    ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, None),
    ({"content": b"raw", "headers": {"content-type": "image/jpeg"}}, 415, None),
])
def test_malformed_requests(client: httpx.Client, kwargs: dict, status: int, item: str | None) -> None:
    err = error_of(client.post("/v1/verify", **kwargs), status)
    assert err["item"] == item and err["hint"]


def test_unknown_aspect_and_bad_option(client: httpx.Client, portrait_path: Path) -> None:
    err = error_of(client.post("/v1/describe", files=files(image=portrait_path), data={"aspect": "mood"}), 422)
    assert err["item"] == "aspect" and "pose" in err["hint"]
    err = error_of(client.post("/v1/verify", files=files(image_a=portrait_path, image_b=portrait_path),
                               data={"threshold": "high"}), 422)
    assert err["item"] == "threshold"


def test_unknown_route_is_json_404(client: httpx.Client) -> None:
    assert error_of(client.get("/v1/nothing"), 404)["hint"]


# ---- OpenAI-format chat completions (served by the offline "evidence" FaceVLM) ----

def _image_part(path: Path) -> dict:
    b64 = base64.b64encode(path.read_bytes()).decode()
    return {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{b64}"}}


def test_chat_completion_schema_and_answer(client: httpx.Client, same_pair: tuple[Path, Path]) -> None:
    from facelm.data.schema import PAIR_QUESTIONS
    from facelm.imageio import load_rgb
    from facelm.models import load_model
    a, b = same_pair
    question = PAIR_QUESTIONS["concise"]
    req = {"model": "evidence", "messages": [{"role": "user", "content": [
        _image_part(a), _image_part(b), {"type": "text", "text": question}]}], "max_tokens": 200}
    r = client.post("/v1/chat/completions", json=req)
    assert r.status_code == 200, r.text
    out = r.json()
    assert set(out) == {"id", "object", "created", "model", "system_fingerprint", "choices", "usage"}
    assert out["object"] == "chat.completion" and out["id"].startswith("chatcmpl-")
    assert out["model"] == "evidence" and isinstance(out["created"], int)
    (choice,) = out["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    expected = load_model("evidence").generate([load_rgb(a), load_rgb(b)], question, max_new_tokens=200)
    assert choice["message"]["content"] == expected and "same person" in expected
    usage = out["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    models = client.get("/v1/models").json()
    assert models["object"] == "list" and models["data"][0]["id"] == "evidence"


@pytest.mark.parametrize("change, status, item", [
    ({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/face.jpg"}},
        {"type": "text", "text": "Describe this image."}]}]}, 400, "messages[0].content[0]"),
    ({"n": 2}, 400, "n"),
    ({"messages": []}, 422, "messages"),
    ({"messages": [{"role": "user", "content": [{"type": "audio"}]}]}, 422, "messages[0].content[0]"),
])
def test_chat_refusals(client: httpx.Client, change: dict, status: int, item: str) -> None:
    req = {"model": "evidence", "messages": [{"role": "user", "content": "Describe this image."}], **change}
    err = error_of(client.post("/v1/chat/completions", json=req), status)
    assert err["item"] == item


def test_facelm_openai_teacher_reads_this_endpoint(client: httpx.Client, url: str,
                                                   portrait_path: Path) -> None:
    """facelm's own OpenAI-compatible client (the `openai` teacher) pointed at this server."""
    teacher = pytest.importorskip("facelm.teacher.openai_teacher", reason="teacher client not built")
    body = {"model": "evidence", "max_tokens": 300, "temperature": 0.7, "messages": [
        {"role": "system", "content": "You are a careful face analyst."},
        {"role": "user", "content": [
            {"type": "text", "text": "Describe the face pose of the person in this photo."},
            {"type": "image_url", "image_url": {"url": teacher.encode_image(str(portrait_path))}}]}]}

    async def ask() -> object:
        t = teacher.OpenAITeacher(teacher.OpenAIConfig(model="evidence", base_url=url + "/v1",
                                                       max_retries=0))
        try:
            return await t.post(body, item=portrait_path.name)
        finally:
            await t.aclose()

    import asyncio
    reply = asyncio.run(ask())
    direct = client.post("/v1/chat/completions", json=body).json()
    assert reply.text == direct["choices"][0]["message"]["content"].strip() != ""
    assert reply.usage["completion_tokens"] == direct["usage"]["completion_tokens"] > 0
