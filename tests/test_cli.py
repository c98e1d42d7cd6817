"""The CLI contract: `facelm verify`, `verify --pairs`, `describe`, `demo`, errors and exit codes."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from facelm import batch
from facelm.batch import BatchConfig, run

FACELM = [sys.executable, "-m", "facelm.cli"]


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*FACELM, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_verify_json_contract(lfw_dir):
    a = lfw_dir / "images/Aaron_Peirsol/Aaron_Peirsol_0001.jpg"
    b = lfw_dir / "images/Aaron_Peirsol/Aaron_Peirsol_0002.jpg"
    r = _cli("verify", str(a), str(b), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["same"] is True and d["score"] >= d["threshold"]
    assert d["explanation"]["concise"] and d["explanation"]["detailed"]
    assert d["a"]["source"] == str(a) and d["b"]["attributes"]["gender"] in ("male", "female")


def test_verify_human_output_and_error_exit(lfw_dir, tmp_path):
    a = lfw_dir / "images/Aaron_Peirsol/Aaron_Peirsol_0001.jpg"
    r = _cli("verify", str(a), str(a))
    assert r.returncode == 0 and "SAME PERSON" in r.stdout and "Concise:" in r.stdout
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    r = _cli("verify", str(a), str(empty))
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "empty.jpg" in lines[0] and "Traceback" not in r.stderr


def test_describe_json_and_one_aspect(lfw_dir):
    img = str(lfw_dir / "images/Aaron_Peirsol/Aaron_Peirsol_0001.jpg")
    d = json.loads(_cli("describe", img, "--json").stdout)
    assert len(d["answers"]) == 8 and all(d["answers"].values())
    assert d["analysis"]["faces_found"] == 1
    r = _cli("describe", img, "--aspect", "pose")
    assert r.returncode == 0 and "pose" in r.stdout.lower()


def test_demo_runs_on_bundled_photos():
    r = _cli("demo")
    assert r.returncode == 0, r.stderr
    assert "DIFFERENT PEOPLE" in r.stdout and "SAME PERSON" in r.stdout


def _write_pairs(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


@pytest.fixture()
def pairs_csv(lfw_pairs, tmp_path):
    rows = [r for r in lfw_pairs if r["set"] == "view1_test"][:3]
    rows += [r for r in lfw_pairs if r["set"] == "view1_test" and r["same"] == "0"][:3]
    out = [{"file_a": r["file_a"], "file_b": r["file_b"], "same": r["same"]} for r in rows]
    out.insert(2, {"file_a": "images/missing.jpg", "file_b": rows[0]["file_b"], "same": "1"})
    out.append({"file_a": rows[0]["file_a"], "file_b": rows[1]["file_a"], "same": "?"})
    p = tmp_path / "pairs.csv"
    _write_pairs(p, out)
    return p, out


def test_batch_is_ordered_reports_failures_and_analyses_each_photo_once(pairs_csv, lfw_dir, tmp_path, monkeypatch):
    path, rows = pairs_csv
    calls: list[str] = []
    real = batch._analyse_one
    monkeypatch.setattr(batch, "_analyse_one", lambda args: (calls.append(args[0]), real(args))[1])
    out = tmp_path / "res.jsonl"
    s = run(BatchConfig(pairs=path, out=out, root=lfw_dir, workers=1, fast=True), progress=False)
    recs = [json.loads(l) for l in out.read_text().splitlines()]
    assert [r["index"] for r in recs] == list(range(len(rows))) and s.done == len(rows)
    assert s.failed == 1 and "missing.jpg" in recs[2]["error"] and "same" not in recs[2]
    assert len(calls) == len(set(calls)) == len({r[c] for r in rows for c in ("file_a", "file_b")})
    for r, row in zip(recs, rows):
        assert r["file_a"] == row["file_a"] and r["input_same"] == row["same"]
        if "error" not in r:
            assert isinstance(r["same"], bool) and r["explanation"]["concise"]


def test_batch_resumes_after_a_kill_without_redoing_or_duplicating(pairs_csv, lfw_dir, tmp_path, monkeypatch):
    path, rows = pairs_csv
    out = tmp_path / "res.jsonl"
    run(BatchConfig(pairs=path, out=out, root=lfw_dir, workers=1, fast=True), progress=False)
    full = out.read_text().splitlines()
    # what a kill -9 mid-write leaves: 3 whole records and half of the 4th
    out.write_text("\n".join(full[:3]) + "\n" + full[3][: len(full[3]) // 2])
    calls: list[str] = []
    real = batch._analyse_one
    monkeypatch.setattr(batch, "_analyse_one", lambda args: (calls.append(args[0]), real(args))[1])
    s = run(BatchConfig(pairs=path, out=out, root=lfw_dir, workers=1, fast=True), progress=False)
    again = out.read_text().splitlines()
    assert s.skipped == 3 and s.done == len(rows) - 3
    assert [json.loads(l)["index"] for l in again] == list(range(len(rows)))
    assert again[:3] == full[:3]
    needed = {str(lfw_dir / r[c]) for r in rows[3:] for c in ("file_a", "file_b")}
    assert set(calls) == needed
    s = run(BatchConfig(pairs=path, out=out, root=lfw_dir, workers=1, fast=True), progress=False)
    assert s.done == 0 and out.read_text().splitlines() == again


def test_batch_cli_with_two_workers(pairs_csv, lfw_dir, tmp_path):
    path, rows = pairs_csv
    out = tmp_path / "r.jsonl"
    r = _cli("verify", "--pairs", str(path), "--root", str(lfw_dir), "--out", str(out), "--workers", "2")
    assert r.returncode == 0, r.stderr
    recs = [json.loads(l) for l in out.read_text().splitlines()]
    assert [x["index"] for x in recs] == list(range(len(rows)))
    assert sum("error" in x for x in recs) == 1


def test_batch_applies_threshold_and_refuses_model(pairs_csv, lfw_dir, tmp_path):
    path, rows = pairs_csv
    out = tmp_path / "t.jsonl"
    run(BatchConfig(pairs=path, out=out, root=lfw_dir, workers=1, fast=True, threshold=0.0),
        progress=False)
    recs = [json.loads(l) for l in out.read_text().splitlines() if "error" not in json.loads(l)]
    # thresholds are 0..1 (issue 14); two real faces' fused score is far above 0
    assert recs and all(r["threshold"] == 0.0 and r["same"] for r in recs)
    r = _cli("verify", "--pairs", str(path), "--out", str(tmp_path / "m.jsonl"), "--model", "x")
    assert r.returncode != 0 and "--model works with one pair" in r.stderr
    assert not (tmp_path / "m.jsonl").exists()


def test_batch_rejects_a_csv_without_the_columns(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("a,b\nx.jpg,y.jpg\n")
    r = _cli("verify", "--pairs", str(p), "--out", str(tmp_path / "o.jsonl"))
    assert r.returncode != 0 and "file_a" in r.stderr and "bad.csv" in r.stderr


def test_a_command_whose_extra_is_missing_says_how_to_install_it(monkeypatch, capsys):
    """A base install has no fastapi/uvicorn (or torch): one line naming the set-up flag, exit 2."""
    import sys
    from facelm.cli import main
    for name in ("uvicorn", "fastapi"):
        monkeypatch.setitem(sys.modules, name, None)  # makes `import name` fail as if not installed
    monkeypatch.delitem(sys.modules, "facelm.serve.app", raising=False)
    assert main(["serve", "--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("facelm: error: this command needs the '") and "setup.sh --serve" in err
    assert len(err.splitlines()) == 1
