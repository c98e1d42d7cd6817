"""Per-aspect descriptions of one face (the FaceLLM aspects), each grounded in measured values.

Every number stated comes from the FaceAnalysis (rounded as phrasing.py does); what the analysis
did not measure is said to be unmeasured, never guessed.
"""
from __future__ import annotations

import random
from typing import Callable

from ..faces.types import FaceAnalysis
from . import evidence as E
from .hedges import attribute_hedge, flag_clauses, pitch_phrase, roll_phrase, yaw_phrase
from .phrasing import (age_span, age_years, article, capitalise, deg, join_list, pct, pick, px,
                       ratio, rng_for, sentences, share, signed_deg, years)

ASPECTS = ("demographics", "facial_structure", "skin_texture", "expression", "lighting_quality",
           "pose", "forensic", "general")

ASPECT_TITLES = {
    "demographics": "Demographics", "facial_structure": "Facial structure",
    "skin_texture": "Skin texture", "expression": "Expression and emotion",
    "lighting_quality": "Lighting and image quality", "pose": "Face pose",
    "forensic": "Forensic considerations", "general": "General description",
}

_NOT_ESTIMATED = ("{what} {were} not estimated for this face: it was analysed in identity-only "
                  "(fast) mode, so nothing is claimed about {them}.",
                  "This analysis ran in fast, identity-only mode, so {what} {were} not estimated "
                  "and nothing is said about {them}.")


def face_key(a: FaceAnalysis) -> tuple:
    """Measured fields of the input that, with the seed, pick the wording. Not the file's path:
    the CLI (a path) and the HTTP API (an upload's name) must word the same photo identically."""
    return (tuple(a.image_size), a.faces_found, round(a.quality.interocular_px, 1),
            round(a.pose.yaw), a.attributes is not None)


def _gender_sentence(a: FaceAnalysis, rng: random.Random) -> str:
    at = a.attributes
    if at.gender_confidence < E.LOW_GENDER_CONFIDENCE:
        out = pick(rng, ("The gender classifier leans {g} at only {c}, too low to rely on.",
                         "Gender is uncertain: the classifier gives {g} just {c}."),
                   g=at.gender, c=pct(at.gender_confidence))
    else:
        out = pick(rng, ("The gender classifier says {g} ({c} confidence).",
                         "Predicted gender: {g}, with {c} confidence."),
                   g=at.gender, c=pct(at.gender_confidence))
    if E.gender_unreliable(a):
        out += " " + pick(rng, ("For faces of this estimated age it is right only {acc} of the time on "
                                "held-out photos, so treat it as a guess.",
                                "At this estimated age its measured accuracy is just {acc}, so it is "
                                "a weak reading."), acc=pct(E.gender_band_accuracy(a)))
    return out


def _race_sentence(a: FaceAnalysis, rng: random.Random) -> str | None:
    """The race head's reading, always with its confidence and as an audit aid, never identity."""
    at = a.attributes
    if at.race is None:
        return None
    if at.race_confidence < E.LOW_RACE_CONFIDENCE:
        return pick(rng, ("The race estimate (UTKFace's five groups) is unsure: its top group, {r}, "
                          "gets only {c}, so none is stated as a reading.",
                          "No race group is clear: the estimate's best, {r}, reaches just {c}."),
                    r=at.race, c=pct(at.race_confidence))
    return pick(rng, ("The race estimate (UTKFace's five groups, for audits) reads {r} at {c}; it "
                      "describes appearance, not identity.",
                      "Estimated race group: {r} ({c}), an audit aid that says nothing about "
                      "identity."), r=at.race, c=pct(at.race_confidence))


def _demographics(a: FaceAnalysis, rng: random.Random) -> str:
    at = a.attributes
    ethnicity = pick(rng, ("Ethnicity is not estimated by facelm, so none is stated.",
                           "No ethnicity estimate is made; facelm does not measure it."))
    if at is None:
        return sentences(pick(rng, _NOT_ESTIMATED, what="Age and gender", were="were",
                              them="them"), ethnicity)
    lo, hi = at.age_range
    age = age_years(at.age)
    if round(hi) - round(lo) >= 2:
        age_s = pick(rng, ("The age model estimates about {age} (10th–90th percentile {span}).",
                           "Estimated age: about {age}, with the model's likely range {span}."),
                     age=years(age), span=age_span(lo, hi))
    else:
        age_s = pick(rng, ("The age model estimates about {age}; its spread is narrow, which "
                           "reflects the model's certainty, not its accuracy.",
                           "Estimated age: about {age} (a narrow model spread, which is not "
                           "the same as being accurate)."), age=years(age))
    caveat = E.age_caveat(a)
    if caveat == "child":
        age_s += " " + pick(rng, ("Age estimates for apparent children and infants are unreliable, "
                                  "so take the number as rough.",
                                  "For an apparent child, age models are unreliable; read the "
                                  "number loosely."))
    elif caveat == "wide":
        age_s += " The range is wide, so the model is unsure of the age."
    gender_s = _gender_sentence(a, rng)
    ethnicity = _race_sentence(a, rng) or ethnicity
    return sentences(age_s, gender_s, ethnicity,
                     attribute_hedge(a, rng, "the age and gender estimates"))


