"""Stable contracts (issue 15, items 5 and 7) on a real server and the real CLI, with real photos:
every output carries `schema_version` and `facelm_version`; /openapi.json documents every field of
every response, and the CLI's JSON validates against the same models; JSONL files keep resuming
(old unstamped ones too); `"stream": true` chat completions work with the official `openai` client.
"""
from __future__ import annotations

import base64
import csv
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

import facelm
from facelm.batch import BatchConfig, run, scan_output
from facelm.data.schema import Record, read_records
from facelm.data.store import MANIFEST, RECORDS, DatasetStore, read_manifest
from facelm.schema_version import SCHEMA_VERSION, STAMP_KEYS
from facelm.serve import schemas
from facelm.serve.background import BackgroundServer
from facelm.serve.config import ServeConfig

STAMP = {"schema_version": SCHEMA_VERSION, "facelm_version": facelm.__version__}


@pytest.fixture(scope="module")
def url() -> str:
    with BackgroundServer(ServeConfig(port=0, workers=1, queue=4)) as base:
        yield base


@pytest.fixture(scope="module")
def client(url: str) -> httpx.Client:
    with httpx.Client(base_url=url, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def openapi(client: httpx.Client) -> dict[str, Any]:
    return client.get("/openapi.json").json()


@pytest.fixture(scope="module")
def pair(lfw_dir: Path, lfw_pairs: list[dict]) -> tuple[Path, Path]:
    row = next(r for r in lfw_pairs if r["same"] == "1")
    return lfw_dir / row["file_a"], lfw_dir / row["file_b"]


def cli(capsys: pytest.CaptureFixture, *args: str) -> dict[str, Any]:
    from facelm.cli import main
    capsys.readouterr()
    assert main(list(args)) == 0
    return json.loads(capsys.readouterr().out)


def undocumented(value: Any, schema: dict[str, Any], doc: dict[str, Any], at: str = "") -> list[str]:
    """Paths of the fields in `value` that the served OpenAPI `schema` does not name."""
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    if "anyOf" in schema:  # Optional / unions: the best-fitting branch
        return min((undocumented(value, s, doc, at) for s in schema["anyOf"]), key=len)
    if isinstance(value, dict) and schema.get("type") == "object":
        props, extra = schema.get("properties", {}), schema.get("additionalProperties", True)
        out = []
        for k, v in value.items():
            if k in props:
                out += undocumented(v, props[k], doc, f"{at}.{k}")
            elif isinstance(extra, dict):
                out += undocumented(v, extra, doc, f"{at}.{k}")
            elif extra is False or not props:  # an object the schema leaves without fields
                out.append(f"{at}.{k}")
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [p for i, v in enumerate(value) for p in undocumented(v, schema["items"], doc, f"{at}[{i}]")]
    return []


def response_schema(doc: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    return doc["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]


# ---- item 5: the schema and the stamp ----

def test_cli_json_validates_against_the_served_schema(capsys, pair, openapi) -> None:
    a, b = pair
    analysis = cli(capsys, "analyze", str(a))
    verdict = cli(capsys, "verify", str(a), str(b), "--json")
    for out in (analysis, verdict):
        assert list(out)[-2:] == list(STAMP) and {k: out[k] for k in STAMP} == STAMP
    schemas.AnalyzeResult.model_validate(analysis)   # closed models: unknown fields fail
    schemas.VerifyResult.model_validate(verdict)
    assert undocumented(verdict, response_schema(openapi, "/v1/verify", "post"), openapi) == []
    # the same JSON, less one documented field, or with one field too many, is refused
    with pytest.raises(ValidationError):
        schemas.VerifyResult.model_validate({k: v for k, v in verdict.items() if k != "score"})
    with pytest.raises(ValidationError):
        schemas.AnalyzeResult.model_validate({**analysis, "surprise": 1})
    assert undocumented({**verdict, "surprise": 1}, response_schema(openapi, "/v1/verify", "post"),
                        openapi) == [".surprise"]


def test_every_response_is_documented_field_by_field(client, openapi, pair, portrait_path) -> None:
    a, b = pair
    b64 = base64.b64encode(portrait_path.read_bytes()).decode()
    calls = {
        ("/healthz", "get"): (client.get("/healthz"), schemas.Health),
        ("/v1/aspects", "get"): (client.get("/v1/aspects"), schemas.AspectList),
        ("/v1/verify", "post"): (client.post("/v1/verify", files={
            "image_a": (a.name, a.read_bytes()), "image_b": (b.name, b.read_bytes())}), schemas.VerifyResult),
        ("/v1/describe", "post"): (client.post("/v1/describe", json={"image": b64}), schemas.DescribeResult),
        ("/v1/models", "get"): (client.get("/v1/models"), schemas.ModelList),
        ("/v1/chat/completions", "post"): (client.post("/v1/chat/completions", json={
            "messages": [{"role": "user", "content": "Describe this image."}]}), schemas.ChatCompletion),
    }
    for (path, method), (r, model) in calls.items():
        assert r.status_code == 200, (path, r.text)
        schema = response_schema(openapi, path, method)
        for ref in (s["$ref"] for s in schema.get("anyOf", [schema])):  # none an empty schema
            assert openapi["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"], path
        assert undocumented(r.json(), schema, openapi) == [], path
        model.model_validate(r.json())
        if not path.startswith("/v1/chat") and path != "/v1/models":  # OpenAI's layout: no stamp
            assert {k: r.json()[k] for k in STAMP} == STAMP, path
    stream = openapi["paths"]["/v1/chat/completions"]["post"]["responses"]["200"]["content"]
    assert "delta" in json.dumps(stream["text/event-stream"]["schema"])


def test_batch_records_stamped_after_the_key_and_old_files_resume(tmp_path, lfw_dir, pair) -> None:
    a, b = pair
    pairs = tmp_path / "pairs.csv"
    with open(pairs, "w", newline="") as f:
        csv.writer(f).writerows([["file_a", "file_b", "schema_version"],
                                 [str(a), str(b), "mine"], [str(a), str(lfw_dir / "missing.jpg"), "x"]])
    out = tmp_path / "out.jsonl"
    assert run(BatchConfig(pairs=pairs, out=out, workers=1), progress=False).done == 2
    lines = out.read_text().splitlines()
    recs = [json.loads(line) for line in lines]
    assert [list(r)[0] for r in recs] == ["index", "index"] and list(recs[1])[1] == "error"
    assert all(list(r)[-2:] == list(STAMP) and r["schema_version"] == SCHEMA_VERSION for r in recs)
    assert recs[0]["input_schema_version"] == "mine"  # a CSV column never overwrites the stamp
    # the resume fast path still reads index and error from each line's first bytes
    assert scan_output(out, 2) == ({0, 1}, {1: 2})
    # a file written before the stamp existed resumes as it is
    out.write_text("".join(json.dumps({k: v for k, v in r.items() if k not in STAMP_KEYS}) + "\n"
                           for r in recs))
    assert scan_output(out, 2) == ({0, 1}, {1: 2})
    assert run(BatchConfig(pairs=pairs, out=out, workers=1), progress=False).skipped == 2


def test_dataset_records_and_manifest_are_stamped_and_read_back(tmp_path) -> None:
    rec = Record(id="q1", kind="qa", images=("a.jpg",), question="Describe.", answer="A face.",
                 aspect="general")
    old = {**rec.to_dict(), "id": "q0"}
    (tmp_path / RECORDS).write_text(json.dumps(old) + "\n")  # written before the stamp
    store = DatasetStore(tmp_path)
    assert store.done_ids == {"q0"}
    store.add_record(rec)
    store.add_failure("q2", "refused", "no")
    store.write_manifest({"kind": "qa", "status": "done"})
    store.close()
    last = json.loads((tmp_path / RECORDS).read_text().splitlines()[-1])
    assert list(last)[0] == "id" and list(last)[-2:] == list(STAMP) and last["schema_version"] == 1
    assert [r.id for r in read_records(tmp_path)] == ["q0", "q1"]
    assert DatasetStore(tmp_path).done_ids == {"q0", "q1"}  # resumes through the fast path
    assert read_manifest(tmp_path)["facelm_version"] == facelm.__version__
    assert json.loads((tmp_path / "failures.jsonl").read_text())["schema_version"] == 1
    assert json.loads((tmp_path / MANIFEST).read_text())["kind"] == "qa"


# ---- item 7: streaming, with the official openai client ----

@pytest.fixture(scope="module")
def openai_client(url: str) -> Any:
    openai = pytest.importorskip("openai", reason="the test extra installs the openai client")
    return openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)


def _ask(portrait_path: Path) -> list[dict[str, Any]]:
    data = base64.b64encode(portrait_path.read_bytes()).decode()
    return [{"role": "system", "content": "You are a careful face analyst."},
            {"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{data}"}},
                {"type": "text", "text": "Describe the face pose of the person in this image."}]}]


