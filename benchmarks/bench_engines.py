"""Local process pool vs Ray Data for `facelm analyze --images ... --out X.parquet` on one machine.

Analyses the first N photos of utkface-dev (identity-only, the table's default) twice into fresh
tables, once per engine, with the same number of workers (pool processes / Ray actors), and checks
that both tables are equal row for row, every column and every embedding bit included. Ray's cost
is reported twice: with the start of its local cluster (what one CLI run pays) and without it (a
cluster that is already running, as with --address). Target (issue 16): Ray within 1.3x.

    .venv/bin/python benchmarks/bench_engines.py [--photos 2000] [--workers 2]
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

UTK = Path(__file__).resolve().parents[2] / "shared" / "data" / "utkface-dev" / "labels.csv"
TARGET = 1.3


def timed(photos: list[str], out: Path, workers: int, engine: str) -> float:
    from facelm.table import analyze_to_parquet
    t = time.perf_counter()
    s = analyze_to_parquet(photos, out, workers=workers, engine=engine, progress=False)
    assert s["done"] == len(photos), s
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    from facelm.table import list_images, read_table
    photos = list_images(UTK)[: args.photos]
    with tempfile.TemporaryDirectory() as tmp:
        local_s = timed(photos, Path(tmp) / "local.parquet", args.workers, "local")
        import ray
        t = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR",
                 log_to_driver=False)
        start_s = time.perf_counter() - t
        ray_s = timed(photos, Path(tmp) / "ray.parquet", args.workers, "ray")
        ray.shutdown()
        a, b = (read_table(Path(tmp) / f"{e}.parquet") for e in ("local", "ray"))
        identical = a.equals(b)
        failed = a.column("error").null_count
    result = {
        "photos": len(photos), "workers": args.workers, "cpus": os.cpu_count(),
        "local_s": round(local_s, 1), "ray_s": round(ray_s, 1), "ray_start_s": round(start_s, 1),
        "ratio_with_start": round((ray_s + start_s) / local_s, 3),
        "ratio_cluster_running": round(ray_s / local_s, 3),
        "identical": identical, "analysed_ok": failed, "load_avg": os.getloadavg()[0],
    }
    print(json.dumps(result, indent=1))
    print(f"target: Ray within {TARGET}x of the local pool: "
          f"{'met' if result['ratio_with_start'] <= TARGET else 'NOT met'} (with start)")


if __name__ == "__main__":
    main()
