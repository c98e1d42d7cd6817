"""`facelm data pairs`: pair sampling with hard negatives, VerLM-style explanations whose stated
verdict must match the label, the two-step recipe, and resampling guards."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from facelm.cli import main
from facelm.data.pair_job import PairsConfig, analyse_many, run_pairs
from facelm.data.pairs import group_of, identity_vector, sample_pairs
from facelm.data.schema import PAIR_QUESTIONS, read_records
from facelm.data.sources import read_labels
from facelm.errors import InputFormatError
from facelm.teacher.chat_server import ChatServer, ServerConfig
from facelm.teacher.checks import stated_verdict
from facelm.teacher.registry import TeacherSpec


@pytest.fixture(scope="module")
def faceapi(faceapi_dir: Path):
    images = [img for img in read_labels(faceapi_dir / "labels.csv", faceapi_dir) if img.identity]
    return images, analyse_many([img.path for img in images], progress=False)


def _sim(analyses, images, pair) -> float:
    by_file = {img.file: img for img in images}
    a, b = (analyses[by_file[f].path] for f in (pair.file_a, pair.file_b))
    return float(identity_vector(a) @ identity_vector(b))


def test_sampling_is_balanced_seeded_and_hard_negatives_are_harder(faceapi):
    images, analyses = faceapi
    assert len(images) == 40 and len({i.identity for i in images}) == 8
    hard = sample_pairs(images, 30, seed=1, hard=True, analyse=lambda paths: analyses)
    again = sample_pairs(images, 30, seed=1, hard=True, analyse=lambda paths: analyses)
    rand = sample_pairs(images, 30, seed=1)
    assert hard == again and rand != sample_pairs(images, 30, seed=2)
    for pairs in (hard, rand):
        assert len(pairs) == 30 and sum(p.same for p in pairs) == 15
        assert len({tuple(sorted((p.file_a, p.file_b))) for p in pairs}) == 30
        assert all((p.id_a == p.id_b) == p.same for p in pairs)
    # each same pair from one person; the 15 spread over all 8 people (round-robin)
    assert len({p.id_a for p in hard if p.same}) == 8
    hard_neg = [_sim(analyses, images, p) for p in hard if not p.same]
    rand_neg = [_sim(analyses, images, p) for p in rand if not p.same]
    assert np.mean(hard_neg) > np.mean(rand_neg) + 0.05


def test_same_group_hard_negatives_share_gender_and_age_group(faceapi):
    images, analyses = faceapi
    pairs = sample_pairs(images, 20, seed=0, hard=True, same_group=True,
                         analyse=lambda paths: analyses)
    by_file = {img.file: img for img in images}
    first = {}
    for img in images:   # the group of an identity is taken from its first photo
        first.setdefault(img.identity, group_of(img, analyses[img.path]))
    negatives = [p for p in pairs if not p.same]
    assert negatives
    for p in negatives:
        assert first[by_file[p.file_a].identity] == first[by_file[p.file_b].identity]


def _pairs_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["file_a", "file_b", "same"])
        w.writeheader()
        w.writerows({k: r[k] for k in ("file_a", "file_b", "same")} for r in rows)
    return path


def test_evidence_explanations_state_the_label_or_are_dropped(tmp_path, lfw_dir, lfw_pairs):
    test = [r for r in lfw_pairs if r["set"] == "view1_test"]
    rows = [r for r in test if r["same"] == "1"][:3] + [r for r in test if r["same"] == "0"][:3]
    out = tmp_path / "pairs"
    rc = main(["data", "pairs", "--pairs", str(_pairs_csv(tmp_path / "p.csv", rows)),
               "--images", str(lfw_dir), "--out", str(out), "--teacher", "evidence", "--quiet"])
    assert rc == 0
    recs = list(read_records(out))
    m = json.loads((out / "manifest.json").read_text())
    assert m["steps"] == "one" and m["pairs"] == {"total": 6, "same": 3, "kinds": {"given": 6}}
    assert len(recs) + m["counts"]["verdict_contradictions"] == 12 and len(recs) >= 8
    for r in recs:
        assert stated_verdict(r.answer) is r.same
        assert r.question == PAIR_QUESTIONS[r.tier] and r.labels["same"] is r.same
    by_pair: dict = {}
    for r in recs:
        by_pair.setdefault(r.images, {})[r.tier] = len(r.answer.split())
    for tiers in by_pair.values():
        if len(tiers) == 2:
            assert tiers["concise"] < tiers["detailed"]


def test_two_step_describes_each_photo_once_and_drops_contradictions(tmp_path, lfw_dir):
    people = sorted(p.name for p in (lfw_dir / "images").iterdir()
                    if len(list(p.iterdir())) >= 3)[:2]
    a1, a2, a3 = (f"images/{people[0]}/{people[0]}_000{i}.jpg" for i in (1, 2, 3))
    b1 = f"images/{people[1]}/{people[1]}_0001.jpg"
    rows = [{"file_a": a1, "file_b": a2, "same": 1}, {"file_a": a1, "file_b": a3, "same": 1},
            {"file_a": a2, "file_b": b1, "same": 0}, {"file_a": a3, "file_b": b1, "same": 0}]
    pairs = _pairs_csv(tmp_path / "p.csv", rows)
    with ChatServer() as server:
        spec = TeacherSpec(name="openai", model="gpt-4o", base_url=server.url)
        m = run_pairs(PairsConfig(images=str(lfw_dir), out=str(tmp_path / "ok"), pairs=str(pairs),
                                  teacher=spec, concurrency=4), progress=False)
        kinds = [len(b["messages"][1]["content"]) for b in server.requests]
    # 4 photos described once each (1 image), then 8 text-only comparisons
    assert sorted(kinds) == [1] * 8 + [2] * 4
    assert m["steps"] == "two" and m["counts"]["records"] == 8
    assert len((tmp_path / "ok" / "descriptions.jsonl").read_text().splitlines()) == 4
    assert all(stated_verdict(r.answer) is r.same for r in read_records(tmp_path / "ok"))

    with ChatServer(ServerConfig(invert_verdict=True)) as server:
        spec = TeacherSpec(name="openai", model="gpt-4o", base_url=server.url)
        m = run_pairs(PairsConfig(images=str(lfw_dir), out=str(tmp_path / "bad"), pairs=str(pairs),
                                  teacher=spec, two_step=False), progress=False)
    assert m["counts"]["records"] == 0 and m["counts"]["verdict_contradictions"] == 8
    assert m["counts"]["failure_reasons"] == {"verdict_contradiction": 8}


def test_a_rerun_reuses_its_sample_and_refuses_other_options(tmp_path, faceapi_dir):
    with ChatServer() as server:
        spec = TeacherSpec(name="openai", model="gpt-4o", base_url=server.url)
        cfg = PairsConfig(images=str(faceapi_dir), out=str(tmp_path / "o"),
                          labels=str(faceapi_dir / "labels.csv"), teacher=spec, n_pairs=6,
                          two_step=False, tiers=("concise",))
        first = run_pairs(cfg, progress=False)
        again = run_pairs(cfg, progress=False)
        with pytest.raises(InputFormatError, match="sampled with"):
            run_pairs(PairsConfig(**{**cfg.__dict__, "n_pairs": 8}), progress=False)
    assert first["counts"]["records"] == 6 and again["runs"][-1]["skipped"] == 6
    assert again["runs"][-1]["requests"] == 0
    assert (tmp_path / "o" / "pairs.csv").read_text().count("\n") == 7
