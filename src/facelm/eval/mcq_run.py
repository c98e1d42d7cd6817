"""Run a FaceXBench-format benchmark through any `FaceVLM` and score it.

Two scoring modes:
* "generate": the model writes an answer to FaceXBench's prompt; `extract_choice` reads the letter
  (None = unparsed, counted, scored wrong);
* "loglik": the option with the highest `score_choices` log-likelihood (a tie = no answer);
  questions the model cannot score (NotImplementedError) fall back to generation, per question.
"auto" is loglik where the model implements it, else generate.

A failing question (missing image, no face, model error) is recorded with its error and scored
wrong; the run goes on (`check_failures` then fails the run when too many did). Predictions are appended to predictions.jsonl, so an interrupted run resumes.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..data.store import repair
from ..errors import FaceLMError, InputFormatError
from ..outlock import output_lock
from ..schema_version import dumps as stamped_json
from .extract import extract_choice
from .mcq import LETTERS, Question, Task, build_prompt

@dataclass(frozen=True)
class MCQConfig:
    bench: str
    model: str = "evidence"
    mode: str = "auto"
    prepend_text: bool = False      # FaceXBench's --prepend_text (off in its default command)
    max_new_tokens: int = 64
    seed: int = 0
    limit: int | None = None        # first N questions of each file (quick runs)
    images_root: str | None = None
    batch_size: int = 1             # generation mode: questions per generate_batch call
    extractor: str = "facelm"       # which answer reading scores the report (mcq_facexbench.py)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def question_images(task: Task, q: Question) -> list[str]:
    """The images a question is asked with. FaceXBench's zero-image questions (tools_retrieval,
    `num_images: "zero"`) carry a black placeholder that their prompt says to ignore: they are
    asked text-only, so a missing placeholder is no failure and no model studies a black square."""
    return [] if task.num_images == "zero" else list(q.image_paths)


def _missing_images(task: Task, q: Question) -> list[str]:
    return [p for p in question_images(task, q) if not Path(p).is_file()]


def _argmax_or_tie(scores: Sequence[float]) -> str | None:
    best = max(scores)
    top = [i for i, s in enumerate(scores) if s == best]
    return LETTERS[top[0]] if len(top) == 1 else None


def _base_record(task: Task, q: Question) -> dict[str, Any]:
    return {"file": task.file, "id": q.id, "task": task.task, "sub_category": task.sub_category,
            "category": task.category, "num_images": task.num_images, "correct": q.correct,
            "pred": None, "is_correct": False, "mode": None, "output": None, "error": None}


def answer_question(model: Any, task: Task, q: Question, cfg: MCQConfig) -> dict[str, Any]:
    """One scored record for one question; never raises for the question's own problems."""
    rec = _base_record(task, q)
    missing = _missing_images(task, q)
    if missing:
        rec["error"] = (f"image missing: {missing[0]}" + (f" (+{len(missing) - 1} more)" if len(missing) > 1 else "")
                        + "; put the benchmark's images/ beside its JSON files or pass --images ROOT")
        return rec
    prompt = build_prompt(task, q, prepend=cfg.prepend_text)
    try:
        if cfg.mode in ("auto", "loglik"):
            try:
                scores = model.score_choices(question_images(task, q), prompt, list(q.options))
                rec.update(mode="loglik", scores=[round(float(s), 4) for s in scores],
                           pred=_argmax_or_tie(scores))
            except NotImplementedError as exc:
                rec["fallback"] = str(exc)
        if rec["mode"] is None:
            out = model.generate(question_images(task, q), prompt, max_new_tokens=cfg.max_new_tokens,
                                 do_sample=False, seed=cfg.seed)
            rec.update(mode="generate", output=out, pred=extract_choice(out, q.options))
    except FaceLMError as exc:
        rec["error"] = str(exc)
    except Exception as exc:  # noqa: BLE001 - one failing question must not stop the benchmark
        rec["error"] = f"{type(exc).__name__}: {exc}"
    rec["is_correct"] = rec["pred"] == q.correct
    return rec


