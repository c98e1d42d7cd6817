"""Typed, JSON-serialisable results of face analysis.

Conventions (all in the image as displayed, after EXIF rotation):
* boxes are (x, y, w, h) in pixels; points are (x, y);
* yaw > 0: the face turns towards the image's right (the subject's left); pitch > 0: the face
  looks up; roll > 0: the head tilts clockwise in the image (its eye line descends to the right).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

Point = tuple[float, float]

EXPRESSIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]
    score: float
    landmarks5: tuple[Point, ...]  # right eye, left eye, nose tip, right/left mouth corner (YuNet)


@dataclass(frozen=True)
class Pose:
    yaw: float
    pitch: float
    roll: float
    # 90, 180 or 270 when the face lies turned clockwise in the image (a photo that lost its EXIF
    # orientation; see faces/orientation.py): roll is then measured in the image, and yaw and
    # pitch, fitted as if the face were upright, are not to be trusted.
    image_rotation: int = 0


@dataclass(frozen=True)
class Quality:
    brightness: float        # mean luma of the face region, 0..1
    contrast: float          # RMS contrast (std of luma) of the face region, 0..1
    sharpness: float         # variance of the Laplacian on the face resized to 112 px (scale-free)
    face_size_px: float      # the face box's shorter side, in pixels of the original image
    interocular_px: float    # distance between the eye centres, in pixels
    overexposed: float       # fraction of face pixels with luma >= 250
    underexposed: float      # fraction of face pixels with luma <= 5


@dataclass(frozen=True)
class Attributes:
    age: float                         # expected age in years (model range 0-80)
    age_range: tuple[float, float]     # 10th-90th percentile of the model's distribution, >= +-3 years
    gender: str                        # "female" | "male"
    gender_confidence: float           # probability of the stated gender
    expression: str                    # most probable of EXPRESSIONS
    expression_probs: dict[str, float]
    # UTKFace's five groups, for audits only (None when the estimator makes no race estimate)
    race: str | None = None
    race_confidence: float | None = None
    race_probs: dict[str, float] | None = None


@dataclass(frozen=True)
class Geometry:
    """Landmark ratios, each divided by the inter-ocular distance so scale cancels out."""
    face_width: float
    face_height: float
    eye_width: float
    nose_length: float
    nose_width: float
    mouth_width: float
    jaw_width: float
    brow_to_eye: float


@dataclass(frozen=True)
class FaceAnalysis:
    source: str
    image_size: tuple[int, int]          # (width, height) after EXIF rotation
    faces_found: int
    detection: Detection
    landmarks68: tuple[Point, ...]
    pose: Pose
    quality: Quality
    geometry: Geometry
    attributes: Attributes | None        # None when analysed in identity-only (fast) mode
    embeddings: dict[str, tuple[float, ...]] = field(repr=False)
    models: dict[str, str] = field(default_factory=dict)  # which model produced each value
    # The face's number in the photo (0-based, left to right; faces/select.py), None when the
    # analysis was made from a given box; and one line when several faces were found and this
    # one was chosen among them.
    face_index: int | None = None
    warnings: tuple[str, ...] = ()

    def to_dict(self, *, embeddings: bool = False) -> dict[str, Any]:
        """Plain JSON-ready dict; embeddings are left out unless asked for (256 floats)."""
        out = dataclasses.asdict(self)
        if not embeddings:
            out.pop("embeddings")
        return _round(out)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FaceAnalysis":
        det = d["detection"]
        attrs = d.get("attributes")
        return cls(
            source=d["source"], image_size=tuple(d["image_size"]), faces_found=d["faces_found"],
            detection=Detection(tuple(det["box"]), det["score"],
                                tuple(tuple(p) for p in det["landmarks5"])),
            landmarks68=tuple(tuple(p) for p in d["landmarks68"]),
            pose=Pose(**d["pose"]), quality=Quality(**d["quality"]),
            geometry=Geometry(**d["geometry"]),
            attributes=None if attrs is None else Attributes(
                **{**attrs, "age_range": tuple(attrs["age_range"])}),
            embeddings={k: tuple(v) for k, v in d.get("embeddings", {}).items()},
            models=dict(d.get("models", {})),
            face_index=d.get("face_index"), warnings=tuple(d.get("warnings", ())),
        )


@dataclass(frozen=True)
class FaceSet:
    """Every face of one photo (`--face all`), numbered from 0 left to right."""
    source: str
    image_size: tuple[int, int]
    faces: tuple[FaceAnalysis, ...]

    @property
    def faces_found(self) -> int:
        return len(self.faces)

    def to_dict(self, *, embeddings: bool = False) -> dict[str, Any]:
        # warnings stays empty: nothing was chosen, so there is nothing to warn about; it is there
        # so that one-face and all-face JSON can be read by the same code.
        return {"source": self.source, "image_size": list(self.image_size),
                "faces_found": self.faces_found, "warnings": [],
                "faces": [f.to_dict(embeddings=embeddings) for f in self.faces]}


def _round(obj: Any, ndigits: int = 4) -> Any:
    """Round floats so JSON stays readable; 4 decimals is far below any model's precision.
    A non-finite value becomes None: `NaN` is not JSON, and strict parsers refuse the document."""
    if isinstance(obj, float):
        return round(obj, ndigits) if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _round(v, ndigits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_round(v, ndigits) for v in obj]
    return obj
