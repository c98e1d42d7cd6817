"""Verification benchmark on LFW View 1 test pairs: accuracy, speed and memory against face_recognition.

    bash scripts/setup.sh --bench && .venv/bin/python benchmarks/bench_verify.py [--pairs 200]

(1) accuracy, ROC AUC, TAR@FAR on all 1,000 view1_test pairs for each identity model and the fusion,
    at the thresholds calibrated on view1_train (benchmarks/calibrate.py);
(2) pairs per second on the first --pairs test pairs: face_recognition as users call it (each pair's
    two photos encoded), face_recognition with each photo encoded once, and facelm's batch verifier
    (identity-only --fast, and the full analysis with explanations), all in this run;
(3) peak resident memory of each method, each run in its own process.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lfw_embeddings import DEFAULT_DATA, REPO, read_pairs  # noqa: E402

METHODS = ("face_recognition", "face_recognition_cached", "facelm_fast", "facelm_full")


def accuracy_table() -> str:
    from facelm.eval.metrics_report import markdown_table  # floats with 4 decimals
    rec = json.loads((REPO / "docs" / "calibration" / "lfw_view1.json").read_text())
    keys = ("threshold", "test_accuracy", "test_auc", "test_tar_at_far_1e-2", "test_tar_at_far_1e-3")
    return markdown_table(["model", "threshold", "accuracy", "ROC AUC", "TAR@FAR=1e-2", "TAR@FAR=1e-3"],
                          [[m, *(float(r[k]) for k in keys)] for m, r in rec["models"].items()])


def _pairs(data: Path, n: int) -> list[dict]:
    return [r for r in read_pairs(data) if r["set"] == "view1_test"][:n]


def _run_face_recognition(data: Path, pairs: list[dict], cached: bool) -> list[bool | None]:
    import face_recognition
    memo: dict[str, np.ndarray | None] = {}

    def enc(rel: str) -> np.ndarray | None:
        if cached and rel in memo:
            return memo[rel]
        encs = face_recognition.face_encodings(face_recognition.load_image_file(str(data / rel)))
        memo[rel] = encs[0] if encs else None
        return memo[rel]
    out = []
    for r in pairs:
        a, b = enc(r["file_a"]), enc(r["file_b"])
        out.append(None if a is None or b is None else bool(np.linalg.norm(a - b) <= 0.6))
    return out


def _run_facelm(data: Path, pairs: list[dict], fast: bool) -> list[bool | None]:
    import csv
    from facelm.batch import BatchConfig, run
    with tempfile.TemporaryDirectory() as tmp:
        csv_path, out = Path(tmp) / "p.csv", Path(tmp) / "r.jsonl"
        with open(csv_path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["file_a", "file_b"])
            w.writeheader()
            w.writerows({"file_a": r["file_a"], "file_b": r["file_b"]} for r in pairs)
        run(BatchConfig(pairs=csv_path, out=out, root=data, workers=2, fast=fast), progress=False)
        recs = [json.loads(line) for line in out.read_text().splitlines()]
    return [None if "error" in r else r["same"] for r in recs]


def child(method: str, data: Path, n: int) -> None:
    """Run one method in this process and print {seconds, peak_mb, correct, failed} as JSON."""
    pairs = _pairs(data, n)
    t = time.perf_counter()
    if method.startswith("face_recognition"):
        got = _run_face_recognition(data, pairs, cached=method.endswith("cached"))
    else:
        got = _run_facelm(data, pairs, fast=method == "facelm_fast")
    secs = time.perf_counter() - t
    main_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    worker_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # largest worker
    workers = 0 if method.startswith("face_recognition") else 2
    peak = main_mb + workers * worker_mb  # all processes at their peaks together: an upper bound
    correct = sum(g is not None and g == (r["same"] == "1") for g, r in zip(got, pairs))
    print(json.dumps({"seconds": secs, "peak_mb": peak, "correct": correct,
                      "failed": sum(g is None for g in got), "pairs": len(pairs)}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--pairs", type=int, default=200)
    p.add_argument("--child", choices=METHODS, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args.child, args.data, args.pairs)
    # Imported here, not at the top: the --child processes' peak memory must not include it.
    from facelm.eval.metrics_report import markdown_table
    print("## Accuracy on LFW View 1 test pairs (1,000; thresholds from view1_train)\n")
    print(accuracy_table())
    res = {}
    for m in METHODS:
        out = subprocess.run([sys.executable, __file__, "--child", m, "--data", str(args.data),
                              "--pairs", str(args.pairs)], capture_output=True, text=True, check=True)
        res[m] = json.loads(out.stdout.strip().splitlines()[-1])
    rates = {m: r["pairs"] / r["seconds"] for m, r in res.items()}
    base = rates["face_recognition"]
    print(f"\n## Speed and memory on the first {args.pairs} test pairs (2 cores)\n")
    print(markdown_table(
        ["method", "pairs/s", "vs face_recognition", "peak RSS, all processes (MB)", "correct", "failed"],
        [[m, f"{rates[m]:.2f}", f"{rates[m] / base:.2f}x", f"{r['peak_mb']:.0f}",
          f"{r['correct']}/{r['pairs']}", r["failed"]] for m, r in res.items()]))


if __name__ == "__main__":
    main()
