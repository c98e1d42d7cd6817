"""What the measurements support: hedge thresholds, quality flags and the evidence record.

Each threshold is a named constant with the reason for its value. Sharpness and brightness levels
were calibrated on real photos: 40 LFW View 1 test photos (250x250, faces 35-50 px between the
eyes), the same photos Gaussian-blurred, 40 UTKFace crops and the deepface/face-api.js samples.
"""
from __future__ import annotations

from typing import Any

from ..faces.types import FaceAnalysis

# Resolution. The identity and attribute networks read 112-150 px face chips; below ~30 px between
# the eyes (a face ~70 px wide) the chip is mostly upsampling and fine detail is lost.
LOW_RES_INTEROCULAR_PX = 30.0
# Skin texture (pores, fine lines) needs far more pixels than identity: ~60 px between the eyes.
TEXTURE_INTEROCULAR_PX = 60.0

# Sharpness (variance of the Laplacian on the 112 px face, x1000; see faces/quality.py).
# Unblurred LFW photos: 5th percentile 0.56, median 1.37; the same photos blurred with a Gaussian of
# sigma 2 px: median 0.21, 95th percentile 0.37. Below 0.35 a face is reported as blurred.
BLURRED_SHARPNESS = 0.35
# LFW's soft, JPEG-compressed photos sit around 1-2.5; camera-original photos reach 5-20.
SOFT_SHARPNESS = 1.0
SHARP_SHARPNESS = 4.0

# Exposure. Mean face luma on LFW spans 0.22-0.64; faces outside 0.2-0.8 are dark or bright, and
# more than 5% of face pixels clipped at black or white means detail was lost there.
DARK_BRIGHTNESS = 0.20
BRIGHT_BRIGHTNESS = 0.80
CLIPPED_FRACTION = 0.05
# RMS contrast of the face: LFW's minimum is 0.08, its median 0.16.
LOW_CONTRAST = 0.09

# Pose. Attribute and identity models are trained mostly on faces within ~30 degrees of frontal;
# pitch estimates from 2D landmarks are noisier, so the pitch bound is tighter.
STRONG_YAW_DEG = 30.0
STRONG_PITCH_DEG = 20.0
# Landmark ratios compare like with like only when both faces are near-frontal: yaw foreshortens
# widths by cos(yaw), about 6% at 20 degrees, the size of a typical same-person ratio difference.
NEAR_FRONTAL_YAW_DEG = 20.0
NEAR_FRONTAL_PITCH_DEG = 15.0
# A photo of an upright person cannot have its head rolled past 90 degrees; the PnP pose solver
# sometimes returns such a mirrored solution for turned faces, and then its angles are not trusted.
IMPLAUSIBLE_ROLL_DEG = 90.0
# A face rolled past this in the image lies on its side: most often a photo that lost its EXIF
# orientation (faces/orientation.py finds those). Landmarks and identity models expect upright
# faces: a 90-degree turn drops the same person's LFW score from ~1.0 to ~0.72, below the threshold.
ROTATED_ROLL_DEG = 45.0
FRONTAL_YAW_DEG = 10.0

# Attributes. Below 0.7 the gender classifier is close to a coin toss for this face.
LOW_GENDER_CONFIDENCE = 0.70
# A top expression probability under 0.5 means no class dominates the 7-way distribution.
FLAT_EXPRESSION = 0.50
# Age models (trained mostly on adults) are unreliable for children and infants.
CHILD_AGE = 13.0
# A 10th-90th percentile spread of 20+ years means the age model is unsure.
WIDE_AGE_RANGE = 20.0

# Reference landmark ratios (10th, 90th percentile) of 86 near-frontal faces (|yaw| < 20,
# |pitch| < 15) from LFW View 1 train, used to say "wider/narrower than most" with a basis.
GEOMETRY_REFERENCE = {
    "face_width": (2.16, 2.48), "face_height": (1.72, 2.13), "eye_width": (0.36, 0.41),
    "nose_length": (0.72, 0.88), "nose_width": (0.39, 0.52), "mouth_width": (0.77, 1.06),
    "jaw_width": (1.73, 2.06), "brow_to_eye": (0.20, 0.36),
}
GEOMETRY_NAMES = {
    "face_width": "face width", "face_height": "nose-bridge-to-chin height",
    "eye_width": "eye width", "nose_length": "nose length", "nose_width": "nose width",
    "mouth_width": "mouth width", "jaw_width": "jaw width", "brow_to_eye": "brow-to-eye distance",
}


def pose_reliable(a: FaceAnalysis) -> bool:
    # yaw and pitch of a face turned in the image were fitted as if it were upright
    return abs(a.pose.roll) <= IMPLAUSIBLE_ROLL_DEG and not a.pose.image_rotation


def rotated(a: FaceAnalysis) -> bool:
    """The face is turned in the image (found by re-detection, or a measured roll past 45)."""
    return bool(a.pose.image_rotation) or ROTATED_ROLL_DEG < abs(a.pose.roll) <= IMPLAUSIBLE_ROLL_DEG