def test_openai_client_streams_the_same_answer_with_usage(openai_client, portrait_path) -> None:
    messages = _ask(portrait_path)
    whole = openai_client.chat.completions.create(model="evidence", messages=messages)
    text = whole.choices[0].message.content
    assert len(text.split()) > 3
    chunks = list(openai_client.chat.completions.create(model="evidence", messages=messages,
                                                       stream=True))
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == text
    assert len(chunks) > 3  # word-sized deltas, not one block
    assert [c.choices[0].finish_reason for c in chunks][-1] == "stop"
    assert all(c.usage is None for c in chunks)
    with_usage = list(openai_client.chat.completions.create(
        model="evidence", messages=messages, stream=True, stream_options={"include_usage": True}))
    assert with_usage[-1].choices == [] and with_usage[-1].usage == whole.usage
    assert with_usage[-2].choices[0].finish_reason == "stop" and with_usage[-2].usage is None


def test_stream_wire_format_and_refusals(client, openai_client, portrait_path) -> None:
    import openai
    body = {"model": "evidence", "messages": _ask(portrait_path), "stream": True,
            "stream_options": {"include_usage": True}}
    with client.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        raw = r.read().decode()
    events = raw.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""] and all(e.startswith("data: ") for e in events[:-1])
    for e in events[:-2]:
        schemas.ChatCompletionChunk.model_validate(json.loads(e[len("data: "):]))
    with pytest.raises(openai.BadRequestError, match="one choice"):
        openai_client.chat.completions.create(model="evidence", messages=_ask(portrait_path),
                                              stream=True, n=2)
    # an error found before the answer is a JSON error with its status, not a broken stream
    r = client.post("/v1/chat/completions", json={**body, "messages": []})
    assert r.status_code == 422 and r.json()["error"]["item"] == "messages"
