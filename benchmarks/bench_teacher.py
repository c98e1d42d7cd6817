"""Teacher-data throughput: `facelm data qa` with the openai teacher against a local server with
fixed latency and injected faults (429 with Retry-After, 500, malformed bodies), at several
concurrencies, against the sequential request loop of the papers' data scripts.

    .venv/bin/python benchmarks/bench_teacher.py                 # 2,000 requests, 200 ms, 5 % faults
    .venv/bin/python benchmarks/bench_teacher.py --n 400 --concurrency 8,64 --no-baseline

Each row is a full job: 250 UTKFace photos x 8 aspects = 2,000 items, images encoded and sent
inline, records appended and fsync'd, manifest written. Ideal wall time is n x latency /
concurrency (faults and retries not counted), so "of ideal" also charges the fault handling.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "utkface-dev"
LABELS = DATA / "labels.csv"  # every job reads its first n / 8 photos


def start_server(latency: float, fault_rate: float, seed: int,
                 fault_latency: float | None = None) -> tuple[subprocess.Popen, str]:
    extra = [] if fault_latency is None else ["--fault-latency", str(fault_latency)]
    proc = subprocess.Popen([sys.executable, "-m", "facelm.teacher.chat_server", "--latency",
                             str(latency), "--fault-rate", str(fault_rate), "--seed", str(seed),
                             "--retry-after", "0.2", *extra], stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


def run_job(url: str, labels: Path, out: Path, n: int, concurrency: int, transport: str) -> dict:
    from facelm.data.qa import QAConfig, run_qa
    from facelm.teacher.registry import TeacherSpec
    spec = TeacherSpec(name="openai", model="gpt-4o-mini", base_url=url, transport=transport)
    t0 = time.monotonic()
    m = run_qa(QAConfig(images=str(DATA), labels=str(labels), out=str(out), teacher=spec,
                        limit=n // 8, concurrency=concurrency), progress=False)
    wall = time.monotonic() - t0
    return {"wall": wall, "records": m["counts"]["records"], "failures": m["counts"]["failures"],
            "requests": m["usage"]["requests"], "cost": m["usage"]["cost_usd"]}


def sequential_loop(url: str, labels: Path, out: Path, n: int) -> dict:
    """What the papers' scripts do: one request at a time, retry on error, append to a file."""
    import httpx

    from facelm.csvio import read_csv
    from facelm.data.schema import QA_QUESTIONS
    from facelm.teacher.openai_teacher import encode_image
    from facelm.teacher.prompts import load_prompts
    prompts = load_prompts()
    rows = read_csv(labels)[1][: n // 8]
    rng, done, requests = random.Random(0), 0, 0
    t0 = time.monotonic()
    with httpx.Client(base_url=url, timeout=120) as client, open(out, "w") as fh:
        for row in rows:
            path = str(DATA / row["file"])
            url_img = encode_image(path)
            for aspect in QA_QUESTIONS:
                p = prompts.qa(aspect, row, path)
                body = {"model": "gpt-4o-mini", "max_tokens": 400, "messages": [
                    {"role": "system", "content": p.system},
                    {"role": "user", "content": [{"type": "text", "text": p.user},
                                                 {"type": "image_url", "image_url": {"url": url_img}}]}]}
                for attempt in range(7):
                    requests += 1
                    r = client.post("/chat/completions", json=body)
                    try:
                        text = r.json()["choices"][0]["message"]["content"]
                        break
                    except (ValueError, KeyError, IndexError):
                        # the same policy as facelm's: Retry-After, else 0.25 s x 2^k jitter
                        wait = float(r.headers.get("retry-after", 0) or 0)
                        time.sleep(max(wait, rng.uniform(0, 0.25 * 2 ** attempt)))
                fh.write(json.dumps({"image": path, "aspect": aspect, "answer": text}) + "\n")
                done += 1
    return {"wall": time.monotonic() - t0, "records": done, "failures": 0, "requests": requests,
            "cost": None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="requests (items); a multiple of 8")
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--fault-rate", type=float, default=0.05)
    ap.add_argument("--fault-latency", type=float, default=None,
                    help="seconds a fault takes (default: the full latency, the harsher case)")
    ap.add_argument("--concurrency", default="1,8,64")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--httpx-row", type=int, default=64,
                    help="also run this concurrency over httpx (0: skip)")
    ap.add_argument("--json", help="write the rows here too")
    a = ap.parse_args()
    # Process start-up (imports) is not part of a job's time: the CLI has paid it before the job.
    import facelm.data.qa  # noqa: F401
    import facelm.imageio  # noqa: F401
    import facelm.teacher.openai_teacher  # noqa: F401
    tmp = Path(tempfile.mkdtemp(prefix="bench_teacher_"))
    plan = ([("sequential loop (papers' scripts)", 1, None)] if not a.no_baseline else [])
    plan += [(f"facelm data qa, concurrency {c}", int(c), "lean")
             for c in a.concurrency.split(",")]
    if a.httpx_row:
        plan.append((f"facelm data qa, concurrency {a.httpx_row}, httpx transport",
                     a.httpx_row, "httpx"))
    rows = []
    for k, (name, conc, transport) in enumerate(plan):
        # the same faults for every row
        proc, url = start_server(a.latency, a.fault_rate, seed=0, fault_latency=a.fault_latency)
        try:
            out = tmp / f"run{k}"
            r = (sequential_loop(url, LABELS, tmp / f"seq{k}.jsonl", a.n) if transport is None
                 else run_job(url, LABELS, out, a.n, conc, transport))
        finally:
            proc.terminate()
            proc.wait()
        ideal = a.n * a.latency / conc
        rows.append({"setup": name, "concurrency": conc, **r, "ideal": ideal,
                     "of_ideal": ideal / r["wall"]})
        print(f"  {name}: {r['wall']:.1f} s", file=sys.stderr, flush=True)
    base = rows[0]["wall"] if not a.no_baseline else None
    print(f"\n{a.n} requests, {a.latency * 1000:.0f} ms latency, {a.fault_rate:.0%} injected "
          f"faults; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs\n")
    from facelm.eval.metrics_report import markdown_table
    print(markdown_table(
        ["setup", "records", "requests sent", "wall (s)", "ideal (s)", "of ideal", "speed-up vs loop"],
        [[r["setup"], r["records"], r["requests"], f"{r['wall']:.1f}", f"{r['ideal']:.1f}",
          f"{r['of_ideal']:.0%}", f"{base / r['wall']:.1f}x" if base else "-"] for r in rows]))
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
