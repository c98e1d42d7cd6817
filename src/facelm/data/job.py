"""The engine under `facelm data qa` and `facelm data pairs`: async units of work over a resumable
store, a bound on requests in flight, each photo analysed once, refusal retries, a manifest.

A job is a list of units (one per record to write, or per record group); each unit is an async
function that asks the teacher through `JobContext.ask` and writes records or failures to the
store. Units already finished in an earlier run are skipped before the job starts.
"""
from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from ..errors import FaceLMError, InputFormatError
from ..teacher.base import Task, Teacher, TeacherFatalError, TeacherReply
from ..teacher.checks import is_refusal
from ..teacher.registry import make_teacher
from ..workers import process_pool
from .store import DatasetStore, jsonable, now_iso, read_manifest

MANIFEST_EVERY_S = 5.0


class RefusalError(FaceLMError):
    """The teacher refused, also after the stricter prompt(s)."""


@dataclass
class RunCounts:
    """What this run did (the manifest also totals the runs before it)."""
    records: int = 0
    failures: int = 0
    skipped: int = 0            # finished by an earlier run
    requests: int = 0
    refusals: int = 0           # refused replies seen (each retried with the strict prompt)
    refusals_recovered: int = 0  # items answered after a refusal
    leakage: int = 0            # items whose student question would reveal a label
    verdict_contradictions: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    failure_reasons: Counter = field(default_factory=Counter)


@dataclass
class JobContext:
    store: DatasetStore
    teacher: Teacher
    concurrency: int = 8
    refusal_retries: int = 2
    workers: int = 1
    engine: str = "local"       # "ray": every photo analysed up front by Ray Data (preload)
    address: str | None = None
    counts: RunCounts = field(default_factory=RunCounts)
    uses: Counter = field(default_factory=Counter)  # path -> units still needing its analysis

    def __post_init__(self) -> None:
        # --concurrency is per endpoint: a teacher with several endpoints takes their sum.
        self.concurrency = self.teacher.slots(max(1, self.concurrency))
        self.sem = asyncio.Semaphore(max(1, self.concurrency))
        self._sem_in_teacher = self.teacher.share_limit(self.sem)
        self._analyses: dict[str, asyncio.Future] = {}
        self.preloaded: dict[str, Any] = {}   # analyses computed before the job (pair sampling)
        self._executor: Executor | None = None
        self.cost_known = True

    async def analysis(self, path: str) -> Any:
        """The FaceAnalysis of `path`, computed once however many units ask (FaceLMError if none)."""
        if path in self.preloaded:
            if isinstance(self.preloaded[path], Exception):   # --engine ray: a failed photo
                raise self.preloaded[path]
            return self.preloaded[path]
        fut = self._analyses.get(path)
        if fut is None:
            if self._executor is None:
                # One thread by default: the face models are not known to be thread-safe, and a
                # thread keeps the event loop (and the teacher's requests) running meanwhile.
                self._executor = (process_pool(self.workers) if self.workers > 1
                                  else ThreadPoolExecutor(1))
            loop = asyncio.get_running_loop()
            from ..faces.analysis import analyse_or_error  # cv2 and the models load on first use
            fut = loop.run_in_executor(self._executor, analyse_or_error, path)
            self._analyses[path] = fut
        result = await fut
        if isinstance(result, Exception):
            raise result
        return result

    def release(self, *paths: str) -> None:
        """A unit is done with these photos: drop analyses no later unit needs."""
        for p in paths:
            self.uses[p] -= 1
            if self.uses[p] <= 0:
                self._analyses.pop(p, None)
                self.preloaded.pop(p, None)

    async def ask(self, build: Callable[[bool], Task]) -> TeacherReply:
        """The teacher's reply to build(strict=False), retried with build(strict=True) while it
        refuses; raises RefusalError when every attempt was a refusal."""
        for attempt in range(1 + self.refusal_retries):
            task = build(attempt > 0)
            if self._sem_in_teacher:
                reply = await self.teacher.complete(task)
            else:
                async with self.sem:
                    reply = await self.teacher.complete(task)
            self._account(reply)
            if not is_refusal(reply.text):
                self.counts.refusals_recovered += attempt > 0
                return reply
            self.counts.refusals += 1
        raise RefusalError(f"the teacher refused {1 + self.refusal_retries} times; last reply: "
                           f"{reply.text[:120]!r}")

    def _account(self, reply: TeacherReply) -> None:
        u = reply.usage
        self.counts.requests += int(u.get("attempts", 1) or 1)
        self.counts.prompt_tokens += int(u.get("prompt_tokens", 0) or 0)
        self.counts.completion_tokens += int(u.get("completion_tokens", 0) or 0)
        if u.get("cost_usd") is None:
            self.cost_known = self.cost_known and "prompt_tokens" not in u
        else:
            self.counts.cost_usd += float(u["cost_usd"])

    def fail(self, item_id: str, exc: BaseException, **extra: Any) -> None:
        reason = failure_reason(exc)
        self.store.add_failure(item_id, reason, str(exc), **extra)
        self.counts.failures += 1
        self.counts.failure_reasons[reason] += 1

    async def item(self, item_id: str, make: Callable[[], Awaitable[Any]],
                   release: tuple[str, ...] = (), **failure: Any) -> None:
        """Store the record `make()` returns, or its FaceLMError as the item's failure (with
        `failure` as extra fields); a TeacherFatalError stops the job. Then release `release`."""
        try:
            self.store.add_record(await make())
            self.counts.records += 1
        except TeacherFatalError:
            raise
        except FaceLMError as exc:
            self.fail(item_id, exc, **failure)
        finally:
            self.release(*release)

    def preload(self, progress: bool = True) -> None:
        """With --engine ray: analyse every photo the remaining units need up front, by Ray
        Data with the per-batch function of `verify --pairs`, instead of one at a time here."""
        todo = [p for p, n in self.uses.items() if n > 0 and p not in self.preloaded]
        if self.engine != "ray" or not todo:
            return
        from tqdm import tqdm
        from ..batch import analyse_paths
        from ..engines import iter_batches
        with tqdm(total=len(todo), desc="analysing", unit="photo", disable=not progress) as bar:
            for batch in iter_batches(analyse_paths, todo, engine="ray", address=self.address,
                                      workers=self.workers, fast=False):
                self.preloaded.update(batch)
                bar.update(len(batch))

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)


