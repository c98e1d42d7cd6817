"""Outputs are checked before they are touched, have one writer, survive kill -9, and are JSONL that
splits only on "\\n" (issue 14): on the real CLI and real LFW photos."""
from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from facelm.batch import BatchConfig, run
from facelm.cli import main
from facelm.data.schema import read_records
from facelm.data.store import RECORDS, DatasetStore, read_manifest
from facelm.errors import FaceLMError, InputFormatError
from facelm.jsonl import JsonlScan, dumps_line

FACELM = [sys.executable, "-m", "facelm.cli"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pairs(path: Path, rows: list[tuple[str, str]], blank_lines: bool = False) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file_a", "file_b", "same"])
        for a, b in rows:
            if blank_lines:
                f.write("\r\n")
            w.writerow([a, b, "1"])
    return path


@pytest.fixture(scope="module")
def lfw_rows(lfw_pairs) -> list[tuple[str, str]]:
    """Pairs with no photo in common, so each pair costs two analyses."""
    seen, rows = set(), []
    for r in lfw_pairs:
        if r["file_a"] not in seen and r["file_b"] not in seen:
            seen.update((r["file_a"], r["file_b"]))
            rows.append((r["file_a"], r["file_b"]))
    return rows


def _lines(out: Path) -> list[str]:
    return out.read_bytes().decode("utf-8").split("\n")[:-1]


def _indices(out: Path) -> list[int]:
    return [json.loads(line)["index"] for line in _lines(out)]


def _cli_bg(*args: str) -> subprocess.Popen:
    return subprocess.Popen([*FACELM, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def _wait_for(cond, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


# --- --out is checked before it is touched ---------------------------------------------------

@pytest.mark.parametrize("victim", ["victim.csv", "victim.jpg"])
def test_a_users_file_as_out_is_refused_untouched(victim, lfw_dir, lfw_rows, tmp_path):
    out = tmp_path / victim
    if victim.endswith(".jpg"):
        shutil.copy(lfw_dir / lfw_rows[0][0], out)
    else:  # a CSV whose last row has no line end: the old resume cut it off
        out.write_bytes(b"name,age\nalice,30\nbob,41")
    before = _sha(out)
    pairs = _pairs(tmp_path / "ok.csv", lfw_rows[:1])
    r = subprocess.run([*FACELM, "verify", "--pairs", str(pairs), "--root", str(lfw_dir),
                        "--out", str(out), "--fast", "--workers", "1"],
                       capture_output=True, text=True, timeout=120)
    err = r.stderr.strip()
    assert r.returncode == 2 and len(err.splitlines()) == 1 and "Traceback" not in r.stderr
    assert str(out) in err and "not a facelm" in err and "left unchanged" in err
    assert _sha(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["ok.csv", victim])  # no .lock


def test_out_that_is_a_folder_or_unwritable_is_one_line(tmp_path, capsys):
    pairs = _pairs(tmp_path / "p.csv", [("a.jpg", "")])
    (tmp_path / "dir").mkdir()
    (tmp_path / "afile").write_text("x")
    for out, expect in ((tmp_path / "dir", "is a folder"),
                        (tmp_path / "afile" / "r.jsonl", "cannot write here")):
        assert main(["verify", "--pairs", str(pairs), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expect in err and str(out) in err
    assert (tmp_path / "afile").read_text() == "x"


@pytest.mark.parametrize("damage, expect", [
    (lambda ls: ls[:1] + [b'{"index": 1, "same": true, "x": "caf\xe9"}'] + ls[2:],
     "line 2 is not UTF-8 text"),
    (lambda ls: ls + ls[:1], "line 4 repeats index 0"),
    (lambda ls: ls + [b'{"index": 7, "same": true}'], "line 4: index 7 is not a data row"),
    (lambda ls: ls[:1] + [b'{"index": 1, "same": tru'] + ls[2:], "line 2 is not JSON"),
])
def test_a_damaged_output_is_refused_with_the_line_and_left_unchanged(damage, expect, tmp_path):
    rows = [("a.jpg", ""), ("b.jpg", ""), ("c.jpg", "")]   # empty cells: no photo analysed
    pairs = _pairs(tmp_path / "p.csv", rows)
    out = tmp_path / "r.jsonl"
    run(BatchConfig(pairs=pairs, out=out, workers=1), progress=False)
    out.write_bytes(b"\n".join(damage(out.read_bytes().split(b"\n")[:-1])) + b"\n")
    before = _sha(out)
    with pytest.raises(InputFormatError) as e:
        run(BatchConfig(pairs=pairs, out=out, workers=1), progress=False)
    assert expect in str(e.value) and e.value.item == str(out) and _sha(out) == before


def test_row_numbers_in_errors_are_the_csv_lines_after_blank_lines(tmp_path):
    pairs = _pairs(tmp_path / "p.csv", [("a.jpg", ""), ("", "b.jpg")], blank_lines=True)
    out = tmp_path / "r.jsonl"
    run(BatchConfig(pairs=pairs, out=out, workers=1), progress=False)
    errors = [json.loads(line)["error"] for line in _lines(out)]
    assert errors == ["line 3 of the CSV: empty file_a or file_b",
                      "line 5 of the CSV: empty file_a or file_b"]


# --- one writer per output ---------------------------------------------------------------------

def test_a_second_run_on_the_same_out_is_refused_and_nothing_is_doubled(lfw_dir, lfw_rows, tmp_path):
    pairs = _pairs(tmp_path / "p.csv", lfw_rows[:10])
    out = tmp_path / "r.jsonl"
    first = _cli_bg("verify", "--pairs", str(pairs), "--root", str(lfw_dir), "--out", str(out),
                    "--fast", "--workers", "1")
    lock = tmp_path / "r.jsonl.lock"
    _wait_for(lambda: lock.exists() and lock.read_text().startswith(f"{first.pid} "))
    second = subprocess.run([*FACELM, "verify", "--pairs", str(pairs), "--root", str(lfw_dir),
                             "--out", str(out), "--fast", "--workers", "1"],
                            capture_output=True, text=True, timeout=120)
    still_running = first.poll() is None
    assert first.wait(timeout=120) == 0, first.stderr.read()
    assert still_running, "the first run ended before the second one started: test too fast"
    err = second.stderr.strip()
    assert second.returncode == 2 and len(err.splitlines()) == 1
    assert f"PID {first.pid}" in err and "verify" in err and "being written" in err
    assert sorted(_indices(out)) == list(range(10)) and not lock.exists()


@pytest.mark.parametrize("command", [
    ["data", "qa", "--images", "{d}", "--labels", "{d}/labels.csv"],
    ["data", "pairs", "--images", "{d}", "--pairs", "{d}/pairs.csv"],
    ["eval", "verify", "--pairs", "{d}/pairs.csv"],
])
def test_resumable_folders_have_one_writer(command, lfw_dir, tmp_path, capsys):
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom facelm.outlock import output_lock\n"
        f"with output_lock({str(out)!r}, folder=True):\n    print('held', flush=True)\n"
        "    time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        args = [a.replace("{d}", str(lfw_dir)) for a in command]
        assert main([*args, "--out", str(out)]) == 2
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"PID {holder.pid}" in err and "being written" in err
    assert [p.name for p in out.iterdir()] == [".facelm.lock"]   # nothing written by the refused run


# --- kill -9, --retry-failed ---------------------------------------------------------------------

def test_kill_9_mid_run_then_rerun_loses_and_duplicates_nothing(lfw_dir, lfw_rows, tmp_path):
    pairs = _pairs(tmp_path / "p.csv", lfw_rows[:8])
    out = tmp_path / "r.jsonl"
    victim = _cli_bg("verify", "--pairs", str(pairs), "--root", str(lfw_dir), "--out", str(out),
                     "--fast", "--workers", "1")
    _wait_for(lambda: out.exists() and out.stat().st_size > 0)   # at least one record flushed
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    kept = [line for line in out.read_bytes().split(b"\n")[:-1]]
    assert 0 < len(kept) < 8, "the run finished before the kill: test too fast"
    s = run(BatchConfig(pairs=pairs, out=out, root=lfw_dir, workers=1, fast=True), progress=False)
    assert s.skipped == len(kept) and s.done == 8 - len(kept)
    assert sorted(_indices(out)) == list(range(8))
    assert out.read_bytes().split(b"\n")[: len(kept)] == kept   # finished lines untouched


def test_retry_failed_recomputes_error_rows_and_keeps_the_others(lfw_dir, lfw_rows, tmp_path, capsys):
    photo = tmp_path / "later.jpg"   # missing now, copied in before the retry
    pairs = _pairs(tmp_path / "p.csv", [lfw_rows[0], (str(photo), str(lfw_dir / lfw_rows[0][1]))])
    out = tmp_path / "r.jsonl"
    args = ["verify", "--pairs", str(pairs), "--root", str(lfw_dir), "--out", str(out), "--fast",
            "--workers", "1"]
    assert main(args) == 0
    first = _lines(out)
    assert "error" not in json.loads(first[0]) and "later.jpg" in json.loads(first[1])["error"]
    shutil.copy(lfw_dir / lfw_rows[0][0], photo)
    assert main(args) == 0 and _lines(out) == first    # without the flag: failures stay done
    assert main([*args, "--retry-failed"]) == 0
    again = _lines(out)
    assert len(again) == 2 and again[0] == first[0]    # the good line is kept as it was
    redone = json.loads(again[1])
    assert redone["index"] == 1 and "error" not in redone and redone["same"] is True
    assert "1 pairs written" in capsys.readouterr().err


# --- JSONL: U+2028 and friends -------------------------------------------------------------------

def test_line_separators_are_escaped_and_never_split_a_record(tmp_path):
    text = "a\u2028b\u2029c\x85d\ve\x1cf"
    assert dumps_line({"id": "x", "t": text}).count("\n") == 1
    out = tmp_path / "ds"
    store = DatasetStore(out)
    store.add_record({"id": "r1", "kind": "qa", "images": ["a.jpg"], "question": "q?",
                      "answer": text})
    store.add_record({"id": "r2", "kind": "qa", "images": ["a.jpg"], "question": "q?",
                      "answer": "plain"})
    store.close()
    raw = (out / RECORDS).read_bytes()
    assert raw.count(b"\n") == 2 and "\u2028".encode() not in raw and b"\\u2028" in raw
    assert len(raw.decode("utf-8").splitlines()) == 2   # even str.splitlines sees two lines
    assert [r.answer for r in read_records(out)] == [text, "plain"]
    assert DatasetStore(out).done_ids == {"r1", "r2"}   # the resume reader accepts it


def test_a_reader_splits_only_on_newline_even_for_raw_separators(tmp_path):
    path = tmp_path / "old.jsonl"   # written by another tool, separators raw
    path.write_bytes(dumps_line({"id": "a"}).encode() + '{"id": "b", "t": "x\u2028y"}\n'.encode())
    assert [(n, rec["id"]) for n, rec in JsonlScan(path, "id", "test")] == [(1, "a"), (2, "b")]
    assert [k for _, k, _ in JsonlScan(path, "id", "test").keys()] == ["a", "b"]


def test_dataset_folder_refuses_duplicates_and_a_foreign_manifest(tmp_path):
    ds = tmp_path / "ds"
    ds.mkdir()
    line = dumps_line({"id": "same", "kind": "qa"}).encode()
    (ds / RECORDS).write_bytes(line * 2)
    with pytest.raises(InputFormatError, match="line 2 repeats id 'same'"):
        DatasetStore(ds)
    (ds / RECORDS).write_bytes(line)
    (ds / "manifest.json").write_text('{"name": "my own notes"}')
    before = _sha(ds / "manifest.json")
    with pytest.raises(InputFormatError, match="not a facelm dataset manifest"):
        read_manifest(ds)
    assert _sha(ds / "manifest.json") == before


def test_lock_is_exclusive_in_process_and_released_on_exit(tmp_path):
    from facelm.outlock import output_lock
    out = tmp_path / "r.jsonl"
    with output_lock(out) as lock:
        assert lock.read_text().startswith(f"{os.getpid()} ")
        with pytest.raises(FaceLMError, match=f"PID {os.getpid()}"):
            with output_lock(out):
                pass
        with pytest.raises(FaceLMError, match="is a file, not a folder"):
            with output_lock(lock, folder=True):
                pass
    assert not lock.exists()
    with output_lock(out):   # free again
        pass
