"""Load benchmark of `facelm serve`: N concurrent clients for a bounded time on loopback.

Starts `facelm serve` as a separate process (so the clients do not share its interpreter), then for
each client count runs closed-loop clients that POST real LFW pairs to /v1/verify as multipart, and
reports requests/s, p50/p95 latency, 503s and other errors. Client counts up to the queue bound
must see no errors; above it, 503 + Retry-After and no crash. The baseline is `facelm.compare`
called in-process on the same pairs, one at a time.

    python benchmarks/bench_serve.py --clients 1,2,4,8,16,32 --duration 15 [--out table.md]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from facelm.csvio import read_csv

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "lfw-view1"
# After a 503 a client waits this long (or Retry-After, if shorter) before trying again: real clients
# back off, and a tight retry loop would only measure how fast the server can say no.
BACKOFF_S = 0.1


@dataclass
class Level:
    clients: int
    seconds: float = 0.0
    ok: list[float] = field(default_factory=list)      # latencies of 200s, seconds
    busy: list[float] = field(default_factory=list)    # latencies of 503s
    health: list[float] = field(default_factory=list)  # latencies of /healthz probes during the run
    errors: dict[str, int] = field(default_factory=dict)


def load_pairs(n: int) -> list[tuple[str, bytes, str, bytes]]:
    rows = [r for r in read_csv(DATA / "pairs.csv")[1] if r["set"] == "view1_test"][:n]
    return [(Path(r["file_a"]).name, (DATA / r["file_a"]).read_bytes(),
             Path(r["file_b"]).name, (DATA / r["file_b"]).read_bytes()) for r in rows]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


async def client_loop(c: httpx.AsyncClient, pairs: list, start: int, stop_at: float, lv: Level) -> None:
    i = start
    while time.perf_counter() < stop_at:
        na, a, nb, b = pairs[i % len(pairs)]
        i += 1
        t0 = time.perf_counter()
        try:
            r = await c.post("/v1/verify", files={"image_a": (na, a), "image_b": (nb, b)})
            dt = time.perf_counter() - t0
            if r.status_code == 200:
                lv.ok.append(dt)
            elif r.status_code == 503 and "retry-after" in r.headers:
                lv.busy.append(dt)
                await asyncio.sleep(min(BACKOFF_S, float(r.headers["retry-after"])))
            else:
                lv.errors[str(r.status_code)] = lv.errors.get(str(r.status_code), 0) + 1
        except httpx.HTTPError as exc:
            lv.errors[type(exc).__name__] = lv.errors.get(type(exc).__name__, 0) + 1


async def probe(url: str, stop_at: float, lv: Level) -> None:
    """GET /healthz twice a second on its own connection: is the server responsive under load?"""
    async with httpx.AsyncClient(base_url=url, timeout=60) as c:
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            r = await c.get("/healthz")
            if r.status_code == 200:
                lv.health.append(time.perf_counter() - t0)
            await asyncio.sleep(0.5)


async def run_level(url: str, pairs: list, clients: int, duration: float) -> Level:
    lv = Level(clients)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as c:
        t0 = time.perf_counter()
        await asyncio.gather(probe(url, t0 + duration, lv),
                             *(client_loop(c, pairs, k * 7, t0 + duration, lv) for k in range(clients)))
        lv.seconds = time.perf_counter() - t0
    return lv


def baseline(pairs: list, duration: float) -> Level:
    """facelm.compare in this process, one pair at a time: the work without HTTP or queueing."""
    import facelm
    from facelm.api import analyze
    analyze(pairs[0][1], name="warm-up")
    lv = Level(0)
    t0 = time.perf_counter()
    i = 0
    while time.perf_counter() - t0 < duration:
        na, a, nb, b = pairs[i % len(pairs)]
        i += 1
        t = time.perf_counter()
        facelm.compare(analyze(a, name=na), analyze(b, name=nb))
        lv.ok.append(time.perf_counter() - t)
    lv.seconds = time.perf_counter() - t0
    return lv


def start_server(workers: int, queue: int) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "facelm.cli", "serve", "--port", str(port),
                             "--workers", str(workers), "--queue", str(queue), "--log-level", "warning"],
                            env={**os.environ, "FACELM_TOKEN": ""})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:  # a crash at start-up ends the wait
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    if proc.poll() is not None:
        raise SystemExit(f"the server exited with status {proc.returncode} before it was ready")
    proc.kill()
    raise SystemExit("the server did not start within 180 s")


def row(name: str, lv: Level) -> str:
    ms = lambda v: f"{v * 1000:.0f}"  # noqa: E731
    errors = ", ".join(f"{k}: {v}" for k, v in sorted(lv.errors.items())) or "0"
    busy_p50 = ms(pct(lv.busy, 50)) if lv.busy else "–"
    health = f"{ms(pct(lv.health, 50))} / {ms(pct(lv.health, 95))}" if lv.health else "–"
    return (f"| {name} | {len(lv.ok) + len(lv.busy) + sum(lv.errors.values())} | "
            f"{len(lv.ok) / lv.seconds:.2f} | {ms(pct(lv.ok, 50))} | {ms(pct(lv.ok, 95))} | "
            f"{len(lv.busy)} | {busy_p50} | {errors} | {health} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", default="1,2,4,8,16,32", help="client counts, comma-separated")
    ap.add_argument("--duration", type=float, default=15.0, help="seconds per client count")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--queue", type=int, default=8)
    ap.add_argument("--pairs", type=int, default=100, help="LFW View 1 test pairs to cycle through")
    ap.add_argument("--out", type=Path, help="also write the markdown table here")
    args = ap.parse_args()
    pairs = load_pairs(args.pairs)
    lines = [f"workers {args.workers}, queue bound {args.queue}, {args.duration:g} s per row, "
             f"{len(pairs)} LFW View 1 test pairs (250x250 JPEG), {os.cpu_count()} CPU cores", "",
             "| clients | requests | ok/s | p50 ms | p95 ms | 503s | 503 p50 ms | other errors "
             "| /healthz p50 / p95 ms |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines.append(row("in-process `facelm.compare` (baseline)", baseline(pairs, args.duration)))
    print("\n".join(lines), flush=True)
    proc, url = start_server(args.workers, args.queue)
    try:
        for n in (int(x) for x in args.clients.split(",")):
            lines.append(row(str(n), asyncio.run(run_level(url, pairs, n, args.duration))))
            print(lines[-1], flush=True)
        health = httpx.get(url + "/healthz", timeout=10).json()
        alive = proc.poll() is None and health["status"] == "ok" and health["in_progress"] == 0
        lines += ["", f"server alive and idle after the run: {alive} "
                      f"(completed {health['completed']}, rejected busy {health['rejected_busy']})"]
        print(lines[-1])
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