def failure_reason(exc: BaseException) -> str:
    """A short, countable reason: no_face, bad_image, refusal, teacher_error, ..."""
    kind = getattr(exc, "kind", type(exc).__name__)
    return {"NoFaceError": "no_face", "ImageLoadError": "bad_image",
            "ImageTooLargeError": "bad_image", "RefusalError": "refusal",
            "TeacherError": "teacher_error", "LeakageError": "leakage",
            "VerdictError": "verdict_contradiction"}.get(kind, "error")


Unit = Callable[[JobContext], Awaitable[None]]


async def run_units(ctx: JobContext, units: list[Unit], manifest: Callable[[str], None],
                    desc: str, progress: bool = True) -> None:
    """Run `units` with `ctx.concurrency` workers; a TeacherFatalError stops the whole job."""
    from tqdm import tqdm
    queue = list(reversed(units))
    bar = tqdm(total=len(units), desc=desc, unit="item", disable=not progress, smoothing=0.05)

    async def worker() -> None:
        while queue:
            await queue.pop()(ctx)   # a TeacherFatalError ends this worker and the job
            bar.update(1)
            if ctx.cost_known and ctx.counts.cost_usd:
                bar.set_postfix_str(f"${ctx.counts.cost_usd:.4f}", refresh=False)

    async def heartbeat() -> None:
        while True:
            await asyncio.sleep(MANIFEST_EVERY_S)
            ctx.store.sync(wait=False)
            manifest("running")

    beat = asyncio.ensure_future(heartbeat())
    # More workers than slots: a unit whose request waits to be retried holds no slot, and
    # another unit's request takes it (the teacher's semaphore bounds requests in flight).
    n_workers = max(1, ctx.concurrency) * (2 if ctx._sem_in_teacher else 1)
    workers = [asyncio.ensure_future(worker()) for _ in range(n_workers)]
    try:
        await asyncio.gather(*workers)
    finally:
        for w in workers + [beat]:
            w.cancel()   # after a fatal error: stop the others' requests now
        await asyncio.gather(*workers, beat, return_exceptions=True)
        bar.close()
        ctx.store.sync()


def counts_line(m: dict[str, Any]) -> str:
    """One line for the terminal: what is in the folder now, and what this run did."""
    c, run, cost = m["counts"], m["runs"][-1], m["usage"]["cost_usd"]
    return (f"{c['records']} records, {c['failures']} failures ({run['records']} and "
            f"{run['failures']} this run, {run['skipped']} done earlier); {c['refusals']} refusals "
            f"({c['refusals_recovered']} recovered), {c['leakage']} leakage, "
            f"{c['verdict_contradictions']} verdict contradictions; "
            f"{m['usage']['requests']} requests, "
            + (f"${cost:.4f}" if cost is not None else "cost unknown (no price for this model)"))


