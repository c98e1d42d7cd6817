"""The Ray engine at its edges: an --address where no cluster runs is refused in seconds with one
line and nothing written; a run killed with kill -9 leaves no Ray process behind, and running it
again completes the table with the local pool's results. Real Ray, real LFW photos."""
from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from facelm.errors import FaceLMError
from facelm.table import analyze_to_parquet, read_table

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")

# The table of the photos on argv[2:] into argv[1] with a local Ray cluster, in parts of 4 rows
# (so that a kill mid-job leaves finished parts), as `facelm analyze --images --engine ray` does.
RUN = ("import sys; from pathlib import Path; from facelm.table import analyze_to_parquet; "
       "analyze_to_parquet(sys.argv[2:], Path(sys.argv[1]), workers=1, engine='ray', "
       "part_rows=4, progress=False)")


@pytest.fixture(scope="module")
def photos(lfw_dir: Path) -> list[str]:
    return [str(p) for p in sorted(lfw_dir.glob("images/C*/*.jpg"))[:24]]


def _alive(procs: list[psutil.Process]) -> list[str]:
    """The processes of `procs` still running (a zombie has exited: it holds nothing)."""
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(f"{p.pid} {p.name()}")
        except psutil.NoSuchProcess:
            pass
    return out


def _gone_within(procs: list[psutil.Process], seconds: float) -> list[str]:
    deadline = time.monotonic() + seconds
    while _alive(procs) and time.monotonic() < deadline:
        time.sleep(0.2)
    return _alive(procs)


@pytest.mark.parametrize("address", ["127.0.0.1:1", "no-such-host.invalid:6379"])
def test_cli_refuses_an_address_without_a_cluster_fast_and_writes_nothing(photos, tmp_path,
                                                                          address):
    csv = tmp_path / "photos.csv"
    csv.write_text("file\n" + "".join(p + "\n" for p in photos[:2]))
    out = tmp_path / "t.parquet"
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "facelm.cli", "analyze", "--images", str(csv),
                           "--out", str(out), "--fast", "--engine", "ray", "--address", address],
                          capture_output=True, text=True, timeout=120)
    took = time.monotonic() - start   # Ray's own retries: minutes (> 80 s measured)
    err = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and took < 15, (proc.returncode, took, proc.stderr[-2000:])
    assert len(err) == 1, proc.stderr
    assert f"cannot join the Ray cluster '{address}'" in err[0] and "ray start --head" in err[0]
    assert "leave out --address" in err[0]
    assert not out.exists() and not Path(str(out) + ".lock").exists()


@pytest.mark.parametrize("command", ["verify", "pairs"])
def test_batch_jobs_refuse_a_missing_cluster_before_writing(photos, tmp_path, command):
    """verify --pairs (and eval verify, through the same batch runner) and data pairs check the
    address before their output file or folder exists."""
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(f"file_a,file_b\n{photos[0]},{photos[1]}\n")
    out = tmp_path / ("v.jsonl" if command == "verify" else "ds")
    args = (["verify", "--pairs", str(pairs), "--out", str(out)] if command == "verify" else
            ["data", "pairs", "--images", str(pairs), "--out", str(out), "--teacher", "evidence"])
    proc = subprocess.run([sys.executable, "-m", "facelm.cli", *args, "--engine", "ray",
                           "--address", "127.0.0.1:1"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "cannot join the Ray cluster '127.0.0.1:1'" in proc.stderr, \
        proc.stderr[-2000:]
    assert not out.exists(), sorted(tmp_path.iterdir())


def test_check_address_accepts_a_running_cluster_and_refuses_a_web_server(tmp_path):
    from facelm.engines import check_address
    # on every interface: Ray, and so check_address, reads 127.0.0.1 as the node's IP
    web = http.server.ThreadingHTTPServer(("", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        with pytest.raises(FaceLMError, match="not a Ray"):
            check_address(f"127.0.0.1:{web.server_address[1]}")
    finally:
        web.shutdown()
    assert not ray.is_initialized()   # another module's cluster would not be ours to stop
    ray.init(num_cpus=1, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        gcs = ray.get_runtime_context().gcs_address
        check_address(gcs)   # as `ray status` prints it, and through localhost as users type it
        check_address("127.0.0.1:" + gcs.rpartition(":")[2])
    finally:
        ray.shutdown()


def test_kill_9_leaves_no_ray_process_and_a_rerun_completes_identically(photos, tmp_path):
    out = tmp_path / "k.parquet"
    proc = subprocess.Popen([sys.executable, "-c", RUN, str(out), *photos])
    deadline = time.monotonic() + 120
    while not list(out.glob("part-*.parquet")) and proc.poll() is None:
        assert time.monotonic() < deadline, "no part written in 120 s"
        time.sleep(0.05)
    ray_procs = psutil.Process(proc.pid).children(recursive=True)   # the cluster it started
    names = {p.name() for p in ray_procs}
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "finished before the kill: the test proves nothing"
    # the two that Ray 2.60 alone leaves for ~60 s: the test would fail without the watchdog
    assert {"raylet", "gcs_server", "ray::DashboardAgent", "ray::RuntimeEnvAgent"} <= names, names
    assert _gone_within(ray_procs, 10) == []
    before = {r["path"] for r in read_table(out).to_pylist()}
    assert 0 < len(before) < len(photos)

    rerun = subprocess.Popen([sys.executable, "-c", RUN, str(out), *photos])
    seen: list[psutil.Process] = []
    while rerun.poll() is None:   # what the rerun starts, noted as it goes
        try:
            seen += [p for p in psutil.Process(rerun.pid).children(recursive=True) if p not in seen]
        except psutil.NoSuchProcess:
            break
        time.sleep(0.2)
    assert rerun.wait(timeout=120) == 0 and seen
    assert _gone_within(seen, 10) == []   # a run that ends normally leaves nothing either
    rows = read_table(out).to_pylist()
    assert sorted(r["path"] for r in rows) == sorted(photos)   # each photo once
    local = tmp_path / "local.parquet"
    analyze_to_parquet(photos, local, workers=1, progress=False)
    want = {r["path"]: r for r in read_table(local).to_pylist()}
    assert all(r == want[r["path"]] for r in rows)   # every column, embeddings included
