"""Judging a pair-explaining model by what it says: per held-out pair, does its stated verdict follow
the calibrated score, how many of its claims are supported by the measurements (by claim group),
does it write numbers that are not in the pair's evidence, and does its text depend on its input
(distinct texts across pairs; what changes when the two photos are swapped).

Per-pair figures are kept so that `bootstrap` can put 95 % intervals on every share, and so that
two models evaluated on the same pairs can be compared pair by pair (`paired_difference`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .faithfulness import GROUPS, AuditItem, audit_item, claim_group



@dataclass
class PairScore:
    """What one explanation of one pair got right and wrong."""
    text: str
    agrees: bool                                   # stated verdict == calibrated verdict
    supported: dict[str, int] = field(default_factory=dict)    # per claim group
    contradicted: dict[str, int] = field(default_factory=dict)
    uncheckable: dict[str, int] = field(default_factory=dict)
    numbers: int = 0
    invented: int = 0                              # numbers not in the pair's evidence text

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def score_pair(text: str, analyses: Sequence[Any], *, same: bool | None = None,
               model: str = "model") -> PairScore:
    """Audit one pair explanation against the two faces' measurements."""
    from ..models.verlm.grounding import NUMBER, allowed_numbers, pair_evidence_text
    from ..models.verlm.verdict import agrees
    from ..verify import compare_analyses
    cmp = compare_analyses(*analyses)
    item = AuditItem(id="x", model=model, text=text, images=("a", "b"), same=same)
    out = PairScore(text=text, agrees=agrees(text, cmp.same))
    for ch in audit_item(item, list(analyses)):
        bucket = getattr(out, ch.status)
        g = claim_group(ch.claim.kind)
        bucket[g] = bucket.get(g, 0) + 1
    allowed = allowed_numbers([pair_evidence_text(cmp)])
    nums = NUMBER.findall(text)
    out.numbers, out.invented = len(nums), sum(n not in allowed for n in nums)
    return out


def _share(num: float, den: float) -> float | None:
    return None if den == 0 else num / den


def support_rate(scores: Sequence[PairScore], group: str | None = None) -> float | None:
    """Supported / checkable claims (all groups, or one)."""
    def n(d: dict[str, int]) -> int:
        return sum(d.values()) if group is None else d.get(group, 0)
    sup = sum(n(s.supported) for s in scores)
    return _share(sup, sup + sum(n(s.contradicted) for s in scores))


def summary_stats(scores: Sequence[PairScore]) -> dict[str, Any]:
    """Point figures over a set of pairs (the statistics `bootstrap` resamples)."""
    n = max(len(scores), 1)
    out: dict[str, Any] = {
        "pairs": len(scores),
        "verdict_agreement": sum(s.agrees for s in scores) / n,
        "distinct_texts": len({s.text for s in scores}) / n,
        "support_rate": support_rate(scores),
        "invented_numbers": sum(s.invented for s in scores),
        "numbers": sum(s.numbers for s in scores),
        "groups": {},
    }
    for g in GROUPS:
        checked = sum(s.supported.get(g, 0) + s.contradicted.get(g, 0) for s in scores)
        unc = sum(s.uncheckable.get(g, 0) for s in scores)
        if checked or unc:
            out["groups"][g] = {"checkable": checked, "uncheckable": unc,
                                "support_rate": support_rate(scores, g)}
    return out


def bootstrap(stat: Callable[[np.ndarray], float | None], n_items: int, *, reps: int = 1000,
              seed: int = 0) -> tuple[float, float] | None:
    """95 % percentile interval of `stat(indices)` over `reps` resamples of the items."""
    rng = np.random.default_rng(seed)
    vals = [stat(rng.integers(0, n_items, n_items)) for _ in range(reps)]
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))


