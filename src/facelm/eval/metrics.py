"""Captioning metrics for generated explanations: BLEU-1..4, METEOR, ROUGE-L, CIDEr, BERTScore.

    from facelm.eval.metrics import compute_metrics
    scores = compute_metrics({"p1": "same person"}, {"p1": ["the same person", "one person"]})

BLEU, METEOR, ROUGE-L and CIDEr equal pycocoevalcap 1.2's on the same inputs (the COCO caption
evaluation code the papers use): texts go through the same PTB tokenizer jar, METEOR through the
same METEOR 1.5 jar, and BLEU/ROUGE-L/CIDEr through a bulk re-implementation of its formulas
(metrics_ngrams.py) that is tested equal to it. All scores are on pycocoevalcap's 0-1 scale
(CIDEr is unbounded, ~0-10). Without Java the tokenizer and METEOR fall back to labelled
approximations (see `MetricsResult.notes`).
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import FaceLMError, InputFormatError
from .bertscore import BertScoreConfig, bertscore as _bertscore
from .metrics_meteor import (METEOR_APPROX_KEY, close_meteor, default_workers, meteor_approx,
                             meteor_java, start_meteor)
from .metrics_ngrams import ngram_metrics
from .tokenize import java_available, tokenize

log = logging.getLogger(__name__)

METRIC_KEYS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr",
               "BERTScore-MiniLM")
NO_JAVA_NOTE = ("Java was not found, so METEOR 1.5 (a Java program) could not run: the report "
                f"gives '{METEOR_APPROX_KEY}' (exact matches only, no stems/synonyms/paraphrases; "
                "lower than METEOR and not comparable with papers) and texts were tokenized with "
                "facelm's Python approximation of the PTB tokenizer, so BLEU/ROUGE-L/CIDEr may "
                "differ slightly from pycocoevalcap. Install Java (apt-get install "
                "default-jre-headless) for reference numbers.")


@dataclass(frozen=True)
class MetricsConfig:
    """How the metrics are computed; saved next to every report."""
    tokenizer: str = "auto"        # "auto" (Java PTB if Java is present) | "ptb-java" | "python"
    meteor: str = "auto"           # "auto" | "java" | "approx" | "off"
    bertscore: bool = True
    bertscore_model: str = ""      # "" = offline all-MiniLM-L6-v2 ("BERTScore-MiniLM")
    bertscore_layers: int | None = None
    batch_size: int = 64
    meteor_workers: int | None = None   # METEOR jar processes; None: one per 1,000 items


@dataclass
class MetricsResult:
    scores: dict[str, float]                 # corpus-level, keys as METRIC_KEYS (see notes)
    ids: list[str]
    per_item: dict[str, list[float]]         # item-level scores where the metric defines them
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)   # seconds per stage
    tokenizer: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def main_scores(self) -> dict[str, float]:
        """The metric keys' scores (BERTScore's P and R left out): metrics.json, compute_metrics."""
        return {k: v for k, v in self.scores.items() if not k.endswith((" P", " R"))}


def check_pairs(preds: dict[str, str], refs: dict[str, list[str]]) -> list[str]:
    """The ids to score (refs' order); raises InputFormatError on missing ids or wrong types."""
    if not refs:
        raise InputFormatError("no references given", hint="give at least one item")
    missing = [i for i in refs if i not in preds]
    extra = [i for i in preds if i not in refs]
    if missing or extra:
        parts = [f"{len(missing)} id(s) have references but no prediction (e.g. {missing[:3]})"
                 if missing else "", f"{len(extra)} prediction id(s) have no references "
                 f"(e.g. {extra[:3]})" if extra else ""]
        raise InputFormatError("; ".join(p for p in parts if p),
                               hint="predictions and references must have the same ids")
    for i, rs in refs.items():
        if not isinstance(preds[i], str):
            raise InputFormatError(f"prediction {i!r} is {type(preds[i]).__name__}, not text")
        if not isinstance(rs, list) or not rs or not all(isinstance(r, str) for r in rs):
            raise InputFormatError(f"references of {i!r} must be a non-empty list of texts")
    return list(refs)


def regroup(flat: list[str], refs: list[list[str]]) -> tuple[list[str], list[list[str]]]:
    """Undo `hyps + [r for rs in refs for r in rs]` after tokenizing: (hyps, each item's refs)."""
    hyps, item_refs, k = flat[:len(refs)], [], len(refs)
    for rs in refs:
        item_refs.append(flat[k:k + len(rs)])
        k += len(rs)
    return hyps, item_refs


def evaluate_texts(preds: dict[str, str], refs: dict[str, list[str]],
                   cfg: MetricsConfig = MetricsConfig(), *, progress: bool = False) -> MetricsResult:
    """All metrics with per-item scores, notes on approximations and per-stage timings."""
    ids = check_pairs(preds, refs)
    hyps_raw, refs_raw = [preds[i] for i in ids], [refs[i] for i in ids]
    res = MetricsResult(scores={}, ids=ids, per_item={})
    java = java_available()
    if not java and (cfg.tokenizer == "auto" or cfg.meteor == "auto"):
        log.warning(NO_JAVA_NOTE)
        res.notes.append(NO_JAVA_NOTE)

    jars = _start_jars(cfg, java, len(ids))   # the jars load while Python tokenizes and counts
    try:
        t = time.perf_counter()
        flat, res.tokenizer = tokenize(hyps_raw + [r for rs in refs_raw for r in rs], cfg.tokenizer)
        hyps, item_refs = regroup(flat, refs_raw)
        res.timings["tokenize"] = time.perf_counter() - t
        t = time.perf_counter()
        ngram, items = ngram_metrics(hyps, item_refs)
        res.timings["BLEU+ROUGE-L+CIDEr"] = time.perf_counter() - t
    except BaseException:
        close_meteor(jars or [])
        raise
    res.scores.update({key: ngram[key] for key in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4")})
    _meteor(hyps, item_refs, cfg, jars, res)
    res.scores["ROUGE-L"], res.scores["CIDEr"] = ngram["ROUGE-L"], ngram["CIDEr"]
    res.per_item.update({key: v.tolist() for key, v in items.items()})

    if cfg.bertscore:
        _add_bertscore(hyps_raw, refs_raw, cfg, res, progress)
    return res


def _add_bertscore(hyps: list[str], refs: list[list[str]], cfg: MetricsConfig,
                   res: MetricsResult, progress: bool) -> None:
    bcfg = BertScoreConfig(cfg.bertscore_model, cfg.bertscore_layers, cfg.batch_size)
    t = time.perf_counter()
    prf = _bertscore(hyps, refs, bcfg, progress=progress)   # (N, 3): P, R, F on raw texts
    res.timings[bcfg.key] = time.perf_counter() - t
    res.scores[bcfg.key] = float(prf[:, 2].mean())
    res.scores[bcfg.key + " P"] = float(prf[:, 0].mean())
    res.scores[bcfg.key + " R"] = float(prf[:, 1].mean())
    res.per_item[bcfg.key] = prf[:, 2].tolist()


def _start_jars(cfg: MetricsConfig, java: bool, n_items: int) -> list | None:
    """METEOR jar processes to use, or None for the approximation / no METEOR."""
    if cfg.meteor not in ("auto", "java", "approx", "off"):
        raise FaceLMError(f"unknown METEOR mode {cfg.meteor!r}", hint="use auto, java, approx or off")
    if cfg.meteor == "java" or (cfg.meteor == "auto" and java):
        # raises JavaNotFoundError when Java was asked for and is missing
        return start_meteor(cfg.meteor_workers or default_workers(n_items))
    return None


def _meteor(hyps: list[str], refs: list[list[str]], cfg: MetricsConfig, jars: list | None,
            res: MetricsResult) -> None:
    if cfg.meteor == "off":
        return
    t = time.perf_counter()
    if jars is not None:
        score, per_item = meteor_java(hyps, refs, procs=jars)
        key = "METEOR"
    else:
        score, per_item = meteor_approx(hyps, refs)
        key = METEOR_APPROX_KEY
    res.timings[key] = time.perf_counter() - t
    res.scores[key] = score
    res.per_item[key] = per_item.tolist()


def compute_metrics(preds: dict[str, str], refs: dict[str, list[str]], *,
                    bertscore: bool = True) -> dict[str, float]:
    """Corpus-level BLEU-1..4, METEOR, ROUGE-L, CIDEr and BERTScore-MiniLM (F1), 0-1 scale.

    preds: id -> generated text; refs: id -> reference texts (one or more). Without Java the METEOR
    key is 'METEOR (no-Java approximation)' (a warning is logged). BERTScore P and R are left out
    here; `evaluate_texts` returns them too.
    """
    return evaluate_texts(preds, refs, MetricsConfig(bertscore=bertscore)).main_scores()


# ---- JSONL inputs ------------------------------------------------------------------------------

def _jsonl(path: Path, fields: dict[str, type]) -> list[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        raise InputFormatError("file not found", item=str(path))
    rows = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputFormatError(f"not JSON ({exc.msg})", item=where,
                                       hint="each line must be one JSON object") from exc
            for name, typ in fields.items():
                if not isinstance(row, dict) or name not in row:
                    raise InputFormatError(f"missing field {name!r}", item=where,
                                           hint=f"lines need {sorted(fields)}")
                if not isinstance(row[name], typ):
                    raise InputFormatError(f"field {name!r} must be {typ.__name__}, got "
                                           f"{type(row[name]).__name__}", item=where)
            rows.append((n, row))
    if not rows:
        raise InputFormatError("no lines", item=str(path))
    return rows


def _id(row: dict[str, Any], where: str) -> str:
    if not isinstance(row["id"], (str, int)) or isinstance(row["id"], bool):
        raise InputFormatError("field 'id' must be a string or integer", item=where)
    return str(row["id"])


def read_predictions(path: str | Path) -> dict[str, str]:
    """PRED.jsonl: one {"id": ..., "text": ...} per line (duplicate ids are an error)."""
    path, out = Path(path), {}
    for n, row in _jsonl(path, {"id": object, "text": str}):
        i = _id(row, f"{path}:{n}")
        if i in out:
            raise InputFormatError(f"duplicate id {i!r}", item=f"{path}:{n}")
        out[i] = row["text"]
    return out


def read_references(path: str | Path) -> dict[str, list[str]]:
    """REF.jsonl: one {"id": ..., "refs": [...]} per line ("ref": "..." is accepted for one)."""
    path, out = Path(path), {}
    for n, row in _jsonl(path, {"id": object}):
        where = f"{path}:{n}"
        refs = row.get("refs", [row["ref"]] if isinstance(row.get("ref"), str) else None)
        if not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs):
            raise InputFormatError("'refs' must be a non-empty list of strings", item=where)
        i = _id(row, where)
        if i in out:
            raise InputFormatError(f"duplicate id {i!r}", item=where)
        out[i] = refs
    return out
