"""Workers die with their parent (issue 14, item 7): `kill -9` of a batch or of the server leaves no
process behind, with real processes on real photos.

A killed worker counts as gone once it is a zombie: in a container, init may never reap it, and a
zombie holds no memory. With the guard in facelm.workers disabled, every kill test below fails
with live orphans (checked).
"""
from __future__ import annotations

import csv
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import httpx
import psutil
import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "facelm"
FACELM = [sys.executable, "-m", "facelm.cli"]
GONE_WITHIN_S = 5.0   # the target: no orphan process 5 s after kill -9


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_for(cond: Callable[[], bool], timeout: float, what: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert proc.poll() is None, f"the process exited (rc {proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _kill_parent(proc: subprocess.Popen) -> tuple[dict[psutil.Process, str], float]:
    """kill -9 `proc`, then ({descendant: its command line} as they were before, seconds until
    the last one was gone)."""
    kids = {k: " ".join(k.cmdline()) for k in psutil.Process(proc.pid).children(recursive=True)}
    assert proc.poll() is None, "the parent must still be running when it is killed"
    t0 = time.monotonic()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    while any(map(_alive, kids)) and time.monotonic() - t0 < GONE_WITHIN_S:
        time.sleep(0.02)
    return kids, time.monotonic() - t0


def _assert_gone(kids: dict[psutil.Process, str], seconds: float) -> None:
    left = [k.pid for k in kids if _alive(k)]
    for k in kids:            # never leave orphans behind, whatever the verdict
        if _alive(k):
            k.kill()
    assert not left, f"orphans {GONE_WITHIN_S:.0f} s after kill -9 of their parent: {left}"
    assert seconds < GONE_WITHIN_S


# -- the mechanism, in a tiny pool (no models) -------------------------------------------------

POOL_SCRIPT = """
import multiprocessing, os, sys, time
import facelm.workers as w
if __name__ == "__main__":
    context, mechanism = sys.argv[1:]
    if mechanism != "prctl":   # as without prctl (macOS): the watcher thread
        w._set_pdeathsig = lambda sig: False
    if mechanism == "poll":    # as without pidfd (macOS, Linux < 5.3)
        del os.pidfd_open
    pool = w.process_pool(2, mp_context=multiprocessing.get_context(context),
                          initializer=os.write, initargs=(1, b"init\\n"))
    list(pool.map(time.sleep, [0.2, 0.2]))   # both workers started, now idle on the pipe
    os.write(1, b"ready\\n")
    time.sleep(60)
"""


# "forkserver" (Python 3.14's default): the workers are the fork server's children, and the fork
# server outlives us unless they die (each holds its keep-alive pipe). The patches above reach
# only forked workers: a fork server's workers use their default (pidfd on Linux).
@pytest.mark.parametrize("context, mechanism", [("fork", "prctl"), ("fork", "pidfd"),
                                                ("fork", "poll"), ("forkserver", "default")])
def test_pool_workers_exit_when_the_maker_is_killed(context: str, mechanism: str,
                                                    tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    with open(out, "wb") as f, open(tmp_path / "log.txt", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", POOL_SCRIPT, context, mechanism], stdout=f,
                                stderr=log)
    try:
        _wait_for(lambda: b"ready" in out.read_bytes(), 30, "the pool to start", proc)
        # the pool's own initializer still runs, once in each worker, after the guard
        assert out.read_bytes().count(b"init\n") == 2
        kids, seconds = _kill_parent(proc)
        assert len(kids) == (2 if context == "fork" else 4), list(kids.values())   # + server, tracker
        _assert_gone(kids, seconds)
        print(f"{context}/{mechanism}: all gone {seconds:.2f} s after kill -9")
        if mechanism == "poll":   # within one poll period, and some slack
            assert seconds < 2.0
    finally:
        proc.kill()
        proc.wait()


def test_a_worker_whose_parent_died_before_the_guard_exits_at_once() -> None:
    # The race the guard closes: the parent dies between the fork and prctl, so the worker is
    # already re-parented and no signal will come. Simulated by naming a parent that has ended.
    code = "import sys; from facelm.workers import die_with_parent; " \
           "die_with_parent(int(sys.argv[1])); print('survived')"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = subprocess.run([sys.executable, "-c", code, str(dead.pid)], capture_output=True,
                            text=True, timeout=30)
    assert orphan.returncode == 1 and "survived" not in orphan.stdout, orphan.stderr
    child = subprocess.run([sys.executable, "-c", code, str(os.getpid())], capture_output=True,
                           text=True, timeout=30)
    assert child.returncode == 0 and "survived" in child.stdout, child.stderr


def test_every_process_pool_in_facelm_has_the_guard() -> None:
    # A bare ProcessPoolExecutor(...) anywhere in the package would bring the orphans back.
    bare = [f"{p.relative_to(SRC)}:{i}" for p in SRC.rglob("*.py") if p.name != "workers.py"
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
            if re.search(r"\b(ProcessPoolExecutor|multiprocessing\.Pool|mp\.Pool)\(", line)]
    assert not bare, f"use facelm.workers.process_pool instead: {bare}"


# -- the real commands -----------------------------------------------------------------------

def test_kill_9_of_verify_pairs_leaves_no_worker(lfw_dir: Path, lfw_pairs: list[dict], tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.csv"
    with open(pairs, "w", newline="") as f:   # far more than can finish before the kill
        w = csv.DictWriter(f, fieldnames=["file_a", "file_b"])
        w.writeheader()
        w.writerows({"file_a": r["file_a"], "file_b": r["file_b"]} for r in lfw_pairs[:300])
    out = tmp_path / "res.jsonl"
    with open(tmp_path / "log.txt", "wb") as log:
        proc = subprocess.Popen([*FACELM, "verify", "--pairs", str(pairs), "--root", str(lfw_dir),
                                 "--out", str(out), "--workers", "2", "--fast"],
                                stdout=log, stderr=log)
    try:
        # the first record: both workers have loaded their models and are working
        _wait_for(lambda: out.exists() and out.stat().st_size > 0, 120, "the first record", proc)
        kids, seconds = _kill_parent(proc)
        assert len(kids) == 2, list(kids.values())
        _assert_gone(kids, seconds)
        print(f"verify --pairs: workers gone {seconds:.2f} s after kill -9")
    finally:
        proc.kill()
        proc.wait()


def test_kill_9_of_data_qa_leaves_no_worker(utk_dir: Path, tmp_path: Path) -> None:
    # data qa starts its pool lazily, from the job's event loop, at the first photo it needs
    with open(utk_dir / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))[:200]
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with open(tmp_path / "log.txt", "wb") as log:
        proc = subprocess.Popen([*FACELM, "data", "qa", "--images", str(utk_dir), "--labels",
                                 str(labels), "--out", str(tmp_path / "qa"), "--teacher", "evidence",
                                 "--quiet", "--workers", "2"], stdout=log, stderr=log)
    try:
        _wait_for(lambda: len(psutil.Process(proc.pid).children()) == 2, 60, "two workers", proc)
        time.sleep(1.0)   # let them start analysing (loading their models)
        kids, seconds = _kill_parent(proc)
        assert len(kids) == 2, list(kids.values())
        _assert_gone(kids, seconds)
        print(f"data qa: workers gone {seconds:.2f} s after kill -9")
    finally:
        proc.kill()
        proc.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_kill_9_of_the_server_leaves_no_worker(tmp_path: Path) -> None:
    port = _free_port()
    # --no-warm: the workers still start and load the chat model; warming (one analysis in each)
    # would only make the test slower, the guard being armed before any of it
    with open(tmp_path / "log.txt", "wb") as log:
        proc = subprocess.Popen([*FACELM, "serve", "--port", str(port), "--workers", "2",
                                 "--no-warm"], stdout=log, stderr=log)

    def ready() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json().get("ready") is True
        except (httpx.HTTPError, ValueError):
            return False

    try:
        _wait_for(ready, 120, "the server to be ready", proc)
        kids, seconds = _kill_parent(proc)
        # two workers (and multiprocessing's resource tracker, which exits once they are gone)
        workers = [k for k, cmd in kids.items() if "spawn_main" in cmd]
        assert len(workers) == 2, list(kids.values())
        _assert_gone(kids, seconds)
        print(f"serve: workers gone {seconds:.2f} s after kill -9")
    finally:
        proc.kill()
        proc.wait()