def _geometry_outliers(a: FaceAnalysis) -> list[str]:
    g = a.geometry.__dict__
    out = []
    for name, (lo, hi) in E.GEOMETRY_REFERENCE.items():
        typical = f"typically {ratio(lo)}–{ratio(hi)}×"
        if g[name] > hi:
            out.append(f"the {E.GEOMETRY_NAMES[name]} is larger than most ({ratio(g[name])}×, "
                       f"{typical})")
        elif g[name] < lo:
            out.append(f"the {E.GEOMETRY_NAMES[name]} is smaller than most ({ratio(g[name])}×, "
                       f"{typical})")
    return out


def _facial_structure(a: FaceAnalysis, rng: random.Random) -> str:
    g = a.geometry
    head = pick(rng, ("Measured from 68 landmarks, relative to the distance between the eyes: ",
                      "Landmark proportions, in units of the eye spacing: "))
    ratios = (f"face width {ratio(g.face_width)}×, nose-bridge-to-chin height "
              f"{ratio(g.face_height)}×, jaw width {ratio(g.jaw_width)}×, nose length "
              f"{ratio(g.nose_length)}× and mouth width {ratio(g.mouth_width)}×.")
    if a.pose.image_rotation:  # landmarks fitted to a face on its side: no yaw/pitch to state
        compare = ("The face lies on its side in the image, so the landmarks, and these ratios, "
                   "are not reliable and are not compared with typical values.")
    elif not E.near_frontal(a):
        compare = pick(rng, ("The head is not near-frontal (yaw {y}, pitch {p}), which foreshortens "
                             "these ratios, so they are not compared with frontal norms.",
                             "Because the face is turned (yaw {y}, pitch {p}), the ratios are "
                             "distorted by perspective and are not compared with typical values."),
                       y=deg(a.pose.yaw), p=deg(a.pose.pitch))
    else:
        outliers = _geometry_outliers(a)
        if outliers:
            compare = ("Against 86 near-frontal LFW reference faces, " + join_list(outliers[:3])
                       + ".")
        else:
            compare = pick(rng, ("All of these fall within the 10th–90th percentile of 86 "
                                 "near-frontal LFW reference faces: nothing stands out.",
                                 "Each ratio is typical of our near-frontal LFW reference sample "
                                 "(within its 10th–90th percentiles)."))
    hedge = ""
    if a.quality.interocular_px < E.LOW_RES_INTEROCULAR_PX:
        hedge = "At this low resolution the landmarks, and so the ratios, are imprecise."
    return sentences(head + ratios, compare, hedge)


def _skin_texture(a: FaceAnalysis, rng: random.Random) -> str:
    q = a.quality
    level = E.sharpness_level(q.sharpness)
    base = pick(rng, ("Skin texture is not measured directly; what the pixels support: the face "
                      "spans {io} between the eyes and is {lvl} (sharpness {sh}).",
                      "No model measures skin texture here. The image gives {io} between the eyes "
                      "and the face is {lvl} (sharpness {sh})."),
                io=px(q.interocular_px), lvl=level, sh=f"{q.sharpness:.2f}")
    if level == "blurred" or q.interocular_px < E.LOW_RES_INTEROCULAR_PX:
        detail = "Texture detail is lost: only broad shading survives, so no texture can be judged."
    elif q.interocular_px >= E.TEXTURE_INTEROCULAR_PX and q.sharpness >= E.SHARP_SHARPNESS:
        detail = ("That is enough resolution and focus for fine texture to be visible in the "
                  "image itself.")
    else:
        detail = ("That resolves coarse shading but not fine texture such as pores, so skin "
                  "smoothness cannot be judged.")
    contrast = f"Contrast across the face is {share(q.contrast)} (RMS)"
    if q.contrast < E.LOW_CONTRAST:
        contrast += ", low enough to make skin look smoother than it is"
    clip = ""
    if q.overexposed > E.CLIPPED_FRACTION:
        clip = f"{share(q.overexposed)} of face pixels are clipped to white, hiding texture there."
    unmeasured = pick(rng, ("Wrinkles, spots, blemishes or make-up are not detected by any model "
                            "here, so none are claimed.",
                            "Nothing is claimed about wrinkles, spots or blemishes: no model "
                            "measured them."))
    return sentences(base, detail, contrast + ".", clip, unmeasured)


