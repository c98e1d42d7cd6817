"""1:N search (facelm.identify, facelm.gallery): a small gallery of real LFW photos, searched
through the Python API, the CLI and a real HTTP server; scores checked against facelm.compare."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest

pytest.importorskip("faiss")

from facelm import calibration as cal  # noqa: E402
from facelm import gallery as gal  # noqa: E402
from facelm.errors import GalleryError  # noqa: E402

PEOPLE = ("Aaron_Peirsol", "Abdullah", "Adam_Sandler", "Albert_Costa", "Alec_Baldwin")
PER_PERSON = 3          # in the gallery; the 4th photo of each is held out as a probe


def photo(lfw: Path, name: str, n: int) -> Path:
    return lfw / "images" / name / f"{name}_{n:04d}.jpg"


def write_csv(path: Path, rows: list[tuple[Path, str]]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "identity"])
        w.writerows((str(p), ident) for p, ident in rows)
    return path


@pytest.fixture(scope="module")
def singles(lfw_dir: Path) -> list[Path]:
    """Photos of people with one photo in View 1 (never in the gallery)."""
    folders = sorted(d for d in (lfw_dir / "images").iterdir() if len(list(d.iterdir())) == 1)
    return [next(d.iterdir()) for d in folders[:8]]


@pytest.fixture(scope="module")
def gallery_dir(lfw_dir: Path, singles: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from facelm.identify import build_gallery
    tmp = tmp_path_factory.mktemp("search")
    rows = [(photo(lfw_dir, p, n), p) for p in PEOPLE for n in range(1, PER_PERSON + 1)]
    rows += [(s, s.parent.name) for s in singles[:5]]          # 20 photos in all
    out = tmp / "gallery"
    g, failed = build_gallery(write_csv(tmp / "gallery.csv", rows), out, workers=2, progress=False)
    assert len(g) + len(failed) == 20 and len(g) >= 18
    assert g.info["kind"] == "exact"
    return out


@pytest.mark.parametrize("person", PEOPLE[:2])
def test_held_out_photo_finds_its_identity_with_compare_scores(lfw_dir, gallery_dir, person):
    import facelm
    probe = photo(lfw_dir, person, PER_PERSON + 1)
    result = facelm.search(str(probe), str(gallery_dir), k=5)
    assert result.matches[0].identity == person
    scores = [m.score for m in result.matches]
    assert scores == sorted(scores, reverse=True) and len(scores) == 5
    query = facelm.analyze(str(probe), fast=True)
    for m in result.matches[:2]:   # the inner product over the fused vectors IS the fused score
        cmp = facelm.compare(query, m.path, fast=True, explain=False)
        assert abs(cmp.score - m.score) < 1e-5
        assert cmp.same == m.same and abs(cmp.probability - m.probability) < 1e-3
    best = result.best
    assert best is not None and best.explanation.concise and best.explanation.detailed
    assert abs(best.score - result.matches[0].score) < 1e-5 and best.same == result.matches[0].same


def test_non_mated_probe_is_below_threshold(gallery_dir, singles):
    import facelm
    result = facelm.search(str(singles[6]), str(gallery_dir), k=3, explain=False)
    assert result.matches[0].score < cal.THRESHOLD and not result.matches[0].same
    assert result.best is None


def test_add_and_remove_without_rebuild(lfw_dir, gallery_dir, tmp_path):
    from facelm.identify import add_photos, remove_photos, search
    g = tmp_path / "g"
    shutil.copytree(gallery_dir, g)
    before = gal.load(g)
    index_bytes = (g / gal.INDEX_FILE).stat().st_size
    probe = photo(lfw_dir, PEOPLE[2], PER_PERSON + 1)
    ids, failed = add_photos(g, write_csv(tmp_path / "add.csv", [(probe, "held-out")]), progress=False)
    assert len(ids) == 1 and not failed and ids[0] == before.next_id
    top = search(str(probe), g, k=2, explain=False).matches[0]
    assert top.identity == "held-out" and top.score > 0.999    # the same photo
    assert (g / gal.INDEX_FILE).stat().st_size > index_bytes
    assert remove_photos(g, paths=[str(probe)]) == 1
    after = search(str(probe), g, k=2, explain=False).matches
    assert all(m.identity != "held-out" for m in after) and len(gal.load(g)) == len(before)
    first = after[0].id
    assert remove_photos(g, ids=[first]) == 1 and first not in gal.load(g).entries


def test_gallery_writes_are_locked_and_foreign_folders_untouched(lfw_dir, gallery_dir, tmp_path):
    from facelm.errors import FaceLMError
    from facelm.identify import add_photos, build_gallery
    from facelm.outlock import output_lock
    g = tmp_path / "g"
    shutil.copytree(gallery_dir, g)
    probe = write_csv(tmp_path / "add.csv", [(photo(lfw_dir, PEOPLE[2], PER_PERSON + 1), "x")])
    with output_lock(g, folder=True):          # another run holds the gallery
        with pytest.raises(FaceLMError, match="another facelm run|held"):
            add_photos(g, probe, progress=False)
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("keep me")
    with pytest.raises(FaceLMError, match="did not write"):
        build_gallery(probe, user, progress=False)
    assert sorted(p.name for p in user.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("field,value", [("models", "sface"), ("weights", "dlib")])
def test_model_or_weight_mismatch_is_refused(gallery_dir, tmp_path, capsys, field, value):
    from facelm.cli import main
    g = tmp_path / "g"
    shutil.copytree(gallery_dir, g)
    meta = json.loads((g / gal.META_FILE).read_text())
    meta[field][value] = "SFace 2019 [other 0.0]" if field == "models" else 0.5
    (g / gal.META_FILE).write_text(json.dumps(meta))
    with pytest.raises(GalleryError, match="build it again"):
        gal.load(g)
    probe = gal.load(gallery_dir).entries[0]["path"]
    assert main(["search", probe, "--index", str(g)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("facelm: error:") and "\n" not in err and value in err


def test_cli_json_contract(lfw_dir, gallery_dir, capsys):
    from facelm.cli import main
    probe = photo(lfw_dir, PEOPLE[3], PER_PERSON + 1)
    capsys.readouterr()
    assert main(["search", str(probe), "--index", str(gallery_dir), "--k", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)   # ONE JSON object
    assert out["schema_version"] == 1 and len(out["matches"]) == 3
    scores = [m["score"] for m in out["matches"]]
    assert scores == sorted(scores, reverse=True)
    for m in out["matches"]:
        assert {"path", "identity", "score", "same", "verdict", "probability"} <= set(m)
        assert m["verdict"] == ("same" if m["score"] >= cal.THRESHOLD else "different")
    assert out["matches"][0]["identity"] == PEOPLE[3]
    assert out["best_match"]["explanation"]["concise"]
    from facelm.serve.schemas import SearchResult
    SearchResult.model_validate(out)


def test_cli_index_build_from_a_folder_names_by_file_stem(lfw_dir, tmp_path, capsys):
    from facelm.cli import main
    folder = tmp_path / "photos"
    folder.mkdir()
    for n in (1, 2):
        (folder / f"person{n}.jpg").symlink_to(photo(lfw_dir, PEOPLE[0], n))
    assert main(["index", "build", "--images", str(folder), "--out", str(tmp_path / "g")]) == 0
    g = gal.load(tmp_path / "g")
    assert sorted(e["identity"] for e in g.entries.values()) == ["person1", "person2"]
    meta = json.loads((tmp_path / "g" / gal.META_FILE).read_text())
    assert meta["models"] == gal.current_models() and meta["index"]["kind"] == "exact"
    assert meta["weights"] == {"sface": cal.W_SFACE, "dlib": cal.W_DLIB} and meta["facelm_version"]
    assert main(["index", "remove", "--index", str(tmp_path / "g"), "--ids", "0"]) == 0
    assert [e["identity"] for e in gal.load(tmp_path / "g").entries.values()] == ["person2"]
    assert "1 photos removed" in capsys.readouterr().err


def test_fused_vectors_reproduce_fused_score():
    from facelm.verify import fused_score
    rng = np.random.default_rng(0)
    s, d = (rng.normal(size=(2, 128)) for _ in range(2))
    s /= np.linalg.norm(s, axis=1, keepdims=True)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    v = gal.fused_vectors(s, d)
    assert abs(float(v[0] @ v[1]) - fused_score(float(s[0] @ s[1]), float(d[0] @ d[1]))) < 1e-6


def test_ivf_gallery_states_recall_and_adds_and_removes(tmp_path):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(200, gal.DIM)).astype(np.float32)
    x = centres[rng.integers(0, 200, 5000)] + 0.3 * rng.normal(size=(5000, gal.DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    names = [f"p{i}" for i in range(len(x))]
    g = gal.build_index(x, names, names, tmp_path / "g", kind="ivf")
    assert g.info["kind"] == "ivf" and g.info["recall_at_10"] >= gal.RECALL_TARGET
    g.save()
    g = gal.load(tmp_path / "g")
    assert g.index.nprobe == g.info["nprobe"]
    g.add(["new"], ["new"], x[:1])
    _, ids = g.search(x[:1], 2)
    assert g.next_id - 1 in ids[0].tolist()
    assert g.remove([0, g.next_id - 1]) == 2 and len(g) == 4999


def test_http_search(lfw_dir, gallery_dir):
    import base64
    from facelm.serve.background import BackgroundServer
    from facelm.serve.config import ServeConfig
    probe = photo(lfw_dir, PEOPLE[4], PER_PERSON + 1)
    cfg = ServeConfig(port=0, workers=1, queue=4, warm=False, index=str(gallery_dir))
    with BackgroundServer(cfg) as url, httpx.Client(base_url=url, timeout=120) as c:
        r = c.post("/v1/search", files={"image": (probe.name, probe.read_bytes(), "image/jpeg")},
                   data={"k": "2"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["matches"]) == 2 and body["matches"][0]["identity"] == PEOPLE[4]
        from facelm.serve.schemas import SearchResult
        SearchResult.model_validate(body)
        r = c.post("/v1/search", json={"image": base64.b64encode(probe.read_bytes()).decode(), "k": 1})
        assert r.status_code == 200 and r.json()["matches"][0]["score"] == body["matches"][0]["score"]
        assert c.post("/v1/search", json={"image": "", "k": 0}).status_code == 422
        assert "/v1/search" in c.get("/openapi.json").json()["paths"]
    with BackgroundServer(ServeConfig(port=0, workers=1, queue=4, warm=False)) as url:
        r = httpx.post(url + "/v1/search", files={"image": (probe.name, probe.read_bytes())}, timeout=60)
        assert r.status_code == 503 and r.json()["error"]["type"] == "index_not_configured"