def near_frontal(a: FaceAnalysis) -> bool:
    return (pose_reliable(a) and abs(a.pose.yaw) < NEAR_FRONTAL_YAW_DEG
            and abs(a.pose.pitch) < NEAR_FRONTAL_PITCH_DEG)


def quality_flags(a: FaceAnalysis) -> list[str]:
    """Conditions that weaken what can be read from this face, most serious first."""
    q, p = a.quality, a.pose
    flags = []
    if q.interocular_px < LOW_RES_INTEROCULAR_PX:
        flags.append("low_resolution")
    if q.sharpness < BLURRED_SHARPNESS:
        flags.append("blurred")
    if q.brightness < DARK_BRIGHTNESS or q.underexposed > CLIPPED_FRACTION:
        flags.append("underexposed")
    if q.brightness > BRIGHT_BRIGHTNESS or q.overexposed > CLIPPED_FRACTION:
        flags.append("overexposed")
    if q.contrast < LOW_CONTRAST:
        flags.append("low_contrast")
    if rotated(a):  # first among the pose flags: it is the one a user can fix (rotate the photo)
        flags.append("rotated")
    if not pose_reliable(a):
        if not a.pose.image_rotation:
            flags.append("pose_unreliable")
    else:
        if abs(p.yaw) > STRONG_YAW_DEG:
            flags.append("strong_yaw")
        if abs(p.pitch) > STRONG_PITCH_DEG:
            flags.append("strong_pitch")
    return flags


# Flags that make attribute estimates (age, gender, expression) less trustworthy.
ATTRIBUTE_HEDGE_FLAGS = ("low_resolution", "blurred", "underexposed", "overexposed",
                         "strong_yaw", "strong_pitch", "pose_unreliable", "rotated")


def sharpness_level(s: float) -> str:
    if s < BLURRED_SHARPNESS:
        return "blurred"
    if s < SOFT_SHARPNESS:
        return "soft"
    if s < SHARP_SHARPNESS:
        return "moderately sharp"
    return "sharp"


def brightness_level(b: float) -> str:
    if b < DARK_BRIGHTNESS:
        return "dark"
    if b < 0.35:
        return "somewhat dim"
    if b <= 0.65:
        return "evenly exposed"
    if b <= BRIGHT_BRIGHTNESS:
        return "bright"
    return "very bright"


# A gender estimate is hedged when the heads' measured accuracy for the face's estimated age band
# (the model card stored with the weights, utkface-dev) is below this.
GENDER_BAND_MIN = 0.90
# Below this the race head's top group is not stated as a reading at all.
LOW_RACE_CONFIDENCE = 0.60


def gender_band_accuracy(a: FaceAnalysis) -> float | None:
    """Measured gender accuracy of the attribute heads for faces of this estimated age (None when
    the heads did not run: the dlib-v1 estimator has no such table)."""
    at = a.attributes
    if at is None or at.race is None:
        return None
    from ..faces.attr_heads import shipped
    bands = shipped()[1]["gender_by_age_band"]
    for name, acc in bands.items():
        lo, _, hi = name.partition("-")
        if float(at.age) >= float(lo.rstrip("+")) and (not hi or float(at.age) < float(hi) + 1):
            return float(acc)
    return None


def gender_unreliable(a: FaceAnalysis) -> bool:
    acc = gender_band_accuracy(a)
    return acc is not None and acc < GENDER_BAND_MIN


def age_caveat(a: FaceAnalysis) -> str | None:
    """Why the age estimate is weak, if it is: 'child', 'wide' (an unsure model) or None."""
    at = a.attributes
    if at is None:
        return None
    if at.age < CHILD_AGE:
        return "child"
    if at.age_range[1] - at.age_range[0] >= WIDE_AGE_RANGE:
        return "wide"
    return None


def face_evidence(a: FaceAnalysis) -> dict[str, Any]:
    """The measured values an explanation of this face may state, rounded as they are stated."""
    q, p = a.quality, a.pose
    ev: dict[str, Any] = {
        "faces_found": a.faces_found, "image_size": list(a.image_size),
        "yaw_deg": round(p.yaw), "pitch_deg": round(p.pitch), "roll_deg": round(p.roll),
        "pose_reliable": pose_reliable(a),
        "brightness": round(q.brightness, 2), "contrast": round(q.contrast, 2),
        "sharpness": round(q.sharpness, 2), "sharpness_level": sharpness_level(q.sharpness),
        "face_size_px": round(q.face_size_px), "interocular_px": round(q.interocular_px),
        "overexposed": round(q.overexposed, 3), "underexposed": round(q.underexposed, 3),
        "flags": quality_flags(a), "attributes_estimated": a.attributes is not None,
    }
    at = a.attributes
    if at is not None:
        ev.update({
            "age": round(at.age), "age_range": [round(v, 2) for v in at.age_range],
            "age_caveat": age_caveat(a), "gender": at.gender,
            "gender_confidence": round(at.gender_confidence, 3),
            "expression": at.expression,
            "expression_probs": {k: round(v, 3) for k, v in at.expression_probs.items()},
        })
    return ev
