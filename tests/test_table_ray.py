"""The analysis table (facelm.table) and its engines (facelm.engines): Parquet round trip readable by
pandas and `datasets`, resume after kill -9, and Ray Data giving the local pool's results bit for
bit, also when an actor dies mid-job. Real LFW photos throughout."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from facelm.batch import BatchConfig, run
from facelm.errors import FaceLMError, InputFormatError
from facelm.table import analyze_to_parquet, list_images, read_embeddings, read_table


@pytest.fixture(scope="module")
def photos(lfw_dir: Path) -> list[str]:
    return [str(p) for p in sorted(lfw_dir.glob("images/A*/*.jpg"))[:20]]


@pytest.fixture(scope="module")
def local_table(photos, tmp_path_factory) -> Path:
    """The local pool's table of the 20 photos plus a missing one (identity-only)."""
    out = tmp_path_factory.mktemp("local") / "t.parquet"
    s = analyze_to_parquet(photos + ["/no/such/photo.jpg"], out, workers=2, progress=False)
    assert s == {"total": 21, "skipped": 0, "done": 21, "failed": 1}
    return out


def _rows(out: Path) -> list[dict]:
    return read_table(out).to_pylist()


def test_round_trip_is_read_by_pandas_and_datasets(local_table, photos, tmp_path):
    import datasets
    import pandas as pd
    from facelm.faces.analysis import analyse_or_error
    paths, sface, dlib, ok = read_embeddings(local_table)
    assert paths == sorted(photos + ["/no/such/photo.jpg"]) and sface.dtype == dlib.dtype == np.float32
    # where the missing photo sorts depends on where ../shared lives, so find it by name
    assert sface.shape == dlib.shape == (21, 128) and ok.sum() == 20
    assert not ok[paths.index("/no/such/photo.jpg")]
    fa = analyse_or_error(photos[3], fast=True)   # the table holds the analysis, as float32
    i = paths.index(photos[3])
    assert np.array_equal(sface[i], np.float32(fa.embeddings["sface"]))
    assert np.array_equal(dlib[i], np.float32(fa.embeddings["dlib"]))
    df = pd.read_parquet(local_table)
    assert len(df) == 21 and set(df.path) == set(paths)
    bad = df[df.path == "/no/such/photo.jpg"].iloc[0]
    assert "photo.jpg" in bad.error and bad.sface is None
    ds = datasets.load_dataset("parquet", data_files=str(local_table / "*.parquet"), split="train",
                               cache_dir=str(tmp_path / "hf"))
    assert ds.num_rows == 21 and sorted(ds["path"]) == paths
    row = next(r for r in ds if r["path"] == photos[3])
    assert len(row["sface"]) == 128 and row["pose"]["yaw"] is not None
    assert json.loads(row["models"])["embeddings.sface"]
    again = analyze_to_parquet(photos, local_table, progress=False)   # resumed: nothing to do
    assert again == {"total": 20, "skipped": 20, "done": 0, "failed": 0}


def test_full_analysis_has_attributes_and_list_images_reads_folders_and_csvs(photos, tmp_path):
    folder = tmp_path / "photos" / "sub"
    folder.mkdir(parents=True)
    for p in photos[:3]:
        shutil.copy(p, folder / Path(p).name)
    (folder / "notes.txt").write_text("not a photo")
    listed = list_images(tmp_path / "photos")
    assert listed == sorted(str(folder / Path(p).name) for p in photos[:3])
    csv = tmp_path / "photos.csv"
    csv.write_text("file,identity\nphotos/sub/" + Path(photos[0]).name + ",x\n")
    assert list_images(csv) == [listed[0]]
    out = tmp_path / "full.parquet"
    analyze_to_parquet(tmp_path / "photos", out, fast=False, workers=1, progress=False)
    row = _rows(out)[0]
    assert row["attributes"]["gender"] in ("male", "female") and 0 < row["attributes"]["age"] < 100
    with pytest.raises(InputFormatError, match="identity-only"):   # no mixed tables
        analyze_to_parquet(tmp_path / "photos", out, fast=True, progress=False)


