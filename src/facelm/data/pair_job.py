"""Pair explanations (the VerLM recipe): per pair, a concise and a detailed explanation that state
the verdict; a record whose stated verdict contradicts the label is dropped and counted.

Two steps like the paper (each face described once, with the description reused by every pair it
is in, then the two descriptions compared by a text-only request) or one step (both photos in one
request). The evidence teacher always works in one step, from measurements.

    facelm data pairs --labels ids.csv --images DIR --out OUT --n-pairs 2000 --hard-negatives
    facelm data pairs --pairs pairs.csv --images DIR --out OUT --teacher openai --model gpt-4o
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import FaceLMError, InputFormatError
from ..outlock import output_lock
from ..teacher.base import Task
from ..teacher.checks import stated_verdict
from ..teacher.prompts import PromptSet, evidence_text, load_prompts
from ..teacher.registry import TeacherSpec
from .job import JobContext, open_job, run_recorded
from .pairs import Pair, read_pairs, sample_pairs, write_pairs
from .schema import PAIR_QUESTIONS, Record
from .sources import LabeledImage, read_labels
from .store import JsonlAppender, now_iso, repair

DESCRIPTIONS = "descriptions.jsonl"
SAMPLED = "pairs.csv"


class VerdictError(FaceLMError):
    """The explanation states a verdict other than the label's (or none)."""


@dataclass(frozen=True)
class PairsConfig:
    images: str
    out: str
    labels: str | None = None
    pairs: str | None = None            # explain these pairs instead of sampling
    teacher: TeacherSpec = field(default_factory=TeacherSpec)
    n_pairs: int = 1000
    hard_negatives: bool = False
    same_group: bool = False
    two_step: bool = True
    tiers: tuple[str, ...] = ("concise", "detailed")
    columns: dict[str, str] = field(default_factory=dict)
    prompts: str | None = None
    grounding: bool = False
    seed: int = 0
    concurrency: int = 8
    refusal_retries: int = 2
    workers: int = 1
    retry_failed: bool = False
    engine: str = "local"               # "ray": the photos are analysed by Ray Data
    address: str | None = None          # the Ray cluster (facelm.engines)


def analyse_many(paths: list[str], workers: int = 1, progress: bool = True,
                 fast: bool = False, engine: str = "local",
                 address: str | None = None) -> dict[str, Any]:
    """Analyses of the photos that have a face (the others cannot be hard negatives); fast=True
    measures identity only (no age, gender, expression). `engine`: facelm.engines."""
    from tqdm import tqdm
    from ..batch import analyse_paths
    from ..engines import iter_batches
    found: dict[str, Any] = {}
    with tqdm(total=len(paths), desc="embeddings", unit="photo", disable=not progress) as bar:
        for batch in iter_batches(analyse_paths, paths, engine=engine, address=address,
                                  workers=workers, fast=fast):
            found.update((p, r) for p, r in batch if not isinstance(r, Exception))
            bar.update(len(batch))
    return {p: found[p] for p in paths if p in found}   # input order, whatever finished first


def sampling_options(cfg: PairsConfig) -> dict[str, Any] | None:
    """What decides a sample of pairs (None when the pairs are given): saved in the manifest, so a
    resumed job with other options does not reuse the pairs sampled before."""
    if cfg.pairs:
        return None
    return {k: getattr(cfg, k) for k in ("labels", "n_pairs", "hard_negatives", "same_group",
                                         "seed")}


def item_id(pair: Pair, tier: str) -> str:
    return f"{pair.file_a}|{pair.file_b}#{tier}"


