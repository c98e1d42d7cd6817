"""The compressed gallery kind ("pq": 4-bit PQ fast-scan + exact re-ranking) and the open-set
minimum score (facelm.search min_score, `facelm search --min-score`, /v1/search `min_score`)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest

pytest.importorskip("faiss")

from facelm import gallery as gal  # noqa: E402
from facelm.errors import InputFormatError  # noqa: E402
from test_search import PEOPLE, PER_PERSON, gallery_dir, photo, singles  # noqa: E402,F401


def face_like(n: int, seed: int = 0) -> np.ndarray:
    """Unit fused vectors with no cluster structure (as a million different people)."""
    rng = np.random.default_rng(seed)
    halves = [rng.normal(size=(n, 128)).astype(np.float32) for _ in range(2)]
    return gal.fused_vectors(*(h / np.linalg.norm(h, axis=1, keepdims=True) for h in halves))


@pytest.fixture(scope="module")
def pq_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    x = face_like(6000)
    names = [f"p{i}" for i in range(len(x))]
    out = tmp_path_factory.mktemp("pq") / "g"
    g = gal.build_index(x, names, names, out)          # auto: > EXACT_MAX entries
    g.save()
    return out


def recall_at_10(g: gal.Gallery, x: np.ndarray, q: np.ndarray) -> float:
    import faiss
    flat = faiss.IndexFlatIP(gal.DIM)
    flat.add(x)
    _, truth = flat.search(q, 10)
    _, got = g.search(q, 10)
    return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got.tolist(), truth.tolist())]))


def test_auto_picks_pq_above_exact_max_with_tuned_recall(pq_dir):
    meta = json.loads((pq_dir / gal.META_FILE).read_text())["index"]
    assert 6000 > gal.EXACT_MAX and meta["kind"] == "pq" and "PQ128x4fs" in meta["faiss"]
    assert meta["k_factor"] in gal.K_FACTORS and meta["recall_at_10"] >= gal.RECALL_TARGET
    g = gal.load(pq_dir)
    x = face_like(6000)
    q = face_like(100, seed=7)                          # held out: not in the gallery
    assert recall_at_10(g, x, q) >= 0.98
    scores, ids = g.search(q[:5], 3)                    # re-ranked: the scores are exact inner products
    assert np.allclose(scores, np.take_along_axis(q[:5] @ x.T, ids, axis=1), atol=1e-5)


def test_pq_k_factor_is_what_buys_recall(pq_dir):
    """With one candidate a result (no re-ranking depth), 4-bit codes lose most neighbours."""
    g = gal.load(pq_dir)
    x, q = face_like(6000), face_like(100, seed=7)
    g.info = {**g.info, "k_factor": 1}
    g._refine = None
    low = recall_at_10(g, x, q)
    assert low < 0.9, low


def test_pq_add_and_remove_keep_ids_aligned(pq_dir, tmp_path):
    shutil.copytree(pq_dir, tmp_path / "g")
    g = gal.load(tmp_path / "g")
    x = face_like(6000)
    gone = [0, 1, 2, 2999, 5999]
    assert g.remove(gone + [123456]) == len(gone) and len(g) == 6000 - len(gone)
    assert not set(gone) & set(g.entries) and len(g.entries) == len(g)   # metadata follows
    scores, ids = g.search(x[[3, 3000, 5998]], 1)       # each survivor still finds itself
    assert ids[:, 0].tolist() == [3, 3000, 5998] and np.all(scores[:, 0] > 0.999)
    assert not set(gone) & set(g.search(x[gone], 10)[1].ravel().tolist())
    new = g.add(["new"], ["new"], x[:1])                 # the removed vector, under a new id
    g.save()
    g = gal.load(tmp_path / "g")
    assert g.search(x[:1], 1)[1][0, 0] == new[0] == 6000 and len(g) == 6000 - len(gone) + 1
    assert len(g.entries) == len(g) and g.entries[6000]["path"] == "new"


def test_existing_kinds_still_build_and_load(tmp_path):
    x = face_like(2000)
    names = [str(i) for i in range(len(x))]
    for kind in ("exact", "ivf"):
        gal.build_index(x, names, names, tmp_path / kind, kind=kind).save()
        g = gal.load(tmp_path / kind)
        assert g.info["kind"] == kind and g.search(x[5:6], 1)[1][0, 0] == 5
    assert gal.new_index(x[:4000], "auto")[1]["kind"] == "exact"
    with pytest.raises(Exception, match="at least 1000"):
        gal.new_index(x[:500], "pq")


def test_min_score_leaves_out_weaker_matches(lfw_dir, gallery_dir, singles):  # noqa: F811
    import facelm
    probe = str(photo(lfw_dir, PEOPLE[0], PER_PERSON + 1))
    every = facelm.search(probe, str(gallery_dir), k=5, explain=False)
    floor = (every.matches[0].score + every.matches[1].score) / 2
    some = facelm.search(probe, str(gallery_dir), k=5, explain=False, min_score=floor)
    assert [m.id for m in some.matches] == [every.matches[0].id] and some.min_score == floor
    stranger = facelm.search(str(singles[6]), str(gallery_dir), k=3, min_score=0.827)
    assert stranger.matches == () and stranger.best is None and stranger.to_dict()["best_match"] is None
    for bad in (2.0, float("nan"), "x", True):
        with pytest.raises(InputFormatError, match="min_score"):
            facelm.search(probe, str(gallery_dir), min_score=bad)


def test_cli_and_http_min_score(lfw_dir, gallery_dir, singles, capsys):  # noqa: F811
    from facelm.cli import main
    from facelm.serve.background import BackgroundServer
    from facelm.serve.config import ServeConfig
    from facelm.serve.schemas import SearchResult
    stranger = singles[6]
    capsys.readouterr()
    assert main(["search", str(stranger), "--index", str(gallery_dir), "--min-score", "0.827",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["matches"] == [] and out["min_score"] == 0.827 and out["best_match"] is None
    SearchResult.model_validate(out)
    assert main(["search", str(stranger), "--index", str(gallery_dir), "--min-score", "0.827"]) == 0
    assert "not in the gallery" in capsys.readouterr().out
    probe = photo(lfw_dir, PEOPLE[1], PER_PERSON + 1)
    cfg = ServeConfig(port=0, workers=1, queue=4, warm=False, index=str(gallery_dir))
    with BackgroundServer(cfg) as url, httpx.Client(base_url=url, timeout=120) as c:
        files = {"image": (probe.name, probe.read_bytes(), "image/jpeg")}
        body = c.post("/v1/search", files=files, data={"k": "5", "min_score": "0.5"}).json()
        assert body["min_score"] == 0.5 and body["matches"][0]["identity"] == PEOPLE[1]
        floor = body["matches"][0]["score"] - 1e-4
        kept = c.post("/v1/search", files=files, data={"k": "5", "min_score": str(floor)}).json()
        assert len(kept["matches"]) == 1 and kept["matches"][0]["score"] >= floor
        r = c.post("/v1/search", files=files, data={"min_score": "high"})
        assert r.status_code == 422 and r.json()["error"]["item"] == "min_score"
