"""dlib's face-recognition ResNet rebuilt in torch from the weights facelm reads out of dlib's .dat
file (facelm.faces.dlib_onnx.read_layers): training-time only (issue 13, gender-trained features).

    .venv/bin/python benchmarks/dlib_torch.py          # check it against the ONNX descriptor

Same graph as dlib_onnx.build_onnx: conv 7x7/2 + affine + relu, max pool 3x3/2, 14 residual
blocks (3 at 32 channels, 4 at 64, 3 at 128, 3 at 256, 1 at 256; the first block of each stage
after the first downsamples, its shortcut a 2x2/2 average pool), dlib's zero-padded add where maps
disagree in size (bottom/right), global average, fc 256->128 without bias. Each affine is folded
into its conv, as build_onnx does. Map sizes: 150 -> 72 -> 35 (32 ch) -> 17 (64) -> 8 (128)
-> 4 (256) -> 2 (256).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from facelm.faces.dlib_onnx import Layer  # noqa: E402

CUT_256 = 10     # index of the first 256-channel block: its input is 128 x 8 x 8
CUT_LAST = 13    # index of the last block (256, downsampling): its input is 256 x 4 x 4


def _conv(con: Layer, affine: Layer) -> torch.nn.Conv2d:
    nf, kh, kw, sy, sx, py, px = con.ints
    g, b = affine.params["gamma"], affine.params["beta"]
    w = con.params["w"] * g[:, None, None, None]
    conv = torch.nn.Conv2d(w.shape[1], nf, (kh, kw), stride=(sy, sx), padding=(py, px))
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
        conv.bias.copy_(torch.from_numpy(con.params["b"] * g + b))
    return conv


def pad_add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a + b, the smaller zero-padded at the bottom/right (and extra channels), as dlib's tt::add."""
    c, h, w = (max(s, t) for s, t in zip(a.shape[1:], b.shape[1:]))

    def grow(x: torch.Tensor) -> torch.Tensor:
        dc, dh, dw = c - x.shape[1], h - x.shape[2], w - x.shape[3]
        return F.pad(x, (0, dw, 0, dh, 0, dc)) if dc or dh or dw else x
    return grow(a) + grow(b)


class Block(torch.nn.Module):
    """relu(conv2(relu(conv1(x))) + shortcut(x)); shortcut = avg pool 2x2/2 when downsampling."""

    def __init__(self, conv1: torch.nn.Conv2d, conv2: torch.nn.Conv2d, down: bool) -> None:
        super().__init__()
        self.conv1, self.conv2, self.down = conv1, conv2, down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.relu(self.conv1(x)))
        s = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(pad_add(y, s))


class DlibNet(torch.nn.Module):
    """The whole network: `forward(chips)` takes (N, 150, 150, 3) RGB 0..255 and returns the
    (N, 128) descriptor; `trunk(chips, upto)` the input of block `upto`; `tail(x, start)` the
    pooled 256-d output from block `start`'s input."""

    def __init__(self, means: tuple[float, float, float], layers: list[Layer]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(means, dtype=torch.float32).view(1, 3, 1, 1))
        self.stem = _conv(layers[0], layers[1])
        blocks: list[Block] = []
        i = 4  # after con, affine, relu, max_pool
        while layers[i].kind == "con":
            c1, c2 = _conv(layers[i], layers[i + 1]), _conv(layers[i + 3], layers[i + 4])
            down = layers[i + 5].kind == "avg_pool"
            blocks.append(Block(c1, c2, down))
            i += 8 if down else 7   # con aff relu con aff [avg_pool] add_prev relu
        self.blocks = torch.nn.ModuleList(blocks)
        fc = layers[-1]
        self.fc = torch.nn.Linear(fc.ints[1], fc.ints[0], bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.from_numpy(np.ascontiguousarray(fc.params["w"].T)))

    def trunk(self, chips: torch.Tensor, upto: int) -> torch.Tensor:
        x = (chips.permute(0, 3, 1, 2) - self.mean) / 256.0
        x = F.max_pool2d(F.relu(self.stem(x)), 3, 2)
        for b in self.blocks[:upto]:
            x = b(x)
        return x

    def tail(self, x: torch.Tensor, start: int) -> torch.Tensor:
        for b in self.blocks[start:]:
            x = b(x)
        return x.mean((2, 3))

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        return self.fc(self.tail(self.trunk(chips, CUT_256), CUT_256))


def load_net() -> DlibNet:
    """DlibNet with dlib's own weights (the file facelm's models.model_path('dlib_resnet') names)."""
    from facelm.faces import models
    from facelm.faces.dlib_onnx import read_layers
    means, layers = read_layers(models.model_path("dlib_resnet").read_bytes())
    net = DlibNet(means, layers)
    assert len(net.blocks) == 14, len(net.blocks)
    return net.eval()


def _check(n: int = 8) -> float:
    """Max |torch - ONNX| over the descriptors of n utkface-dev chips."""
    import csv

    import dlib
    from facelm.faces import landmarks, models
    from facelm.faces.analysis import analyze_array
    from facelm.imageio import load_rgb
    folder = Path(__file__).resolve().parents[2] / "shared/data/utkface-dev"
    with open(folder / "labels.csv", newline="") as f:
        files = [r["file"] for r in csv.DictReader(f)][:n]
    chips = []
    for name in files:
        rgb = load_rgb(str(folder / name))
        fa = analyze_array(rgb, fast=True, item=name)
        shape5 = models.dlib5()(rgb, landmarks.dlib_rect(fa.detection))
        chips.append(dlib.get_face_chip(np.ascontiguousarray(rgb), shape5, 150, 0.25))
    batch = np.stack(chips).astype(np.float32)
    ref = models.dlib_resnet().descriptors(batch)
    with torch.no_grad():
        out = load_net()(torch.from_numpy(batch)).numpy()
    return float(np.abs(out - ref).max())


if __name__ == "__main__":
    torch.set_num_threads(1)
    diff = _check()
    print(f"max |torch - onnx| over 8 descriptors: {diff:.2e}")
    raise SystemExit(0 if diff < 1e-4 else 1)
