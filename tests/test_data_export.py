"""`facelm data export`: LLaMA-Factory, ms-swift and Hugging Face datasets exports load back, with
splits by identity."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from facelm.cli import main
from facelm.data.export import split_by_identity
from facelm.data.schema import Record, read_records
from facelm.teacher.chat_server import ChatServer


@pytest.fixture(scope="module")
def pair_dataset(tmp_path_factory, faceapi_dir: Path) -> Path:
    """A small pairs dataset over 8 people (answers from the local chat server)."""
    out = tmp_path_factory.mktemp("ds") / "faceapi_pairs"
    with ChatServer() as server:
        rc = main(["data", "pairs", "--labels", str(faceapi_dir / "labels.csv"), "--images",
                   str(faceapi_dir), "--out", str(out), "--teacher", "openai", "--model", "m",
                   "--base-url", server.url, "--n-pairs", "40", "--steps", "one", "--quiet"])
    assert rc == 0
    return out


def _people(examples: list[dict], id_of: dict[str, tuple]) -> set[str]:
    return {p for e in examples for p in id_of[tuple(e["images"])]}


def test_llamafactory_export(pair_dataset, tmp_path):
    dest = tmp_path / "lf"
    assert main(["data", "export", str(pair_dataset), "--format", "llamafactory", "--to",
                 str(dest), "--test-fraction", "0.25"]) == 0
    info = json.loads((dest / "dataset_info.json").read_text())
    assert set(info) == {"faceapi_pairs_train", "faceapi_pairs_test"}
    entry = info["faceapi_pairs_train"]
    assert entry["formatting"] == "sharegpt"
    assert entry["columns"] == {"messages": "conversations", "images": "images"}
    train = json.loads((dest / entry["file_name"]).read_text())
    test = json.loads((dest / info["faceapi_pairs_test"]["file_name"]).read_text())
    recs = list(read_records(pair_dataset))
    id_of = {r.images: set(r.identities) for r in recs}
    assert train and test and len(train) + len(test) <= len(recs)
    assert not _people(train, id_of) & _people(test, id_of)   # nobody in both splits
    ex = train[0]
    assert [t["from"] for t in ex["conversations"]] == ["human", "gpt"]
    assert ex["conversations"][0]["value"].startswith("<image><image>Do these two")
    assert len(ex["images"]) == 2 and all(Path(p).is_file() for p in ex["images"])
    # a second export into the same folder keeps other datasets' entries
    info["other"] = {"file_name": "other.json"}
    (dest / "dataset_info.json").write_text(json.dumps(info))
    main(["data", "export", str(pair_dataset), "--format", "llamafactory", "--to", str(dest),
          "--name", "again"])
    assert {"other", "again_train", "faceapi_pairs_train"} <= set(
        json.loads((dest / "dataset_info.json").read_text()))


def test_swift_export(pair_dataset, tmp_path):
    dest = tmp_path / "swift"
    assert main(["data", "export", str(pair_dataset), "--format", "swift", "--to", str(dest)]) == 0
    rows = [json.loads(line) for line in (dest / "faceapi_pairs" / "train.jsonl").read_text().splitlines()]
    rows_test = [json.loads(line) for line in
                 (dest / "faceapi_pairs" / "test.jsonl").read_text().splitlines()]
    assert rows and rows_test
    ex = rows[0]
    assert [m["role"] for m in ex["messages"]] == ["user", "assistant"]
    assert ex["messages"][0]["content"].count("<image>") == len(ex["images"]) == 2
    assert "same person" in ex["messages"][1]["content"] or "different" in ex["messages"][1]["content"]


def test_hf_export_loads_with_image_feature(pair_dataset, tmp_path):
    import datasets
    dest = tmp_path / "hf"
    assert main(["data", "export", str(pair_dataset), "--format", "hf", "--to", str(dest)]) == 0
    ds = datasets.load_dataset("parquet", data_dir=str(dest / "faceapi_pairs" / "data"))
    assert set(ds) == {"train", "test"}
    assert isinstance(ds["train"].features["images"].feature, datasets.Image)
    row = ds["train"][0]
    assert row["kind"] == "pair" and len(row["images"]) == 2
    assert row["images"][0].size[0] > 50          # decoded photo, embedded bytes
    n = len(list(read_records(pair_dataset)))
    marker = json.loads((dest / "faceapi_pairs" / "facelm_export.json").read_text())
    summary = marker["exports"]["hf"]["summary"]
    assert ds["train"].num_rows + ds["test"].num_rows + summary["dropped"] == n


def test_split_by_identity_on_single_face_records():
    recs = [Record(id=f"{i}#pose", kind="qa", images=(f"/x/{i}.jpg",), question="q", answer="a",
                   identities=(f"p{i % 10}",)) for i in range(100)]
    train, test, dropped = split_by_identity(recs, 0.2, seed=0)
    assert dropped == 0 and len(test) == 20 and len(train) == 80
    assert not {r.identities for r in train} & {r.identities for r in test}
    assert split_by_identity(recs, 0.2, seed=0) == (train, test, 0)


def test_atomic_writes_leave_no_temporary_file_and_replace_whole(tmp_path):
    """Manifests, exports, the converted models and the feature cache all write through this."""
    from facelm.atomic import write_atomic
    target = tmp_path / "manifest.json"
    write_atomic(target, "old")
    write_atomic(target, "new ✓")
    write_atomic(tmp_path / "model.onnx", b"\x00\x01", fsync=False)
    assert target.read_text(encoding="utf-8") == "new ✓"
    assert (tmp_path / "model.onnx").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", "model.onnx"]
