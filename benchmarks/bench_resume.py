"""No-op resume of a finished `facelm verify --pairs` output: time and peak memory.

Builds a pairs CSV of N rows and a finished result file (one real facelm record per row, computed
once from two LFW photos and copied with each index), then runs the real CLI on them, which must
find every index done and write nothing. Targets (issue 14): < 5 s and < 300 MB at 100k rows.

    .venv/bin/python benchmarks/bench_resume.py [--rows 100000] [--keep DIR]
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LFW = Path(__file__).resolve().parents[2] / "shared" / "data" / "lfw-view1"
TARGET_S, TARGET_MB = 5.0, 300.0


def one_record(tmp: Path) -> dict:
    """A real result record (the size of the ones users have), from one LFW pair."""
    pairs = tmp / "one.csv"
    a, b = "images/Aaron_Peirsol/Aaron_Peirsol_0001.jpg", "images/Aaron_Peirsol/Aaron_Peirsol_0002.jpg"
    pairs.write_text(f"file_a,file_b,same\n{a},{b},1\n")
    out = tmp / "one.jsonl"
    subprocess.run([sys.executable, "-m", "facelm.cli", "verify", "--pairs", str(pairs), "--root",
                    str(LFW), "--out", str(out), "--fast", "--workers", "1"], check=True,
                   capture_output=True)
    return json.loads(out.read_text(encoding="utf-8").splitlines()[0])


def build(tmp: Path, rows: int) -> tuple[Path, Path]:
    rec = one_record(tmp)
    pairs, out = tmp / "pairs.csv", tmp / "results.jsonl"
    with open(pairs, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file_a", "file_b", "same"])
        w.writerows([rec["file_a"], rec["file_b"], "1"] for _ in range(rows))
    body = json.dumps(rec)[len('{"index": 0'):]  # facelm writes "index" first
    assert json.dumps(rec).startswith('{"index": 0')
    with open(out, "w", encoding="utf-8") as f:
        for i in range(rows):
            f.write(f'{{"index": {i}{body}\n')
    return pairs, out


def rerun(pairs: Path, out: Path, log: Path) -> tuple[int, float, float, float, str]:
    """(exit code, seconds, CPU seconds, peak RSS in MB, stderr) of the CLI re-run alone: os.wait4 gives this
    one child's rusage (RUSAGE_CHILDREN would also count the model run that built the record)."""
    with open(log, "w") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen([sys.executable, "-m", "facelm.cli", "verify", "--pairs", str(pairs),
                              "--out", str(out), "--workers", "2"], stdout=err, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)
        seconds = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)  # so Popen does not wait again
    cpu = usage.ru_utime + usage.ru_stime   # less sensitive than wall time to a busy machine
    return p.returncode, seconds, cpu, usage.ru_maxrss / 1024, log.read_text()  # maxrss: KiB


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--keep", type=Path, help="build the files here and keep them")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as t:
        tmp = args.keep or Path(t)
        tmp.mkdir(parents=True, exist_ok=True)
        pairs, out = build(tmp, args.rows)
        before, size_mb = sha256(out), out.stat().st_size / 1e6
        code, seconds, cpu, peak_mb, err = rerun(pairs, out, tmp / "stderr.txt")
        unchanged = sha256(out) == before
    ok = code == 0 and unchanged and seconds < TARGET_S and peak_mb < TARGET_MB
    print("| rows | output MB | no-op re-run s | CPU s | peak RSS MB | file unchanged | exit | load |")
    print("|---:|---:|---:|---:|---:|---|---:|---:|")
    print(f"| {args.rows} | {size_mb:.0f} | {seconds:.2f} (target < {TARGET_S:g}) | {cpu:.2f} | "
          f"{peak_mb:.0f} (target < {TARGET_MB:g}) | {unchanged} | {code} | {os.getloadavg()[0]:.1f} |")
    if code:
        print(err[-2000:], file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
