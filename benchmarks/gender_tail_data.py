"""Cache, for every photo of an attribute feature set (.cache/attr/*.npz, same order), dlib's 150x150
identity chip and the dlib ResNet's activation at the input of its first 256-channel block
(128 x 8 x 8), for the chip and its mirror: what benchmarks/train_gender_tail.py fine-tunes on.

    .venv/bin/python benchmarks/gender_tail_data.py ../shared/data/utkface-train .cache/attr/train.npz \
        .cache/gender/train
    .venv/bin/python benchmarks/gender_tail_data.py ../shared/data/utkface-dev .cache/attr/dev.npz \
        .cache/gender/dev

The face is the one analysis.analyze_array chooses (same detector order and select.pick), the chip
dlib.get_face_chip(rgb, dlib5 shape, 150, 0.25) as identity.dlib_embedding cuts it. Writes
OUT_chips.npy (N, 150, 150, 3) uint8 and OUT_act.npz (files, act (N, 2, 128, 8, 8) float16: chip,
mirrored chip); checks the torch descriptor against the cached dlib embedding (same face, same chip).
"""
from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dlib_torch import CUT_256, load_net  # noqa: E402


def chip_of(path: str) -> np.ndarray:
    """dlib's identity chip of the face analyze_array(fast=True) would analyse."""
    import dlib
    from facelm.faces import landmarks, models, select
    from facelm.faces.analysis import _detect
    from facelm.imageio import load_rgb
    rgb = load_rgb(path)
    faces = _detect(rgb, path)
    index = select.pick(faces, select.DEFAULT_FACE, (int(rgb.shape[1]), int(rgb.shape[0])), path)
    shape5 = models.dlib5()(rgb, landmarks.dlib_rect(faces[index]))
    return dlib.get_face_chip(np.ascontiguousarray(rgb), shape5, 150, 0.25)


def activations(chips: np.ndarray, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(act (N, 2, 128, 8, 8) float16 of chip and mirror, unit descriptors (N, 128) of the chip)."""
    net = load_net()
    acts, descs = [], []
    with torch.no_grad():
        for i in tqdm(range(0, len(chips), batch), desc="activations", mininterval=10):
            x = torch.from_numpy(chips[i: i + batch].astype(np.float32))
            both = torch.cat([x, x.flip(2)])
            a = net.trunk(both, CUT_256)
            n = len(x)
            acts.append(torch.stack([a[:n], a[n:]], 1).half().numpy())
            d = net.fc(net.tail(a[:n], CUT_256))
            descs.append(torch.nn.functional.normalize(d, dim=1).numpy())
    return np.concatenate(acts), np.concatenate(descs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("features", type=Path, help=".cache/attr/*.npz: its files, in its order")
    ap.add_argument("out", type=Path, help="prefix: OUT_chips.npy, OUT_act.npz")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.workers)
    feats = np.load(args.features)
    files = feats["files"][: args.limit] if args.limit else feats["files"]
    t0 = time.time()
    paths = [str(args.folder / f) for f in files]
    with ProcessPoolExecutor(args.workers) as pool:
        chips = np.stack(list(tqdm(pool.map(chip_of, paths, chunksize=16), total=len(paths),
                                   desc="chips", mininterval=10)))
    t1 = time.time()
    act, desc = activations(chips)
    dlib_emb = feats["x"][: len(files), 128:256].astype(np.float32)
    diff = float(np.abs(desc - dlib_emb).max())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.save(f"{args.out}_chips.npy", chips)
    np.savez(f"{args.out}_act.npz", files=files, act=act)
    print(f"{len(files)} photos: chips {t1 - t0:.0f} s, activations {time.time() - t1:.0f} s; "
          f"max |descriptor - cached dlib embedding| {diff:.2e}", file=sys.stderr)
    return 0 if diff < 1e-3 else 1


if __name__ == "__main__":
    raise SystemExit(main())