def test_duckdb_reads_the_table(local_table):
    duckdb = pytest.importorskip("duckdb")
    n, ok, dim = duckdb.sql(f"SELECT count(*), count(*) - count(error), max(len(sface)) "
                            f"FROM '{local_table}/*.parquet'").fetchall()[0]
    assert (n, ok, dim) == (21, 20, 128)


def test_cli_analyze_images_and_a_one_line_error_without_ray(photos, tmp_path, monkeypatch, capsys):
    from facelm.cli import main
    csv = tmp_path / "photos.csv"
    csv.write_text("file\n" + "".join(p + "\n" for p in photos[:2]))
    out = tmp_path / "cli.parquet"
    assert main(["analyze", "--images", str(csv), "--out", str(out), "--fast", "--workers", "1"]) == 0
    assert "2 photos written" in capsys.readouterr().err and len(_rows(out)) == 2
    monkeypatch.setitem(sys.modules, "ray", None)   # as if Ray were not installed
    assert main(["analyze", "--images", str(csv), "--out", str(tmp_path / "r.parquet"), "--fast",
                 "--engine", "ray"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "setup.sh --scale" in err[0] and "facelm[scale]" in err[0]


def test_refuses_an_out_that_is_not_a_facelm_table(photos, tmp_path):
    f = tmp_path / "x.parquet"
    f.write_bytes(b"PAR1 someone else's")
    folder = tmp_path / "y.parquet"
    folder.mkdir()
    (folder / "data.csv").write_text("a,b\n")
    for out in (f, folder):
        with pytest.raises(InputFormatError, match="left unchanged"):
            analyze_to_parquet(photos[:1], out, progress=False)
    assert f.read_bytes() == b"PAR1 someone else's" and os.listdir(folder) == ["data.csv"]
    with pytest.raises(FaceLMError, match="--engine ray"):
        analyze_to_parquet(photos[:1], tmp_path / "z.parquet", address="auto", progress=False)


def test_resume_after_kill_9_loses_and_duplicates_nothing(lfw_dir, local_table, tmp_path):
    photos = [str(p) for p in sorted(lfw_dir.glob("images/B*/*.jpg"))[:40]]
    out = tmp_path / "k.parquet"
    code = ("import sys; from pathlib import Path; from facelm.table import analyze_to_parquet; "
            "analyze_to_parquet(sys.argv[2:], Path(sys.argv[1]), workers=2, part_rows=4, progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(out), *photos])
    deadline = time.monotonic() + 120
    while len(list(out.glob("part-*.parquet"))) < 2 and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "finished before the kill: the test proves nothing"
    kept = {p.name: p.read_bytes() for p in out.glob("part-*.parquet")}
    before = {r["path"] for r in _rows(out)}
    assert 0 < len(before) < len(photos)
    s = analyze_to_parquet(photos, out, workers=2, progress=False)   # the lock died with the run
    assert s["skipped"] == len(before) and s["done"] == len(photos) - len(before)
    rows = _rows(out)
    assert sorted(r["path"] for r in rows) == sorted(photos)   # each once
    assert all((out / n).read_bytes() == b for n, b in kept.items())   # finished parts untouched
    assert not list(out.glob(".part-*"))


def test_verify_pairs_reads_embeddings_from_the_table(local_table, photos, tmp_path):
    root = Path(photos[0]).parents[2]
    rel = [str(Path(p).relative_to(root)) for p in photos]
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("file_a,file_b\n" + "".join(f"{rel[i]},{rel[i + 1]}\n" for i in range(0, 10, 2))
                     + f"{rel[0]},images/nobody/missing.jpg\n")
    table_out, fresh_out = tmp_path / "t.jsonl", tmp_path / "f.jsonl"
    run(BatchConfig(pairs=pairs, out=table_out, root=root, embeddings=local_table), progress=False)
    run(BatchConfig(pairs=pairs, out=fresh_out, root=root, workers=1, fast=True), progress=False)
    got, want = ([json.loads(x) for x in o.read_text().splitlines()] for o in (table_out, fresh_out))
    assert "missing.jpg: not in the embeddings table" in got[-1]["error"]
    for g, w in zip(got[:-1], want[:-1]):
        assert g["same"] == w["same"] and g["model_verdicts"] == w["model_verdicts"]
        assert abs(g["score"] - w["score"]) <= 1e-4 and "explanation" not in g


# --- Ray -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory, photos):
    """One local Ray cluster (2 CPUs) for the module. Its workers inherit FACELM_TEST_EXIT_ON, which
    makes the actor that reaches one photo (a copy only the kill test uses) die once."""
    ray = pytest.importorskip("ray")
    victim_dir = tmp_path_factory.mktemp("victim")
    victim = victim_dir / "victim.jpg"
    shutil.copy(photos[5], victim)
    os.environ["FACELM_TEST_EXIT_ON"] = f"{victim}|{victim_dir / 'crashed'}"
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield victim
    ray.shutdown()
    os.environ.pop("FACELM_TEST_EXIT_ON", None)


def test_ray_engine_equals_the_local_pool_bit_for_bit(ray_cluster, local_table, photos, tmp_path):
    out = tmp_path / "ray.parquet"
    s = analyze_to_parquet(photos + ["/no/such/photo.jpg"], out, workers=2, engine="ray",
                           progress=False)
    assert s == {"total": 21, "skipped": 0, "done": 21, "failed": 1}
    assert _rows(out) == _rows(local_table)   # every column, embeddings included
    a, b = read_embeddings(out), read_embeddings(local_table)
    assert all(np.array_equal(x, y) for x, y in zip(a[1:], b[1:])) and a[0] == b[0]


def test_ray_actor_killed_mid_job_loses_and_duplicates_nothing(ray_cluster, local_table, photos,
                                                               tmp_path):
    victim = ray_cluster
    marker = victim.parent / "crashed"
    todo = photos[:12] + [str(victim)] + photos[12:]
    out = tmp_path / "ray-kill.parquet"
    s = analyze_to_parquet(todo, out, workers=2, engine="ray", progress=False)
    assert marker.exists(), "no actor died: the test proves nothing"
    assert s == {"total": 21, "skipped": 0, "done": 21, "failed": 0}
    rows = _rows(out)
    assert sorted(r["path"] for r in rows) == sorted(todo)   # each photo once
    local = {r["path"]: r for r in _rows(local_table)}
    assert all(r == local[r["path"]] for r in rows if r["path"] != str(victim))
    v = next(r for r in rows if r["path"] == str(victim))
    assert v["sface"] == local[photos[5]]["sface"] and v["error"] is None


def test_verify_pairs_with_the_ray_engine_equals_local(ray_cluster, photos, tmp_path):
    root = Path(photos[0]).parents[2]
    rel = [str(Path(p).relative_to(root)) for p in photos]
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("file_a,file_b\n" + "".join(f"{rel[i]},{rel[i + 3]}\n" for i in range(8))
                     + f"{rel[0]},images/nobody/missing.jpg\n")
    outs = {e: tmp_path / f"{e}.jsonl" for e in ("local", "ray")}
    for engine, out in outs.items():
        run(BatchConfig(pairs=pairs, out=out, root=root, workers=2, fast=True, engine=engine),
            progress=False)
    assert outs["ray"].read_text() == outs["local"].read_text()


def test_data_qa_with_the_ray_engine_equals_local(ray_cluster, photos, tmp_path):
    from facelm.cli import main
    from facelm.data.schema import read_records
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    labels = tmp_path / "labels.csv"
    labels.write_text("file,age,gender,race\n" + "".join(
        f"{p},30,male,White\n" for p in [*photos[:2], tmp_path / "broken.jpg"]))
    got = {}
    for engine in ("local", "ray"):
        out = tmp_path / engine
        assert main(["data", "qa", "--images", str(tmp_path), "--labels", str(labels), "--out",
                     str(out), "--teacher", "evidence", "--aspects", "pose,general", "--grounding",
                     "--quiet", "--workers", "2", "--engine", engine]) == 0
        fails = [json.loads(x) for x in (out / "failures.jsonl").read_text().splitlines()]
        got[engine] = (sorted((r.id, r.answer) for r in read_records(out / "records.jsonl")),
                       sorted((f["id"], f["reason"]) for f in fails))
    assert len(got["ray"][0]) == 4 and len(got["ray"][1]) == 2 and got["ray"] == got["local"]