def with_intervals(scores: Sequence[PairScore], *, reps: int = 1000) -> dict[str, Any]:
    """summary_stats plus 95 % bootstrap intervals for the shares."""
    s = list(scores)
    out = summary_stats(s)
    pick = lambda idx: [s[i] for i in idx]  # noqa: E731 - tiny local accessor
    out["ci"] = {
        "verdict_agreement": bootstrap(lambda i: summary_stats(pick(i))["verdict_agreement"], len(s), reps=reps),
        "support_rate": bootstrap(lambda i: support_rate(pick(i)), len(s), reps=reps),
        "distinct_texts": bootstrap(lambda i: len({s[j].text for j in set(i.tolist())}) / len(set(i.tolist())),
                                    len(s), reps=reps),
    }
    for g in out["groups"]:
        out["groups"][g]["ci"] = bootstrap(lambda i, g=g: support_rate(pick(i), g), len(s), reps=reps)
    return out


def paired_difference(a: Sequence[Sequence[PairScore]], b: Sequence[Sequence[PairScore]],
                      metric: Callable[[list[PairScore]], float | None], *, reps: int = 1000,
                      seed: int = 0) -> dict[str, Any]:
    """A minus B on the same pairs, each side averaged over its runs (seeds), with a 95 % interval
    from resampling the pairs: 'holds' when the interval is above 0, 'does not hold' when below,
    'cannot tell' when it contains 0."""
    n = len(a[0])

    def diff(idx: np.ndarray) -> float | None:
        va = [metric([run[i] for i in idx]) for run in a]
        vb = [metric([run[i] for i in idx]) for run in b]
        if any(v is None for v in va + vb):
            return None
        return float(np.mean(va) - np.mean(vb))

    point = diff(np.arange(n))
    ci = bootstrap(diff, n, reps=reps, seed=seed)
    verdict = ("cannot tell" if ci is None or ci[0] <= 0 <= ci[1]
               else "holds" if ci[0] > 0 else "does not hold")
    return {"difference": point, "ci": ci, "verdict": verdict}


def swap_sensitivity(texts: Sequence[str], swapped: Sequence[str]) -> dict[str, float]:
    """Swapping the two photos must keep what is symmetric (verdict, fused score) and may only
    reorder per-face values: shares of pairs where the verdict, the stated fused score and the
    multiset of stated numbers are unchanged, and where the text changed at all."""
    from ..explain.claims import extract_claims
    from ..models.verlm.grounding import NUMBER
    from ..models.verlm.verdict import stated_verdict

    def fused(t: str) -> Any:
        return [c.value for c in extract_claims(t, pair=True) if c.kind == "score"][:1]
    n = max(len(texts), 1)
    return {
        "verdict_kept": sum(stated_verdict(x) == stated_verdict(y) for x, y in zip(texts, swapped)) / n,
        "fused_score_kept": sum(fused(x) == fused(y) for x, y in zip(texts, swapped)) / n,
        "numbers_kept": sum(sorted(NUMBER.findall(x)) == sorted(NUMBER.findall(y))
                            for x, y in zip(texts, swapped)) / n,
        "text_changed": sum(x != y for x, y in zip(texts, swapped)) / n,
        "pairs": len(texts),
    }


def input_sensitivity(vlm: Any, pairs: Sequence[tuple[Any, Any]], prompt: str, *,
                      max_new_tokens: int = 160) -> dict[str, Any]:
    """Same prompt, different pairs: the share of distinct texts; and the swap check. For a model
    that ignores its input the first is ~1/len(pairs) and swapping changes nothing."""
    items = [(list(p), prompt) for p in pairs] + [([p[1], p[0]], prompt) for p in pairs]
    out = vlm.generate_batch(items, max_new_tokens=max_new_tokens)
    texts, swapped = out[: len(pairs)], out[len(pairs):]
    return {"prompt": prompt, "distinct_texts": len(set(texts)) / max(len(texts), 1),
            "swap": swap_sensitivity(texts, swapped), "examples": texts[:3]}
