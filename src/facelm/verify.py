"""Verification: fused identity score, calibrated decision, and per-aspect differences."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import calibration as cal
from . import score_norm
from .errors import FaceLMError, InputFormatError
from .faces.identity import cosine
from .faces.types import FaceAnalysis, _round


@dataclass(frozen=True)
class Differences:
    """How the two faces differ, aspect by aspect, rounded as the explanation texts state them.

    One rule, so that the JSON, the web table and the texts show the same numbers: a gap between
    two per-face values that the texts state rounded (ages, angles, brightness) is the gap of the
    *stated* values ("yaw +12° and -20°, gap 32°" adds up), and every other value is rounded to the
    precision the texts state it at. The texts format these values and nothing else.
    """
    age_gap: int | None                   # |age_a - age_b| of whole-year ages; None in fast mode
    gender_match: bool | None
    expression_a: str | None
    expression_b: str | None
    expression_distance: float | None     # total variation distance of the 7-class distributions
    yaw_gap: int                          # |yaw_a - yaw_b| of whole-degree angles
    pitch_gap: int
    roll_gap: int
    max_abs_yaw: int
    brightness_gap: float                 # |brightness_a - brightness_b| of whole percentages, 0..1
    sharpness_ratio: float                # sharper / blurrier, >= 1, one decimal
    min_interocular_px: int
    geometry_distance: float              # mean relative difference of the landmark ratios
    geometry_largest: tuple[str, float]   # the ratio that differs most, relative difference


@dataclass(frozen=True)
class Comparison:
    same: bool
    score: float                # fused cosine similarity
    threshold: float
    probability: float          # calibrated P(same person | score)
    scores: dict[str, float]    # per identity model cosine similarity
    model_verdicts: dict[str, bool]
    differences: Differences
    a: FaceAnalysis
    b: FaceAnalysis
    explanation: Any = None     # facelm.explain.PairExplanation, set by facelm.compare
    # With --face all: which faces of A and B are the best-matching pair (facelm/multiface.py)
    face_pair: dict[str, Any] | None = None

    @property
    def confidence(self) -> float:
        """Probability of the stated verdict."""
        return self.probability if self.same else 1.0 - self.probability

    @property
    def models_agree(self) -> bool:
        return len(set(self.model_verdicts.values())) == 1

    def to_dict(self, *, embeddings: bool = False) -> dict[str, Any]:
        out = {
            "same": self.same, "score": self.score, "threshold": self.threshold,
            "probability": self.probability, "confidence": self.confidence,
            "scores": self.scores, "model_verdicts": self.model_verdicts,
            "differences": dataclasses.asdict(self.differences),
            "explanation": None if self.explanation is None else self.explanation.to_dict(),
            "a": self.a.to_dict(embeddings=embeddings), "b": self.b.to_dict(embeddings=embeddings),
            "warnings": [*self.a.warnings, *self.b.warnings],
        }
        if self.face_pair is not None:
            out["face_pair"] = self.face_pair
        return _round(out)


def fused_score(s_sface: float, s_dlib: float) -> float:
    return cal.W_SFACE * s_sface + cal.W_DLIB * s_dlib


def probability(score: float, centre: float = cal.THRESHOLD, slope: float = cal.PLATT_A) -> float:
    """Platt-calibrated P(same person | score), 0.5 at the calibrated threshold `centre`."""
    z = slope * (score - centre) + cal.PLATT_B
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


def check_threshold(threshold: float) -> float:
    """The threshold, if it can decide anything: the fused score is a weighted mean of cosines
    (weights summing to 1), and a threshold outside 0..1 (or NaN, which every comparison fails)
    would make every pair the same or every pair different."""
    if not (math.isfinite(threshold) and 0.0 <= threshold <= 1.0):
        raise InputFormatError(f"the threshold must be a number from 0 to 1, not {threshold}",
                               item="--threshold", hint=f"the calibrated default is {score_norm.operating_point()[0]}")
    return float(threshold)


def compare_analyses(a: FaceAnalysis, b: FaceAnalysis, *, threshold: float | None = None) -> Comparison:
    centre, slope, fsn = score_norm.operating_point()
    thr = centre if threshold is None else check_threshold(threshold)
    s = {"sface": cosine(a.embeddings["sface"], b.embeddings["sface"]),
         "dlib": cosine(a.embeddings["dlib"], b.embeddings["dlib"])}
    for model, value in s.items():  # analyses made here never hold NaN; ones read from JSON may
        if not math.isfinite(value):
            raise FaceLMError(f"the {model} similarity is not a number (an embedding holds NaN or "
                              "infinity)", item=f"{a.source} vs {b.source}",
                              hint="analyse both photos again; a damaged model file is reported then")
    score = score_norm.normalise(fused_score(s["sface"], s["dlib"]), a.embeddings, b.embeddings, fsn)
    verdicts = {"sface": s["sface"] >= cal.THRESHOLD_SFACE, "dlib": s["dlib"] >= cal.THRESHOLD_DLIB}
    return Comparison(same=score >= thr, score=score, threshold=thr, probability=probability(score, centre, slope),
                      scores=s, model_verdicts=verdicts, differences=differences(a, b), a=a, b=b)


def identity_verdict(a: dict[str, Any], b: dict[str, Any], *,
                     threshold: float | None = None) -> dict[str, Any]:
    """The calibrated verdict from two photos' embeddings alone ({"sface": v, "dlib": v}, e.g.
    read from an analysis table): what `compare` decides, without differences or explanations."""
    centre, slope, fsn = score_norm.operating_point()
    thr = centre if threshold is None else check_threshold(threshold)
    s = {m: float(np.dot(np.asarray(a[m], np.float64), np.asarray(b[m], np.float64)))
         for m in ("sface", "dlib")}
    score = score_norm.normalise(fused_score(s["sface"], s["dlib"]), a, b, fsn)
    p = probability(score, centre, slope)
    return _round({"same": score >= thr, "score": score, "threshold": thr, "probability": p,
                   "confidence": p if score >= thr else 1.0 - p, "scores": s,
                   "model_verdicts": {"sface": s["sface"] >= cal.THRESHOLD_SFACE,
                                      "dlib": s["dlib"] >= cal.THRESHOLD_DLIB}})


def whole(x: float) -> int:
    """A value as the texts state it in whole units (degrees, years, pixels, percent)."""
    return int(round(x))


def stated_gap(x: float, y: float) -> int:
    """Gap of the stated (whole) values, so "yaw +12° and -20° (gap 32°)" adds up (and audits)."""
    return abs(whole(x) - whole(y))


def differences(a: FaceAnalysis, b: FaceAnalysis) -> Differences:
    aa, ab = a.attributes, b.attributes
    have = aa is not None and ab is not None
    ga, gb = dataclasses.asdict(a.geometry), dataclasses.asdict(b.geometry)
    rel = {k: abs(ga[k] - gb[k]) / max((ga[k] + gb[k]) / 2, 1e-6) for k in ga}
    largest = max(rel, key=rel.get)
    sa, sb = max(a.quality.sharpness, 1e-6), max(b.quality.sharpness, 1e-6)
    pa, pb = a.pose, b.pose
    return Differences(
        age_gap=stated_gap(aa.age, ab.age) if have else None,
        gender_match=(aa.gender == ab.gender) if have else None,
        expression_a=aa.expression if have else None,
        expression_b=ab.expression if have else None,
        expression_distance=round(_tv(aa.expression_probs, ab.expression_probs), 2) if have else None,
        yaw_gap=stated_gap(pa.yaw, pb.yaw), pitch_gap=stated_gap(pa.pitch, pb.pitch),
        roll_gap=stated_gap(pa.roll, pb.roll),
        max_abs_yaw=max(abs(whole(pa.yaw)), abs(whole(pb.yaw))),
        # brightness is stated as a whole percentage of full scale
        brightness_gap=stated_gap(a.quality.brightness * 100, b.quality.brightness * 100) / 100,
        sharpness_ratio=round(max(sa, sb) / min(sa, sb), 1),
        min_interocular_px=whole(min(a.quality.interocular_px, b.quality.interocular_px)),
        geometry_distance=round(float(np.mean(list(rel.values()))), 3),
        geometry_largest=(largest, round(rel[largest], 3)),
    )


def _tv(p: dict[str, float], q: dict[str, float]) -> float:
    return 0.5 * sum(abs(p[k] - q.get(k, 0.0)) for k in p)
