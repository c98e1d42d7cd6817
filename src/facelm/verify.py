"""Verification: fused identity score, calibrated decision, and per-aspect differences."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import calibration as cal
from .errors import FaceLMError, InputFormatError
from .faces.identity import cosine
from .faces.types import FaceAnalysis, _round


@dataclass(frozen=True)
class Differences:
    """How the two faces differ, aspect by aspect (b minus a where signed)."""
    age_gap: float | None                 # |age_a - age_b| in years; None in fast mode
    gender_match: bool | None
    expression_a: str | None
    expression_b: str | None
    expression_distance: float | None     # total variation distance of the 7-class distributions
    yaw_gap: float                        # |yaw_a - yaw_b| in degrees
    pitch_gap: float
    roll_gap: float
    max_abs_yaw: float
    brightness_gap: float                 # |brightness_a - brightness_b|, 0..1
    sharpness_ratio: float                # sharper / blurrier, >= 1
    min_interocular_px: float
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
        }
        return _round(out)


def fused_score(s_sface: float, s_dlib: float) -> float:
    return cal.W_SFACE * s_sface + cal.W_DLIB * s_dlib


def probability(score: float) -> float:
    z = cal.PLATT_A * (score - cal.THRESHOLD) + cal.PLATT_B
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


def check_threshold(threshold: float) -> float:
    """The threshold, if it can decide anything: the fused score is a weighted mean of cosines
    (weights summing to 1), and a threshold outside 0..1 (or NaN, which every comparison fails)
    would make every pair the same or every pair different."""
    if not (math.isfinite(threshold) and 0.0 <= threshold <= 1.0):
        raise InputFormatError(f"the threshold must be a number from 0 to 1, not {threshold}",
                               item="--threshold", hint=f"the calibrated default is {cal.THRESHOLD}")
    return float(threshold)


def compare_analyses(a: FaceAnalysis, b: FaceAnalysis, *, threshold: float | None = None) -> Comparison:
    thr = cal.THRESHOLD if threshold is None else check_threshold(threshold)
    s = {"sface": cosine(a.embeddings["sface"], b.embeddings["sface"]),
         "dlib": cosine(a.embeddings["dlib"], b.embeddings["dlib"])}
    for model, value in s.items():  # analyses made here never hold NaN; ones read from JSON may
        if not math.isfinite(value):
            raise FaceLMError(f"the {model} similarity is not a number (an embedding holds NaN or "
                              "infinity)", item=f"{a.source} vs {b.source}",
                              hint="analyse both photos again; a damaged model file is reported then")
    score = fused_score(s["sface"], s["dlib"])
    verdicts = {"sface": s["sface"] >= cal.THRESHOLD_SFACE, "dlib": s["dlib"] >= cal.THRESHOLD_DLIB}
    return Comparison(same=score >= thr, score=score, threshold=thr, probability=probability(score),
                      scores=s, model_verdicts=verdicts, differences=differences(a, b), a=a, b=b)


def differences(a: FaceAnalysis, b: FaceAnalysis) -> Differences:
    aa, ab = a.attributes, b.attributes
    have = aa is not None and ab is not None
    ga, gb = dataclasses.asdict(a.geometry), dataclasses.asdict(b.geometry)
    rel = {k: abs(ga[k] - gb[k]) / max((ga[k] + gb[k]) / 2, 1e-6) for k in ga}
    largest = max(rel, key=rel.get)
    sa, sb = max(a.quality.sharpness, 1e-6), max(b.quality.sharpness, 1e-6)
    return Differences(
        age_gap=abs(aa.age - ab.age) if have else None,
        gender_match=(aa.gender == ab.gender) if have else None,
        expression_a=aa.expression if have else None,
        expression_b=ab.expression if have else None,
        expression_distance=_tv(aa.expression_probs, ab.expression_probs) if have else None,
        yaw_gap=abs(a.pose.yaw - b.pose.yaw), pitch_gap=abs(a.pose.pitch - b.pose.pitch),
        roll_gap=abs(a.pose.roll - b.pose.roll),
        max_abs_yaw=max(abs(a.pose.yaw), abs(b.pose.yaw)),
        brightness_gap=abs(a.quality.brightness - b.quality.brightness),
        sharpness_ratio=max(sa, sb) / min(sa, sb),
        min_interocular_px=min(a.quality.interocular_px, b.quality.interocular_px),
        geometry_distance=float(np.mean(list(rel.values()))),
        geometry_largest=(largest, rel[largest]),
    )


def _tv(p: dict[str, float], q: dict[str, float]) -> float:
    return 0.5 * sum(abs(p[k] - q.get(k, 0.0)) for k in p)
