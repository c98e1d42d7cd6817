"""Grounded mode: the measured evidence as text the LM reads after its face prefix, and decoding
that may only write numbers copied from that text.

The evidence states every fact the template explainer (facelm.explain) uses, each number already
formatted as the explainer formats it ("0.85", "97%", "+12°", "38 px"), so that a faithful answer
is a copy, never a computation. `NumberGuard` enforces the "never invented" half at decoding time:
a digit may only start or extend a number that appears in the evidence, and a number may only end
where it is complete (so "0.8" cannot stand for "0.85").
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from ...explain import evidence as E
from ...explain.phrasing import age_span, age_years, deg, pct, px, ratio, share, signed_deg, sim

if TYPE_CHECKING:
    from ...faces.types import FaceAnalysis
    from ...verify import Comparison

NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _core_facts(a: FaceAnalysis) -> list[str]:
    """What both a pair's and a face's texts may state about one face."""
    q, p, at = a.quality, a.pose, a.attributes
    facts = []
    if at is not None:
        probs = sorted(at.expression_probs.items(), key=lambda kv: -kv[1])
        facts += [f"age {age_years(at.age)}" + (f" ({E.age_caveat(a)})" if E.age_caveat(a) else ""),
                  f"{at.gender} {pct(at.gender_confidence)}",
                  " ".join(f"{k} {pct(v)}" for k, v in probs[:2])]
    facts += [f"yaw {signed_deg(p.yaw)} pitch {signed_deg(p.pitch)} roll {signed_deg(p.roll)}"
              + ("" if E.pose_reliable(a) else " unreliable"),
              f"brightness {share(q.brightness)} {E.brightness_level(q.brightness)}",
              f"{E.sharpness_level(q.sharpness)} {q.sharpness:.2f}", f"eyes {px(q.interocular_px)}",
              "flags " + (" ".join(E.quality_flags(a)) or "none")]
    if "underexposed" in E.quality_flags(a) or "overexposed" in E.quality_flags(a):
        facts.append(f"clipped {share(q.overexposed)} dark {share(q.underexposed)}")
    return facts


def face_evidence_text(a: FaceAnalysis) -> str:
    """The evidence for one face (QA prompts): the core facts, the pose as unsigned angles, the
    remaining quality values and the landmark ratios with the reference ranges they are read
    against (the fixed numbers of the explainer's wording: 10th-90th percentile of 86 faces)."""
    q, p, g = a.quality, a.pose, a.geometry
    facts = _core_facts(a)
    if a.attributes is not None:
        lo, hi = a.attributes.age_range
        facts.insert(1, f"range {age_span(lo, hi)}")
    facts += [f"angles {deg(p.yaw)} {deg(p.pitch)} {deg(p.roll)}",
              f"contrast {share(q.contrast)} clipped {share(q.overexposed)} dark {share(q.underexposed)}",
              f"face {px(q.face_size_px)} image {a.image_size[0]}×{a.image_size[1]} faces {a.faces_found}",
              "ratios " + " ".join(f"{k} {ratio(getattr(g, k))}× ({ratio(lo)}–{ratio(hi)})"
                                   for k, (lo, hi) in E.GEOMETRY_REFERENCE.items()),
              "reference 10th–90th of 86 faces, 68 landmarks, 3D model"]
    return "Evidence: " + "; ".join(facts) + "."


def pair_evidence_text(cmp: Comparison) -> str:
    """The evidence for a pair: the calibrated decision, the identity scores, the pair differences
    and each face's core facts, formatted as facelm.explain.pair states them."""
    from ... import calibration as cal
    from ...explain.pair import pair_evidence
    ev = pair_evidence(cmp)
    margin = cmp.score - cmp.threshold
    where = "right at" if abs(margin) < 0.005 else f"{sim(abs(margin))} {'above' if margin >= 0 else 'below'}"
    calls = {k: "match" if v else "non-match" for k, v in cmp.model_verdicts.items()}
    s = {k: sim(v) for k, v in cmp.scores.items()}
    name, rel = ev["geometry_largest"]
    facts = [
        f"{'same person' if cmp.same else 'different people'}, {ev['strength']}, "
        f"{pct(cmp.confidence)} (other {pct(1 - cmp.confidence)})",
        f"fused {sim(cmp.score)} threshold {sim(cmp.threshold)} {where}",
        f"SFace {s['sface']} {calls['sface']} ({sim(cal.THRESHOLD_SFACE)}), dlib {s['dlib']} "
        f"{calls['dlib']} ({sim(cal.THRESHOLD_DLIB)}), " + ("agree" if cmp.models_agree else "disagree"),
        f"gaps age {ev['age_gap']} yaw {ev['yaw_gap']} pitch {ev['pitch_gap']} roll {ev['roll_gap']} "
        f"turned {ev['max_abs_yaw']} brightness {share(ev['brightness_gap'])} "
        f"sharper {ev['sharpness_ratio']:.1f}×",
        f"geometry {share(ev['geometry_distance'])} {E.GEOMETRY_NAMES[name]} {share(rel)} "
        f"{ev['geometry_reading']}" + (", gender conflict" if ev["gender_conflict"] else ""),
        "nuisance " + (" ".join(ev["nuisance"]) or "none"),
    ]
    for label, face in (("A", cmp.a), ("B", cmp.b)):
        facts.append(f"{label}: " + ", ".join(_core_facts(face)))
    return "; ".join(facts) + "."


def allowed_numbers(texts: Iterable[str]) -> frozenset[str]:
    """Every number written in the texts, as written."""
    return frozenset(m.group(0) for t in texts for m in NUMBER.finditer(t))


class NumberGuard:
    """Which next tokens keep every number in the text copied from an allowed set.

    A number is "open" while it ends the text (it may still grow, or a dot may be a decimal point):
    it must then be a prefix of an allowed number; once followed by anything else it is "closed"
    and must be allowed exactly.
    """

    def __init__(self, pieces: Sequence[str]) -> None:
        self.pieces = pieces                                       # token id -> decoded text
        self.numeric = [any(ch.isdigit() or ch == "." for ch in p) for p in pieces]

    @staticmethod
    def _prefixes(allowed: frozenset[str]) -> frozenset[str]:
        return frozenset(n[:i] for n in allowed for i in range(1, len(n) + 1))

    def ok(self, text: str, token: int, allowed: frozenset[str], prefixes: frozenset[str]) -> bool:
        """May `token` follow `text`?"""
        piece = self.pieces[token]
        tail = re.search(r"[\d.]*$", text)
        open_run = bool(tail and any(ch.isdigit() for ch in tail.group(0)))
        if not self.numeric[token] and not open_run:
            return True                                            # no number touched
        start = tail.start() if tail else len(text)
        region = text[start:] + piece
        for m in NUMBER.finditer(region):
            rest = region[m.end():]
            if rest == "":                                         # still open
                if m.group(0) not in prefixes:
                    return False
            elif rest == ".":  # a decimal point to come, or a full stop after a whole number
                if m.group(0) + "." not in prefixes and m.group(0) not in allowed:
                    return False
            elif m.group(0) not in allowed:
                return False
        return True

    def may_end(self, text: str, allowed: frozenset[str]) -> bool:
        """May the text stop here? Not while its last number is an unfinished prefix ("0.8" of
        "0.85"): stopping (eos or the token cap) would leave a number that is not in the evidence."""
        tail = re.search(r"[\d.]*$", text).group(0)              # the run `ok` treats as open
        last = list(NUMBER.finditer(tail))[-1:]
        return not last or tail[last[0].end():] not in ("", ".") or last[0].group(0) in allowed

    def choose(self, logits: Any, text: str, allowed: frozenset[str],
               prefixes: frozenset[str] | None = None) -> int:
        """The most probable token that `ok` admits (logits: (V,) tensor)."""
        prefixes = self._prefixes(allowed) if prefixes is None else prefixes
        order = logits.argsort(descending=True).tolist()
        for tok in order:
            if tok < len(self.pieces) and self.ok(text, tok, allowed, prefixes):
                return int(tok)
        # unreachable: an open number is always a prefix of an allowed one, which its digits can
        # complete, and with no number open any token without digits qualifies
        return int(order[0])


def token_pieces(tokenizer: Any) -> list[str]:
    """Each token id's text, decoded alone (digits and punctuation are single-byte, so exact)."""
    n = len(tokenizer)
    return [tokenizer.decode([i]) for i in range(n)]



def verdict_word_ids(pieces: Sequence[str], word: str) -> list[int]:
    """Token ids whose text is `word` in any case, with or without a leading space."""
    return [i for i, p in enumerate(pieces) if p.strip().lower() == word]
