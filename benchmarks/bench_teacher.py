"""Teacher-data throughput: `facelm data qa` with the openai teacher against a local server with
fixed latency and injected faults (429 with Retry-After, 500, malformed bodies), at several
concurrencies, against the sequential request loop of the papers' data scripts.

    .venv/bin/python benchmarks/bench_teacher.py                 # 2,000 requests, 200 ms, 5 % faults
    .venv/bin/python benchmarks/bench_teacher.py --n 400 --concurrency 8,64 --no-baseline
    # one vs two endpoints, each a server that answers 8 requests at once (a GPU server's batch)
    .venv/bin/python benchmarks/bench_teacher.py --n 800 --servers 1,2 --server-capacity 8 \
        --concurrency 8 --no-baseline --httpx-row 0
    # the same, the first server killed (SIGKILL) 5 s into the two-server row: failover's cost
    .venv/bin/python benchmarks/bench_teacher.py --n 800 --servers 2 --server-capacity 8 \
        --concurrency 8 --no-baseline --httpx-row 0 --kill-after 5
    .venv/bin/python benchmarks/bench_teacher.py --base-url http://gpu1:8000/v1,http://gpu2:8000/v1

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
import threading
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "utkface-dev"
LABELS = DATA / "labels.csv"  # every job reads its first n / 8 photos


def start_server(latency: float, fault_rate: float, seed: int,
                 fault_latency: float | None = None,
                 capacity: int = 0) -> tuple[subprocess.Popen, str]:
    extra = [] if fault_latency is None else ["--fault-latency", str(fault_latency)]
    proc = subprocess.Popen([sys.executable, "-m", "facelm.teacher.chat_server", "--latency",
                             str(latency), "--fault-rate", str(fault_rate), "--seed", str(seed),
                             "--retry-after", "0.2", "--max-parallel", str(capacity), *extra],
                            stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


def start_servers(k: int, a: argparse.Namespace) -> tuple[list[subprocess.Popen], str]:
    """k local servers (seeds 0..k-1: the same faults in every row) and their URLs, joined."""
    started = [start_server(a.latency, a.fault_rate, seed=i, fault_latency=a.fault_latency,
                            capacity=a.server_capacity) for i in range(k)]
    return [p for p, _ in started], ",".join(u for _, u in started)


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


def plan_rows(a: argparse.Namespace) -> list[tuple[str, int, str | None, int]]:
    """(setup, concurrency per endpoint, transport or None for the loop, local servers)."""
    plan: list[tuple[str, int, str | None, int]] = (
        [("sequential loop (papers' scripts)", 1, None, 1)] if not a.no_baseline else [])
    servers = [0] if a.base_url else [int(s) for s in a.servers.split(",")]
    for k in servers:
        where = (", the endpoints given" if k == 0 else "" if servers == [1]
                 else f", {k} local server{'s' * (k > 1)}")
        plan += [(f"facelm data qa, concurrency {c} per endpoint{where}", int(c), "lean", k)
                 for c in a.concurrency.split(",")]
    if a.httpx_row:
        plan.append((f"facelm data qa, concurrency {a.httpx_row}, httpx transport",
                     a.httpx_row, "httpx", servers[0]))
    return plan


def run_row(k: int, row: tuple[str, int, str | None, int], a: argparse.Namespace,
            tmp: Path) -> dict:
    name, conc, transport, n_servers = row
    procs, url = start_servers(n_servers, a) if n_servers else ([], ",".join(a.base_url))
    killer = threading.Timer(a.kill_after, procs[0].kill) if a.kill_after and n_servers > 1 else None
    if killer is not None:
        killer.start()
        name += f", server 1 killed at {a.kill_after:g} s"
    try:
        r = (sequential_loop(url, LABELS, tmp / f"seq{k}.jsonl", a.n) if transport is None
             else run_job(url, LABELS, tmp / f"run{k}", a.n, conc, transport))
    finally:
        if killer is not None:
            killer.cancel()
        for proc in procs:
            proc.terminate()
            proc.wait()
    # Ideal: every endpoint's slots busy (a local server's capacity caps them) for the latency.
    per_server = min(conc, a.server_capacity) if a.server_capacity else conc
    rate = per_server / a.latency   # requests per second one server can answer
    ideal = a.n / (rate * max(1, n_servers))
    if killer is not None and ideal > a.kill_after:   # all servers until the kill, then one fewer
        ideal = a.kill_after + (a.n - a.kill_after * rate * n_servers) / (rate * (n_servers - 1))
    print(f"  {name}: {r['wall']:.1f} s", file=sys.stderr, flush=True)
    return {"setup": name, "concurrency": conc, "servers": n_servers, "transport": transport,
            **r, "ideal": ideal,
            "of_ideal": ideal / r["wall"]}


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
    ap.add_argument("--servers", default="1",
                    help="local servers per row, e.g. 1,2 (--concurrency is per server)")
    ap.add_argument("--server-capacity", type=int, default=0,
                    help="requests each local server answers at once, the rest queue (0: any)")
    ap.add_argument("--base-url", action="append",
                    help="run against these endpoints (repeat or comma-separate) instead of "
                         "local servers; no baseline row")
    ap.add_argument("--kill-after", type=float, default=0,
                    help="kill the first of several local servers this many seconds into a row")
    ap.add_argument("--json", help="write the rows here too")
    a = ap.parse_args()
    a.no_baseline = a.no_baseline or bool(a.base_url)
    # Process start-up (imports) is not part of a job's time: the CLI has paid it before the job.
    import facelm.data.qa  # noqa: F401
    import facelm.imageio  # noqa: F401
    import facelm.teacher.openai_teacher  # noqa: F401
    tmp = Path(tempfile.mkdtemp(prefix="bench_teacher_"))
    rows = [run_row(k, row, a, tmp) for k, row in enumerate(plan_rows(a))]
    base = rows[0]["wall"] if not a.no_baseline else None
    cap = f", each server answers {a.server_capacity} at once" if a.server_capacity else ""
    print(f"\n{a.n} requests, {a.latency * 1000:.0f} ms latency, {a.fault_rate:.0%} injected "
          f"faults{cap}; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs\n")
    from facelm.eval.metrics_report import markdown_table
    print(markdown_table(
        ["setup", "records", "requests sent", "wall (s)", "ideal (s)", "of ideal", "speed-up vs loop"],
        [[r["setup"], r["records"], r["requests"], f"{r['wall']:.1f}", f"{r['ideal']:.1f}",
          f"{r['of_ideal']:.0%}", f"{base / r['wall']:.1f}x" if base else "-"] for r in rows]))
    lean = [r for r in rows if r["transport"] == "lean"]
    one = {r["concurrency"]: r["wall"] for r in lean if r["servers"] == 1}
    for r in lean:
        if r["servers"] > 1 and r["concurrency"] in one:
            print(f"\n{r['servers']} servers vs 1, concurrency {r['concurrency']} per endpoint: "
                  f"{one[r['concurrency']] / r['wall']:.2f}x the throughput")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