def answer_batch(model: Any, batch: Sequence[tuple[Task, Question]], cfg: MCQConfig) -> list[dict[str, Any]]:
    """Generation mode, many questions per `generate_batch` call (models that batch override it).
    If the batched call fails, each question is asked alone, so a failure is pinned to its question."""
    ready = [(t, q) for t, q in batch if not _missing_images(t, q)]
    outs: dict[tuple[str, str], str] = {}
    if len(ready) > 1:
        items = [(question_images(t, q), build_prompt(t, q, prepend=cfg.prepend_text)) for t, q in ready]
        try:
            texts = model.generate_batch(items, max_new_tokens=cfg.max_new_tokens, do_sample=False,
                                         seed=cfg.seed)
            if len(texts) == len(items):
                outs = {(t.file, q.id): text for (t, q), text in zip(ready, texts)}
        except Exception:  # noqa: BLE001 - retried one by one below, which records the error
            outs = {}
    recs = []
    for t, q in batch:
        text = outs.get((t.file, q.id))
        if text is None:
            recs.append(answer_question(model, t, q, cfg))
            continue
        rec = _base_record(t, q)
        rec.update(mode="generate", output=text, pred=extract_choice(text, q.options))
        rec["is_correct"] = rec["pred"] == q.correct
        recs.append(rec)
    return recs


def _done_keys(path: Path) -> dict[tuple[str, str], dict]:
    """Records already written by an earlier run (a partial last line is dropped)."""
    out = {}
    for n, rec in enumerate(repair(path, "file", "MCQ prediction"), 1):
        try:
            out[(rec["file"], rec["id"])] = rec
        except (KeyError, TypeError) as exc:
            raise InputFormatError(f"line {n} is not an MCQ prediction ({exc})", item=str(path),
                                   hint="use a new --out folder, or delete that line") from exc
    return out


def _check_resume(out_dir: Path, cfg: MCQConfig) -> None:
    old = out_dir / "config.json"
    if not old.exists():
        return
    prev = json.loads(old.read_text(encoding="utf-8")).get("mcq", {})
    keys = ("bench", "model", "mode", "prepend_text", "seed")
    changed = [k for k in keys if k in prev and prev[k] != cfg.to_dict()[k]]
    if changed and (out_dir / "predictions.jsonl").exists():
        raise InputFormatError(f"holds predictions made with different {', '.join(changed)}",
                               item=str(out_dir), hint="use a new --out folder for a new setting")


def questions(tasks: Sequence[Task], limit: int | None) -> Iterator[tuple[Task, Question]]:
    for task in tasks:
        for q in task.questions[:limit]:
            yield task, q


def run_mcq(model: Any, tasks: Sequence[Task], cfg: MCQConfig, out_dir: Path,
            progress: bool = True) -> list[dict[str, Any]]:
    """Answer every question (resuming from out_dir/predictions.jsonl); returns all records in
    benchmark order."""
    with output_lock(out_dir, folder=True):  # one run per folder: it appends to predictions
        return _run_mcq(model, tasks, cfg, out_dir, progress)


def _run_mcq(model: Any, tasks: Sequence[Task], cfg: MCQConfig, out_dir: Path,
             progress: bool) -> list[dict[str, Any]]:
    from tqdm import tqdm
    _check_resume(out_dir, cfg)
    if not (out_dir / "config.json").exists():  # so an interrupted run is also guarded on resume
        (out_dir / "config.json").write_text(stamped_json({"mcq": cfg.to_dict()}, indent=2) + "\n",
                                             encoding="utf-8")
    pred_path = out_dir / "predictions.jsonl"
    done = _done_keys(pred_path)
    todo = list(questions(tasks, cfg.limit))
    pending = [(t, q) for t, q in todo if (t.file, q.id) not in done]
    step = max(cfg.batch_size, 1) if cfg.mode == "generate" else 1
    with open(pred_path, "a", encoding="utf-8") as f, \
            tqdm(total=len(todo), initial=len(todo) - len(pending), unit="q", desc="mcq",
                 disable=not progress) as bar:
        for i in range(0, len(pending), step):
            chunk = pending[i: i + step]
            recs = answer_batch(model, chunk, cfg) if step > 1 else [answer_question(model, *chunk[0], cfg)]
            for rec in recs:
                f.write(stamped_json(rec) + "\n")  # stamp after the key: see repair
                done[(rec["file"], rec["id"])] = rec
            f.flush()
            bar.update(len(chunk))
    return [done[(t.file, q.id)] for t, q in todo]


def check_failures(records: Sequence[dict[str, Any]], max_share: float, out_dir: Path) -> None:
    """FaceLMError (one line, exit 2) when more than `max_share` of the questions failed (missing
    images, model errors): a score over questions that were never asked is not a result. The
    report is written before this check, so the failures can be read there."""
    failed = [r for r in records if r.get("error")]
    if records and len(failed) / len(records) > max_share:
        reason = " ".join(str(failed[0]["error"]).split())   # one line, whatever the model said
        raise FaceLMError(f"{len(failed)} of {len(records)} questions failed "
                          f"({len(failed) / len(records):.0%}, above --max-failed-share "
                          f"{max_share:g}); first: {reason}", item=str(out_dir),
                          hint="report.md and predictions.jsonl there list every failure")