def _expression(a: FaceAnalysis, rng: random.Random) -> str:
    at = a.attributes
    if at is None:
        return pick(rng, _NOT_ESTIMATED, what="Expression and emotion", were="were", them="them")
    ranked = sorted(at.expression_probs.items(), key=lambda kv: -kv[1])
    (top, p1), (second, p2) = ranked[0], ranked[1]
    if p1 < E.FLAT_EXPRESSION:
        main = pick(rng, ("No expression dominates: the model's top class, {t}, has only {p1}, "
                          "with {s} at {p2}, so the expression is ambiguous.",
                          "The expression is ambiguous: {t} leads at just {p1}, followed by "
                          "{s} at {p2}."), t=top, p1=pct(p1), s=second, p2=pct(p2))
    else:
        main = pick(rng, ("The expression model reads the face as {t} ({p1}), with {s} next at {p2}.",
                          "Most probable expression: {t} at {p1}; the runner-up, {s}, has {p2}."),
                    t=top, p1=pct(p1), s=second, p2=pct(p2))
    note = pick(rng, ("This is the apparent facial expression, not a measurement of what the "
                      "person feels.",
                      "It describes the visible expression only; inner emotion is not measured."))
    return sentences(main, note, attribute_hedge(a, rng, "the expression reading"))


def _lighting_quality(a: FaceAnalysis, rng: random.Random) -> str:
    q = a.quality
    light = pick(rng, ("The face is {lvl}, with mean brightness {br} and contrast {ct}.",
                       "Lighting on the face: {lvl} (brightness {br}, contrast {ct})."),
                 lvl=E.brightness_level(q.brightness), br=share(q.brightness),
                 ct=share(q.contrast))
    res = pick(rng, ("It is {lvl} (sharpness {sh}) and {fs} wide, {io} between the eyes.",
                     "Focus: {lvl} (sharpness {sh}); size: {fs} across, {io} between the eyes."),
               lvl=E.sharpness_level(q.sharpness), sh=f"{q.sharpness:.2f}",
               fs=px(q.face_size_px), io=px(q.interocular_px))
    flags = [f for f in E.quality_flags(a) if f in ("low_resolution", "blurred", "underexposed",
                                                     "overexposed", "low_contrast")]
    if flags:
        verdict = capitalise(join_list(flag_clauses(a, flags, rng))) + "."
    else:
        verdict = pick(rng, ("No exposure, focus or resolution problem was detected.",
                             "Image quality is adequate for the face models: no exposure, blur or "
                             "resolution problem was found."))
    return sentences(light, res, verdict)


def _pose(a: FaceAnalysis, rng: random.Random) -> str:
    p = a.pose
    if a.pose.image_rotation:  # yaw and pitch were fitted as if the face were upright: unsaid
        return sentences(capitalise(flag_clauses(a, ["rotated"], rng)[0]) + ".",
                         "Rotate the photo upright: every model here expects an upright face, and "
                         "yaw and pitch cannot be measured until then.")
    if not E.pose_reliable(a):
        return sentences(capitalise(flag_clauses(a, ["pose_unreliable"], rng)[0]) + ".",
                         f"Taken at face value it would be yaw {signed_deg(p.yaw)}, "
                         f"pitch {signed_deg(p.pitch)}.")
    frontal = all(abs(v) < E.FRONTAL_YAW_DEG for v in (p.yaw, p.pitch, p.roll))
    lead = "The face is near-frontal: " if frontal else "Head pose: "
    body = pick(rng, ("{y}, {p} and {r}.", "the face is {y}, {p}, and {r}."),
                y=yaw_phrase(p.yaw), p=pitch_phrase(p.pitch), r=roll_phrase(p.roll))
    flags = [f for f in E.quality_flags(a) if f in ("rotated", "strong_yaw", "strong_pitch")]
    hedge = ""
    if flags:
        hedge = capitalise(join_list(flag_clauses(a, flags, rng))) + (
            ", which makes identity and attribute estimates less reliable.")
    return sentences(lead + body, hedge, "Angles come from fitting a generic 3D face to landmarks, "
                     "so they are approximate to a few degrees.")


