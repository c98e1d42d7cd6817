"""What the trained attribute heads read about one face: features facelm already computes.

Both identity embeddings, the age network's pooled 256-d activations and its 81-bin distribution,
the gender network's 16-d hidden layer and logits, and the colour of the face chip (skin tone is
the strongest cue for the race head and costs nothing). The age and gender ONNX graphs are reused
with their intermediate tensors exposed as extra outputs, so one run per chip gives both the old
estimates and the features.
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from . import models

# Bump when the features change: shipped heads record the version they were fitted on.
FEATURE_VERSION = 1
_EXTRA = {"age": ("layer_1_flatten", "logits"), "gender": ("layer_3_relu", "logits")}
# The vector's blocks in order, with their widths: the one place their offsets come from.
BLOCK_WIDTHS = {"sface": 128, "dlib": 128, "age_pool": 256, "age_dist": 81, "gender_hidden": 16,
                "gender_logits": 2, "colour": 12}
BLOCKS = {name: (sum(list(BLOCK_WIDTHS.values())[:i]), sum(list(BLOCK_WIDTHS.values())[:i + 1]))
          for i, name in enumerate(BLOCK_WIDTHS)}
FEATURE_DIM = sum(BLOCK_WIDTHS.values())


def _exposed(name: str) -> Any:
    """The model's onnxruntime session with its named intermediate tensors as outputs too."""
    def build() -> Any:
        import onnx
        from .ort_models import session
        graph = onnx.load(str(models.model_path(name)))
        for tensor in _EXTRA[name]:
            if tensor not in {o.name for o in graph.graph.output}:
                graph.graph.output.append(onnx.helper.make_empty_tensor_value_info(tensor))
        return session(graph.SerializeToString())
    return models.cached(f"{name}-exposed", build)


def run_exposed(name: str, chip: np.ndarray) -> dict[str, np.ndarray]:
    """All outputs of the age or gender network for one RGB chip, by tensor name (1-D each)."""
    from .attributes import network_input
    x = network_input(chip)
    sess = _exposed(name)
    names = [o.name for o in sess.get_outputs()]
    outs = sess.run(names, {sess.get_inputs()[0].name: x})
    return {n: np.asarray(o, dtype=np.float64).reshape(-1) for n, o in zip(names, outs)}


def colour_stats(chip: np.ndarray) -> np.ndarray:
    """Mean and spread of L*a*b* and HSV saturation/value over the central half of the chip
    (cheeks, nose, forehead: skin, not hair or background)."""
    h, w = chip.shape[:2]
    centre = np.ascontiguousarray(chip[h // 4: 3 * h // 4, w // 4: 3 * w // 4])
    lab = cv2.cvtColor(centre, cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(np.float64) / 255.0
    hsv = cv2.cvtColor(centre, cv2.COLOR_RGB2HSV).reshape(-1, 3)[:, 1:].astype(np.float64) / 255.0
    both = np.concatenate([lab, hsv], axis=1)
    return np.concatenate([both.mean(0), both.std(0), np.median(both, 0)[:2]])


def features(outputs: dict[str, dict[str, np.ndarray]], embeddings: dict[str, tuple[float, ...]],
             age_chip: np.ndarray) -> np.ndarray:
    """The FEATURE_DIM vector from the two networks' outputs, the embeddings and the age chip."""
    age, gender = outputs["age"], outputs["gender"]
    parts = [np.asarray(embeddings["sface"]), np.asarray(embeddings["dlib"]),
             age["layer_1_flatten"], age["probabilities"], gender["layer_3_relu"], gender["logits"],
             colour_stats(age_chip)]
    out = np.concatenate(parts).astype(np.float32)
    assert out.shape == (FEATURE_DIM,), out.shape
    return out


def face_features(rgb: np.ndarray, shape5: Any, embeddings: dict[str, tuple[float, ...]]) -> tuple[np.ndarray, dict[str, dict[str, np.ndarray]]]:
    """(feature vector, raw network outputs) for one face: the chips are cut as the age and
    gender networks expect (attributes._chip), each network runs once."""
    from .attributes import _AGE_SIZE, _GENDER_SIZE, _chip
    age_chip = _chip(rgb, shape5, _AGE_SIZE)
    outputs = {"age": run_exposed("age", age_chip), "gender": run_exposed("gender", _chip(rgb, shape5, _GENDER_SIZE))}
    return features(outputs, embeddings, age_chip), outputs