def get_pairs(cfg: PairsConfig, images: list[LabeledImage], previous: dict[str, Any],
              progress: bool = True, keep: dict[str, Any] | None = None) -> list[Pair]:
    """The given pairs, the pairs an earlier run of this job sampled, or a new seeded sample.

    Hard-negative sampling analyses every labelled photo, identity only unless --same-group or
    `keep` is given: a job that needs the full analyses passes `keep`, and gets them there."""
    if cfg.pairs:
        return read_pairs(cfg.pairs)
    saved = Path(cfg.out) / SAMPLED
    sampling = sampling_options(cfg)
    if saved.exists():
        before = previous.get("sampling")
        if before is not None and before != sampling:
            raise InputFormatError(f"these pairs were sampled with {before}, not {sampling}",
                                   item=str(saved), hint="use a new --out folder, or the same "
                                   "options as before")
        return read_pairs(saved)
    if not images:
        raise InputFormatError("no pairs to explain", item="facelm data pairs",
                               hint="give --labels (file,identity) to sample pairs, or --pairs")
    def analyse(paths: list[str]) -> dict[str, Any]:
        found = analyse_many(paths, cfg.workers, progress,
                             fast=keep is None and not cfg.same_group, engine=cfg.engine,
                             address=cfg.address)
        if keep is not None:
            keep.update(found)
        return found

    pairs = sample_pairs(images, cfg.n_pairs, cfg.seed, cfg.hard_negatives, cfg.same_group,
                         analyse=analyse)
    write_pairs(saved, pairs)
    return pairs


class Describer:
    """Step one: each photo described once, kept in descriptions.jsonl across runs."""

    def __init__(self, out: Path, prompts: PromptSet, grounding: bool, seed: int):
        self.path = out / DESCRIPTIONS
        self.done = {d["image"]: d["text"] for d in repair(self.path, "image", "description")}
        self.file = JsonlAppender(self.path)
        self.prompts, self.grounding, self.seed = prompts, grounding, seed
        self._futures: dict[str, asyncio.Future] = {}

    async def __call__(self, ctx: JobContext, path: str, analysis: Any) -> str:
        if path in self.done:
            return self.done[path]
        fut = self._futures.get(path)
        if fut is None:
            fut = asyncio.ensure_future(self._describe(ctx, path, analysis))
            self._futures[path] = fut
        return await fut

    async def _describe(self, ctx: JobContext, path: str, analysis: Any) -> str:
        evidence = evidence_text(analysis) if self.grounding and analysis is not None else ""
        reply = await ctx.ask(lambda strict: Task(
            "describe", self.prompts.pair_describe(path, evidence, strict),
            analyses=(analysis,) if analysis is not None else (), seed=self.seed))
        self.file.append({"image": path, "text": reply.text, "usage": reply.usage,
                          "created": now_iso()})
        self.done[path] = reply.text
        self._futures.pop(path, None)
        return reply.text


@dataclass(frozen=True)
class PairPlan:
    """What every unit of a pairs job shares."""
    cfg: PairsConfig
    prompts: PromptSet
    questions: dict[str, str]
    needs_analysis: bool
    describer: Describer | None
    labels: dict[str, LabeledImage]


def make_unit(pair: Pair, tier: str, plan: PairPlan) -> Any:
    root = Path(plan.cfg.images)
    ka, kb = (str(root / f) for f in (pair.file_a, pair.file_b))   # analysis-cache keys
    pa, pb = (str(Path(k).resolve()) for k in (ka, kb))             # stored in the record
    uid = item_id(pair, tier)
    la, lb = (plan.labels.get(f) for f in (pair.file_a, pair.file_b))
    ids = (pair.id_a or (la.identity if la else "") or pair.file_a,
           pair.id_b or (lb.identity if lb else "") or pair.file_b)
    told = {"same": pair.same, **({"a": la.labels} if la and la.labels else {}),
            **({"b": lb.labels} if lb and lb.labels else {})}

    async def record(ctx: JobContext) -> Record:
        analyses = ((await ctx.analysis(ka), await ctx.analysis(kb))
                    if plan.needs_analysis else ())
        evidence = ""
        if plan.cfg.grounding:
            evidence = "".join(f"Photo {n}: {evidence_text(a)}" for n, a in zip("AB", analyses))
        descriptions = None
        if plan.describer is not None:
            a_an, b_an = analyses or (None, None)
            descriptions = (await plan.describer(ctx, pa, a_an),
                            await plan.describer(ctx, pb, b_an))
        reply = await ctx.ask(lambda strict: Task(
            "pair", plan.prompts.pair_explain(tier, pair.same, (pa, pb),
                                              descriptions=descriptions, evidence=evidence,
                                              strict=strict),
            tier=tier, same=pair.same, labels=told, analyses=analyses, seed=plan.cfg.seed))
        said = stated_verdict(reply.text)
        if said is not pair.same:
            ctx.counts.verdict_contradictions += 1
            raise VerdictError(f"the explanation states {_verdict_word(said)} but the label "
                               f"is {_verdict_word(pair.same)}: {reply.text[:100]!r}", item=uid)
        return Record(id=uid, kind="pair", images=(pa, pb), question=plan.questions[tier],
                      answer=reply.text, tier=tier, same=pair.same, identities=ids, labels=told,
                      teacher=ctx.teacher.name, prompt_version=plan.prompts.version,
                      created=now_iso(), usage=reply.usage)

    async def unit(ctx: JobContext) -> None:
        await ctx.item(uid, lambda: record(ctx), (ka, kb) if plan.needs_analysis else (),
                       images=[pa, pb], same=pair.same)
    return unit