def _forensic(a: FaceAnalysis, rng: random.Random) -> str:
    n = a.faces_found
    if n > 1:
        faces = pick(rng, ("{n} faces were detected in the image; only the largest, most central "
                           "one is analysed, so confirm it is the person of interest.",
                           "The image contains {n} faces (detected); this analysis covers the "
                           "main one only, and another face was present."), n=n)
    else:
        faces = "Exactly one face was detected in the image."
    w, h = a.image_size
    res = (f"The image is {w}×{h} px and the face {px(a.quality.face_size_px)} wide, "
           f"{px(a.quality.interocular_px)} between the eyes.")
    flags = E.quality_flags(a)
    if flags:
        limits = pick(rng, ("Limits on what it supports: {c}.", "Evidential limits: {c}."),
                      c=join_list(flag_clauses(a, flags, rng)))
    else:
        limits = pick(rng, ("No quality, pose or resolution limit was flagged.",
                            "Quality, pose and resolution raise no flag here."))
    pose = ("" if not E.pose_reliable(a) else
            f"Head pose: yaw {signed_deg(a.pose.yaw)}, pitch {signed_deg(a.pose.pitch)}.")
    fast = ("" if a.attributes is not None else
            "Age, gender and expression were not estimated (identity-only analysis).")
    caveat = pick(rng, ("All estimates are outputs of automatic models, not ground truth, and must "
                        "not be used alone to identify anyone.",
                        "Every value here is a model output, not ground truth; it cannot identify "
                        "a person on its own."))
    return sentences(faces, res, limits, pose, fast, caveat)


def _general(a: FaceAnalysis, rng: random.Random) -> str:
    w, h = a.image_size
    at = a.attributes
    pose = "a near-frontal" if E.near_frontal(a) else "a turned or tilted"
    if not E.pose_reliable(a):
        pose = "an uncertain-pose"
    where = "" if a.faces_found == 1 else f", one of {a.faces_found} faces in the image"
    lead = pick(rng, ("A {w}×{h} photo showing {pose} face{where}.",
                      "This {w}×{h} image shows {pose} face{where}."),
                w=w, h=h, pose=pose, where=where)
    q = a.quality
    look = (f"The face is {E.brightness_level(q.brightness)} and {E.sharpness_level(q.sharpness)}, "
            f"{px(q.interocular_px)} between the eyes.")
    if at is None:
        who = "Age, gender and expression were not estimated (identity-only analysis)."
    else:
        gender = (at.gender if at.gender_confidence >= E.LOW_GENDER_CONFIDENCE
                  else "person of uncertain gender")
        top = max(at.expression_probs.values())
        expr = (f"{article(at.expression)} {at.expression} expression" if top >= E.FLAT_EXPRESSION
                else "an ambiguous expression")
        who = pick(rng, ("The models estimate a {g} of about {age} with {e}.",
                         "Estimated: {g}, about {age} old, showing {e}."),
                   g=gender, age=years(age_years(at.age)), e=expr)
        if E.age_caveat(a) == "child":
            who += " Age estimates for children are unreliable."
    return sentences(lead, look, who, attribute_hedge(a, rng, "these estimates"))


_DESCRIBERS: dict[str, Callable[[FaceAnalysis, random.Random], str]] = {
    "demographics": _demographics, "facial_structure": _facial_structure,
    "skin_texture": _skin_texture, "expression": _expression,
    "lighting_quality": _lighting_quality, "pose": _pose, "forensic": _forensic,
    "general": _general,
}


def describe_face(a: FaceAnalysis, aspect: str, *, seed: int = 0) -> str:
    """Describe one aspect of a face (one of ASPECTS) from its measurements.

    The wording is chosen deterministically from `seed` and the analysis; every number stated is a
    rounded measured value, and unmeasured properties are said to be unmeasured.
    Raises ValueError for an unknown aspect.
    """
    if aspect not in _DESCRIBERS:
        raise ValueError(f"unknown aspect {aspect!r}; valid aspects are: {', '.join(ASPECTS)}")
    return _DESCRIBERS[aspect](a, rng_for(seed, "aspect", aspect, *face_key(a)))


def describe_all(a: FaceAnalysis, *, seed: int = 0) -> dict[str, str]:
    """All eight aspects, keyed by the names in ASPECTS (in that order)."""
    return {aspect: describe_face(a, aspect, seed=seed) for aspect in ASPECTS}
