"""The engines that run `table.analyse_batch` over many photos: a local process pool (the default,
no extra packages) or Ray Data (`--engine ray`, the `scale` extra), on this machine or a cluster.

Both call the same per-batch function and hand its rows to the same `write` (table.PartWriter.write)
in this process, in parts of `part_rows`: the output format, the failure semantics (a bad photo is a
row with `error`) and resuming are the engine's business nowhere. Ray Data restarts a dead actor and
retries its batch (its defaults: max_restarts=-1, max_task_retries=-1); rows only reach the table
through this process, so a retried batch is never written twice.
"""
from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any, Callable, Iterator

from .errors import FaceLMError

BATCH = 8          # photos per task: small enough to spread 2 workers evenly, big enough to amortise
ENGINES = ("local", "ray")
Rows = list[dict[str, Any]]


def run_engine(paths: list[str], write: Callable[[Rows], None], *, engine: str = "local",
               address: str | None = None, workers: int = 2, fast: bool = True,
               progress: bool = True, part_rows: int = 256) -> tuple[int, int]:
    """Analyse `paths` into table rows with `engine`, handing them to `write` in parts of at
    least `part_rows` (the last one smaller); (written, failed)."""
    from .table import analyse_batch
    written = failed = 0
    buffer: Rows = []
    with _progress(len(paths), progress) as bar:
        try:
            for rows in iter_batches(analyse_batch, paths, engine=engine, address=address,
                                     workers=workers, fast=fast):
                buffer += rows
                failed += sum(r.get("error") is not None for r in rows)
                bar.update(len(rows))
                if len(buffer) >= part_rows:
                    write(buffer)
                    written += len(buffer)
                    buffer = []
        finally:   # also when a worker died or the user pressed Ctrl-C: keep what is finished
            write(buffer)
    return written + len(buffer), failed


def iter_batches(fn: Callable[..., list], items: list[str], *, engine: str = "local",
                 address: str | None = None, workers: int = 2, **kwargs: Any) -> Iterator[list]:
    """`fn(batch, **kwargs)` (a module-level function: one result per item, never raising for
    one item) over `items` in batches of BATCH, with `engine`; the result lists in completion
    order. Each engine keeps one copy of the models per worker process or actor."""
    check_engine(engine, address)
    if not items:
        return iter(())
    chunks = [items[i:i + BATCH] for i in range(0, len(items), BATCH)]
    if engine == "ray":
        return _ray_batches(fn, chunks, workers, address, kwargs)
    return _local_batches(fn, chunks, workers, kwargs)


def check_engine(engine: str, address: str | None) -> None:
    if engine not in ENGINES:
        raise FaceLMError(f"unknown engine {engine!r}", item="--engine", hint="use local or ray")
    if engine == "local" and address:
        raise FaceLMError("--address works with --engine ray only", item="--address",
                          hint="add --engine ray, or leave out --address")
    if engine == "ray":
        _import_ray()   # before any work: a missing Ray is one line, not a half-started run
        if address:     # and before the output exists: an unreachable cluster writes nothing
            check_address(address)


def _local_batches(fn: Callable[..., list], chunks: list[list[str]], workers: int,
                   kwargs: dict[str, Any]) -> Iterator[list]:
    """Through facelm's process pool (workers die with this process), a few batches per worker
    in flight, so that millions of photos do not become millions of futures at once."""
    if workers <= 1:
        yield from (fn(c, **kwargs) for c in chunks)
        return
    from concurrent.futures.process import BrokenProcessPool
    from .workers import process_pool
    with process_pool(workers) as pool:
        pending: set[Future] = set()
        todo = iter(chunks)
        while True:
            for chunk in todo:
                pending.add(pool.submit(fn, chunk, **kwargs))
                if len(pending) >= 4 * workers:
                    break
            if not pending:
                return
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in finished:
                try:
                    yield f.result()
                except BrokenProcessPool:
                    raise FaceLMError("a worker process died (killed, or out of memory); what was "
                                      "finished is kept", hint="run the same command again to "
                                      "continue") from None


class RayBatch:
    """The Ray Data actor: `fn` on each batch of paths; models load once per actor (on its first
    photo, as in a pool worker). Results travel pickled, one bytes value per item, so that any
    result (a table row, a FaceAnalysis) crosses Ray exactly as it crosses a process pool."""

    def __init__(self, fn: Callable[..., list], kwargs: dict[str, Any]):
        self.fn, self.kwargs = fn, kwargs

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import pickle
        import numpy as np
        results = self.fn([str(p) for p in batch["item"]], **self.kwargs)
        return {"result": np.array([pickle.dumps(r, protocol=5) for r in results], dtype=object)}


def _ray_batches(fn: Callable[..., list], chunks: list[list[str]], workers: int,
                 address: str | None, kwargs: dict[str, Any]) -> Iterator[list]:
    import pickle
    ray = _import_ray()
    import ray.data
    if not ray.is_initialized():
        _start_ray(ray, address)
    ray.data.DataContext.get_current().enable_progress_bars = False  # ours counts photos
    logging.getLogger("ray.data").setLevel(logging.WARNING)   # no per-run INFO lines on stderr
    ds = ray.data.from_items([{"item": p} for c in chunks for p in c],
                             override_num_blocks=min(len(chunks), 1000))
    ds = ds.map_batches(RayBatch, fn_constructor_kwargs={"fn": fn, "kwargs": kwargs},
                        batch_size=BATCH, num_cpus=1, batch_format="numpy",
                        compute=ray.data.ActorPoolStrategy(size=max(1, workers)))
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        yield [pickle.loads(b) for b in batch["result"]]


