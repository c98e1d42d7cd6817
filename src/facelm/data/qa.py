"""Attribute-aware QA data (the FairFaceGPT recipe): per photo and aspect, a teacher told the known
labels describes that one aspect; the student question stored with the answer carries no label.

    facelm data qa --images DIR --labels labels.csv --out OUT --teacher evidence
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import FaceLMError, InputFormatError
from ..outlock import output_lock
from ..teacher.base import Task
from ..teacher.labels import leaked_labels
from ..teacher.prompts import PromptSet, evidence_text, load_prompts
from ..teacher.registry import TeacherSpec
from .job import JobContext, open_job, run_recorded
from .schema import QA_QUESTIONS, Record
from .sources import LabeledImage, read_labels
from .store import now_iso


class LeakageError(FaceLMError):
    """The student question would reveal a label the teacher was told."""


@dataclass(frozen=True)
class QAConfig:
    images: str
    labels: str
    out: str
    teacher: TeacherSpec = field(default_factory=TeacherSpec)
    aspects: tuple[str, ...] = tuple(QA_QUESTIONS)
    limit: int | None = None            # the first N photos of the CSV
    columns: dict[str, str] = field(default_factory=dict)
    prompts: str | None = None          # a TOML prompt file (default: the packaged v1)
    grounding: bool = False             # add the measured analysis to the teacher prompt
    seed: int = 0
    concurrency: int = 8
    refusal_retries: int = 2
    workers: int = 1                    # face-analysis processes
    retry_failed: bool = False
    engine: str = "local"               # "ray": the photos are analysed up front by Ray Data
    address: str | None = None          # the Ray cluster (facelm.engines)


def check_aspects(aspects: tuple[str, ...], known: dict[str, str]) -> None:
    bad = [a for a in aspects if a not in known]
    if bad or not aspects:
        raise InputFormatError(f"unknown aspect(s) {', '.join(bad) or '(none given)'}",
                               item="--aspects", hint=f"choose from {','.join(known)}")


def item_id(img: LabeledImage, aspect: str) -> str:
    return f"{img.file}#{aspect}"


def make_unit(img: LabeledImage, aspect: str, cfg: QAConfig, prompts: PromptSet,
              question: str, needs_analysis: bool) -> Any:
    uid = item_id(img, aspect)
    image = str(Path(img.path).resolve())

    async def record(ctx: JobContext) -> Record:
        leaked = leaked_labels(question, img.labels)
        if leaked:
            ctx.counts.leakage += 1
            raise LeakageError(f"the question reveals the label(s) {', '.join(leaked)}: "
                               f"{question!r}", item=uid,
                               hint="remove labels from [qa.questions] in the prompt file")
        analyses = (await ctx.analysis(img.path),) if needs_analysis else ()
        evidence = evidence_text(analyses[0]) if cfg.grounding else ""
        reply = await ctx.ask(lambda strict: Task(
            "qa", prompts.qa(aspect, img.labels, img.path, evidence, strict), aspect=aspect,
            labels=img.labels, analyses=analyses, seed=cfg.seed))
        return Record(id=uid, kind="qa", images=(image,), question=question, answer=reply.text,
                      aspect=aspect, identities=(img.identity or img.file,),
                      labels=dict(img.labels), teacher=ctx.teacher.name,
                      prompt_version=prompts.version, created=now_iso(), usage=reply.usage)

    async def unit(ctx: JobContext) -> None:
        await ctx.item(uid, lambda: record(ctx), (img.path,) if needs_analysis else (),
                       images=[image])
    return unit


def run_qa(cfg: QAConfig, progress: bool = True) -> dict[str, Any]:
    """Generate (or resume) the QA dataset in cfg.out; returns the manifest."""
    from ..engines import check_engine
    check_engine(cfg.engine, cfg.address)   # before the folder exists: a missing cluster writes nothing
    with output_lock(cfg.out, folder=True):  # one job per folder
        return _run_qa(cfg, progress)


def _run_qa(cfg: QAConfig, progress: bool = True) -> dict[str, Any]:
    prompts = load_prompts(cfg.prompts)
    qs = prompts.questions("qa", QA_QUESTIONS)
    check_aspects(cfg.aspects, qs)
    images = read_labels(cfg.labels, cfg.images, cfg.columns)[: cfg.limit or None]
    ctx, previous = open_job("qa", cfg, prompts.version)
    needs = ctx.teacher.needs_analysis or cfg.grounding
    units, total = [], 0
    for img in images:
        for aspect in cfg.aspects:
            total += 1
            if ctx.store.finished(item_id(img, aspect)):
                ctx.counts.skipped += 1
                continue
            ctx.uses[img.path] += needs
            units.append(make_unit(img, aspect, cfg, prompts, qs[aspect], needs))
    extra = {"prompt_version": prompts.version, "prompts": prompts.source,
             "images_root": str(Path(cfg.images).resolve()), "questions": qs}
    return run_recorded("qa", ctx, units, cfg, extra, total, previous, progress)