def check_same_job(previous: dict[str, Any], kind: str, teacher: str, prompt_version: str,
                   out: str) -> None:
    """A folder holds one dataset: resuming it with another teacher or other prompts would mix
    two datasets under one manifest, so that is refused."""
    if not previous:
        return
    # The endpoint may move (another port, another host serving the same model): compare models.
    before = (previous.get("kind"), str(previous.get("teacher", {}).get("name")).split("@")[0],
              previous.get("prompt_version"))
    if before != (kind, teacher.split("@")[0], prompt_version):
        raise InputFormatError(
            f"this folder holds a {before[0]} dataset from teacher {before[1]} with prompts "
            f"{before[2]}; this job is {kind}, {teacher}, {prompt_version}", item=out,
            hint="use a new --out folder, or the same options as before to resume")


def build_manifest(kind: str, status: str, ctx: JobContext, config: Any, extra: dict[str, Any],
                   started: str, total_items: int, previous: dict[str, Any]) -> dict[str, Any]:
    """The manifest: config, totals over every run (from the files), this run's counts, cost."""
    c = ctx.counts
    this_run = {**{k: v for k, v in dataclasses.asdict(c).items() if k != "failure_reasons"},
                "failure_reasons": dict(c.failure_reasons), "started": started,
                "updated": now_iso(), "status": status}
    runs = [r for r in previous.get("runs", []) if r.get("started") != started] + [this_run]
    reasons: Counter = Counter(ctx.store.earlier_reasons)
    reasons.update(c.failure_reasons)
    cost = sum(float(r.get("cost_usd") or 0) for r in runs)

    def total(*keys: str) -> dict[str, int]:
        return {k: sum(r.get(k, 0) for r in runs) for k in keys}
    return {
        "kind": kind, "status": status, "config": jsonable(config), "teacher": ctx.teacher.config(),
        **extra,
        "counts": {"items": total_items, "records": len(ctx.store.done_ids),
                   "failures": len(ctx.store.failed_ids), "failure_reasons": dict(reasons),
                   **total("refusals", "refusals_recovered", "leakage", "verdict_contradictions")},
        "usage": {**total("requests", "prompt_tokens", "completion_tokens"),
                  "cost_usd": round(cost, 6) if ctx.cost_known else None},
        "runs": runs, "created": previous.get("created", started), "updated": now_iso(),
    }


def open_job(kind: str, cfg: Any, prompt_version: str) -> tuple[JobContext, dict[str, Any]]:
    """The context of a `kind` job into cfg.out (the teacher made, the store opened for resuming)
    and the manifest of the runs before it ({} for a new folder). `cfg` is a QAConfig or a
    PairsConfig: the fields they share name the teacher, the folder and the bounds."""
    teacher = make_teacher(cfg.teacher)
    previous = read_manifest(cfg.out)
    check_same_job(previous, kind, teacher.name, prompt_version, cfg.out)
    store = DatasetStore(cfg.out, retry_failed=cfg.retry_failed)
    ctx = JobContext(store=store, teacher=teacher, concurrency=cfg.concurrency,
                     refusal_retries=cfg.refusal_retries, workers=cfg.workers,
                     engine=cfg.engine, address=cfg.address)
    return ctx, previous


def run_recorded(kind: str, ctx: JobContext, units: list[Unit], cfg: Any, extra: dict[str, Any],
                 total_items: int, previous: dict[str, Any], progress: bool = True) -> dict[str, Any]:
    """Run the job, writing its manifest at the start, on every heartbeat and at the end; returns
    the last manifest written."""
    started, t0 = now_iso(), time.monotonic()
    result: dict[str, Any] = {}

    def manifest(status: str) -> None:
        m = build_manifest(kind, status, ctx, cfg, {**extra, "elapsed_s": round(
            time.monotonic() - t0, 2)}, started, total_items, previous)
        ctx.store.write_manifest(m)
        result.update(m)

    manifest("running")
    run_job(ctx, units, manifest, desc=kind, progress=progress)
    return result


def run_job(ctx: JobContext, units: list[Unit], manifest: Callable[[str], None], desc: str,
            progress: bool = True) -> None:
    """Run a job to the end in a fresh event loop; the manifest says how it ended."""
    async def main() -> None:
        try:
            await run_units(ctx, units, manifest, desc, progress)
        finally:
            await ctx.teacher.aclose()
    status = "stopped"
    try:
        ctx.preload(progress)
        asyncio.run(main())
        status = "complete"
    finally:
        ctx.shutdown()
        ctx.store.close()
        manifest(status)