def _start_ray(ray: Any, address: str | None) -> None:
    """Join the cluster at `address` ("auto": the one `ray start` made on this machine), or with
    None start a private local cluster for this run, watched by `_guard_local_cluster`."""
    try:   # check_engine has checked `address` (iter_batches calls it first)
        ray.init(address=address, logging_level="WARNING", log_to_driver=False,
                 include_dashboard=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        if address is None:
            raise FaceLMError(f"cannot start a local Ray cluster ({str(exc).splitlines()[0]})",
                              item="--engine", hint="see docs/scale.md, or use --engine "
                              "local") from None
        raise _cannot_join(address, str(exc).splitlines()[0]) from None
    if address is None:
        _guard_local_cluster(ray)


# --- joining a cluster: refuse an address where none runs, in seconds --------------------------

CONNECT_TIMEOUT = 3.0   # seconds for the TCP connection and the gRPC server's first frame
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes(3) + b"\x04" + bytes(5)  # + SETTINGS


def check_address(address: str) -> None:
    """Refuse, within CONNECT_TIMEOUT, a Ray address where no Ray (gRPC) server answers. Needed
    because ray.init (Ray 2.60) retries an unreachable GCS for minutes (measured: >120 s for
    127.0.0.1:1, >80 s for a name that does not resolve) before failing."""
    try:
        host, port = _bootstrap_address(address)
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT) as sock:
            if os.environ.get("RAY_USE_TLS", "0") in ("0", ""):   # TLS: a TCP answer must do
                sock.sendall(H2_PREFACE)   # a gRPC server answers with its SETTINGS frame
                head = sock.recv(9)
                if len(head) < 4 or head[3] != 4:
                    raise OSError("something answers there, but not a Ray (gRPC) server")
    except socket.timeout:
        raise _cannot_join(address, f"no answer within {CONNECT_TIMEOUT:g} s") from None
    except (OSError, ConnectionError, ValueError) as exc:
        raise _cannot_join(address, str(exc).splitlines()[0] if str(exc) else
                           type(exc).__name__) from None


def _bootstrap_address(address: str) -> tuple[str, int]:
    """(host, port) that ray.init would connect to: "auto" and localhost resolved by Ray's own
    rules (GCS listens on the node's IP), ray:// (Ray Client) taken as given."""
    if address.startswith("ray://"):
        hostport, default = address[len("ray://"):].split("/")[0], 10001
    else:
        from ray._private.services import canonicalize_bootstrap_address
        hostport, default = canonicalize_bootstrap_address(address) or "", 6379
    host, sep, port = hostport.rpartition(":")
    host, port = (host, port) if sep and port.isdigit() else (hostport, str(default))
    if not host.strip("[]"):
        raise ValueError(f"not HOST:PORT: {address!r}")
    return host.strip("[]"), int(port)


def _cannot_join(address: str | None, why: str) -> FaceLMError:
    return FaceLMError(f"cannot join the Ray cluster {address!r}: {why}", item="--address",
                       hint="start it with `ray start --head` (docs/scale.md), or leave out "
                       "--address to start a local one")


# --- a local cluster dies with this process, kill -9 included ----------------------------------

_WATCHDOG: subprocess.Popen | None = None   # referenced, so that its stdin pipe stays open


def _guard_local_cluster(ray: Any) -> None:
    """Start a watchdog that kills the local cluster's processes once this process is gone.
    Ray 2.60 starts gcs_server and raylet with PR_SET_PDEATHSIG (they die with this process) and
    workers exit when their raylet does, but after a kill -9 ray::DashboardAgent and
    ray::RuntimeEnvAgent spend ~60 s reporting to the dead GCS before exiting (measured)."""
    global _WATCHDOG
    try:
        node = ray._private.worker._global_node
        roots = [p.process.pid for procs in node.all_processes.values() for p in procs]
    except AttributeError:   # another Ray layout: its own fate-sharing is all there is
        return
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # facelm's parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [here, os.environ.get(
        "PYTHONPATH")]))}
    # its own session: a Ctrl-C to this process's group must not stop the watchdog first
    _WATCHDOG = subprocess.Popen(
        [sys.executable, "-c", "import sys; from facelm.engines import watch; "
         "watch([int(a) for a in sys.argv[1:]])", *map(str, roots)],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        start_new_session=True)


def watch(roots: list[int]) -> None:
    """The watchdog: every second, note `roots` and their descendants; when stdin reaches EOF
    (the driver died: the kernel closed its end of the pipe), kill every noted process still
    running. psutil's kill checks the create time, so a reused PID is never hit."""
    import select
    import psutil
    seen: dict[int, psutil.Process] = {}
    while True:
        for pid in roots:
            try:
                root = psutil.Process(pid)
                for p in [root, *root.children(recursive=True)]:
                    seen.setdefault(p.pid, p)
            except psutil.Error:
                pass
        seen = {pid: p for pid, p in seen.items() if p.is_running()}
        if select.select([sys.stdin], [], [], 1.0)[0] and not os.read(sys.stdin.fileno(), 4096):
            break
    for p in seen.values():
        try:
            p.kill()
        except psutil.Error:
            pass


def _import_ray() -> Any:
    try:
        import ray
    except ModuleNotFoundError:
        raise FaceLMError("--engine ray needs Ray, which is not installed", item="--engine",
                          hint="bash scripts/setup.sh --scale, or pip install 'facelm[scale]'") from None
    return ray


def _progress(total: int, enabled: bool) -> Any:
    from tqdm import tqdm
    return tqdm(total=total, unit="photo", desc="analysing", disable=not enabled)