def _verdict_word(v: bool | None) -> str:
    return "no verdict" if v is None else "'same person'" if v else "'different people'"


def build_units(pairs: list[Pair], plan: PairPlan, ctx: JobContext) -> tuple[list[Any], int]:
    """The units still to do (one per pair and tier, duplicates once) and the number of items."""
    units, seen = [], set()
    for pair in pairs:
        for tier in plan.cfg.tiers:
            uid = item_id(pair, tier)
            if uid in seen:
                continue
            seen.add(uid)
            if ctx.store.finished(uid):
                ctx.counts.skipped += 1
                continue
            for f in (pair.file_a, pair.file_b):
                ctx.uses[str(Path(plan.cfg.images) / f)] += plan.needs_analysis
            units.append(make_unit(pair, tier, plan))
    return units, len(seen)


def run_pairs(cfg: PairsConfig, progress: bool = True) -> dict[str, Any]:
    """Generate (or resume) the pair-explanation dataset in cfg.out; returns the manifest."""
    from ..engines import check_engine
    check_engine(cfg.engine, cfg.address)   # before the folder exists: a missing cluster writes nothing
    with output_lock(cfg.out, folder=True):  # one job per folder
        return _run_pairs(cfg, progress)


def _run_pairs(cfg: PairsConfig, progress: bool = True) -> dict[str, Any]:
    prompts = load_prompts(cfg.prompts)
    bad = [t for t in cfg.tiers if t not in PAIR_QUESTIONS]
    if bad or not cfg.tiers:
        raise InputFormatError(f"unknown tier(s) {', '.join(bad) or '(none)'}", item="--tiers",
                               hint=f"choose from {','.join(PAIR_QUESTIONS)}")
    images = read_labels(cfg.labels, cfg.images, cfg.columns) if cfg.labels else []
    ctx, previous = open_job("pairs", cfg, prompts.version)
    needs = ctx.teacher.needs_analysis or cfg.grounding
    measured: dict[str, Any] = {}
    pairs = get_pairs(cfg, images, previous, progress, keep=measured if needs else None)
    two_step = cfg.two_step and not ctx.teacher.needs_analysis
    plan = PairPlan(cfg, prompts, prompts.questions("pairs", PAIR_QUESTIONS), needs,
                    Describer(Path(cfg.out), prompts, cfg.grounding, cfg.seed)
                    if two_step else None, {img.file: img for img in images})
    units, n_items = build_units(pairs, plan, ctx)
    ctx.preloaded = {p: measured[p] for p in ctx.uses if p in measured}
    measured.clear()
    extra = {"prompt_version": prompts.version, "prompts": prompts.source,
             "images_root": str(Path(cfg.images).resolve()),
             "steps": "two" if two_step else "one", "questions": plan.questions,
             "sampling": sampling_options(cfg),
             "pairs": {"total": len(pairs), "same": sum(p.same for p in pairs),
                       "kinds": {k: sum(p.kind == k for p in pairs)
                                 for k in sorted({p.kind for p in pairs})}}}
    try:
        return run_recorded("pairs", ctx, units, cfg, extra, n_items, previous, progress)
    finally:
        if plan.describer is not None:
            plan.describer.file.close()
