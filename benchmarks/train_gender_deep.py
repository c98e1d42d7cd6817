"""Issue 13, deeper variant: fine-tune dlib's ResNet from block `start` on (e.g. 7: the 128- and
256-channel stages) on the cached 150x150 identity chips, with flip / shift / brightness
augmentation; the blocks before `start` stay dlib's (run without gradients).

    .venv/bin/python benchmarks/train_gender_deep.py --start 7 --epochs 10 --name deep7

Needs .cache/gender/{train,dev}_chips.npy (benchmarks/gender_tail_data.py). Same heads,
losses, CALIB split, temperatures and dev report as benchmarks/train_gender_tail.py (whose functions
it reuses): heads-v1 refitted, the network alone (chip; TTA), heads-v1 + network averaged.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from dlib_torch import load_net  # noqa: E402
from train_attributes import CALIB, temperature  # noqa: E402
from train_gender_tail import (TMP, TailCfg, _softmax, _step_loss, _targets, epoch_end, heads_v1,  # noqa: E402
                               load_split, score, write_rows)
from facelm.faces.attr_heads import AGE_MAX, GENDERS, RACES, probabilities  # noqa: E402


class DeepNet(torch.nn.Module):
    """dlib's network from the chip to the pooled 256-d, blocks >= start trainable, + linear heads."""

    def __init__(self, start: int, dropout: float) -> None:
        super().__init__()
        self.net, self.start = load_net(), start
        for p in self.net.parameters():
            p.requires_grad_(False)
        for b in self.net.blocks[start:]:
            for p in b.parameters():
                p.requires_grad_(True)
        self.drop = torch.nn.Dropout(dropout)
        self.gender = torch.nn.Linear(256, len(GENDERS))
        self.race = torch.nn.Linear(256, len(RACES))
        self.age = torch.nn.Linear(256, AGE_MAX + 1)

    def pooled(self, chips: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            x = self.net.trunk(chips, self.start)
        return self.net.tail(x, self.start)

    def forward(self, chips: torch.Tensor) -> tuple[torch.Tensor, ...]:
        h = self.drop(self.pooled(chips))
        return self.gender(h), self.race(h), self.age(h)


def augment(chips: np.ndarray, gen: torch.Generator, shift: int = 6) -> torch.Tensor:
    """Random flip, shift up to `shift` px (edge pixels repeated), brightness/contrast jitter."""
    x = torch.from_numpy(chips.astype(np.float32)).permute(0, 3, 1, 2)
    n = len(x)
    flip = torch.rand(n, generator=gen) < 0.5
    x[flip] = x[flip].flip(3)
    padded = F.pad(x, (shift,) * 4, mode="replicate")
    dy, dx = torch.randint(0, 2 * shift + 1, (2, n), generator=gen)
    x = torch.stack([padded[i, :, dy[i]: dy[i] + 150, dx[i]: dx[i] + 150] for i in range(n)])
    gain = 0.8 + 0.4 * torch.rand(n, 1, 1, 1, generator=gen)
    bias = 20 * (torch.rand(n, 1, 1, 1, generator=gen) - 0.5)
    mean = x.mean((1, 2, 3), keepdim=True)
    x = ((x - mean) * gain + mean + bias).clamp(0, 255)
    return x.permute(0, 2, 3, 1).contiguous()


@torch.no_grad()
def predict(net: DeepNet, chips: np.ndarray, mirror: bool, batch: int = 128) -> dict[str, np.ndarray]:
    net.eval()
    outs: dict[str, list[np.ndarray]] = {k: [] for k in ("gender", "race", "age")}
    for i in range(0, len(chips), batch):
        x = torch.from_numpy(chips[i: i + batch].astype(np.float32))
        h = net.pooled(x.flip(2) if mirror else x)
        for k in outs:
            outs[k].append(getattr(net, k)(h).numpy())
    return {k: np.concatenate(v) for k, v in outs.items()}


def train_deep(train: dict[str, np.ndarray], calib: dict[str, np.ndarray], cfg: TailCfg) -> DeepNet:
    """Fine-tune with augmentation; keep the epoch with the best calib gender accuracy (then NLL)."""
    torch.manual_seed(cfg.seed)
    net = DeepNet(cfg.start, cfg.dropout)
    heads = [*net.gender.parameters(), *net.race.parameters(), *net.age.parameters()]
    body = [p for b in net.net.blocks[cfg.start:] for p in b.parameters()]
    opt = torch.optim.AdamW([{"params": body, "lr": cfg.lr_tail}, {"params": heads, "lr": cfg.lr_head}],
                            weight_decay=cfg.weight_decay)
    steps = cfg.epochs * ((len(train["chips"]) + cfg.batch - 1) // cfg.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, [cfg.lr_tail, cfg.lr_head], total_steps=steps, pct_start=0.15)
    gen = torch.Generator().manual_seed(cfg.seed)
    best, best_state = (-1.0, 0.0), copy.deepcopy(net.state_dict())
    for epoch in range(cfg.epochs):
        net.train()
        t0, order = time.time(), torch.randperm(len(train["chips"]), generator=gen).numpy()
        for i in range(0, len(order), cfg.batch):
            idx = np.sort(order[i: i + cfg.batch])
            chips = augment(train["chips"][idx], gen)
            loss = _step_loss(net, chips, _targets(train, idx), cfg)  # type: ignore[arg-type]
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        best, best_state = epoch_end(net, predict(net, calib["chips"], False)["gender"], calib["gender"],
                                     epoch, loss.item(), t0, best, best_state)
    net.load_state_dict(best_state)
    return net.eval()


def heads_v1_dev(train: dict[str, np.ndarray], calib: dict[str, np.ndarray],
                 dev: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """heads-v1's dev probabilities (refitted once, then cached in TMP)."""
    cache = TMP / "heads_v1_dev.npz"
    if cache.exists():
        return dict(np.load(cache))
    w, _ = heads_v1(train, calib)
    p = probabilities(w, dev["x"])
    np.savez(cache, **p)
    return p


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--name", default="deep7")
    ap.add_argument("--start", type=int, default=7)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr-tail", type=float, default=2e-4)
    ap.add_argument("--gender-weight", type=float, default=1.0)
    ap.add_argument("--teen-weight", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = TailCfg(start=args.start, epochs=args.epochs, lr_tail=args.lr_tail,
                  gender_weight=args.gender_weight, teen_weight=args.teen_weight, seed=args.seed)
    full, dev = load_split("train"), load_split("dev")
    full["chips"], dev["chips"] = np.load(TMP / "train_chips.npy"), np.load(TMP / "dev_chips.npy")
    del full["act"], dev["act"]
    order = np.random.default_rng(0).permutation(len(full["x"]))
    part = lambda idx: {k: v[idx] for k, v in full.items()}  # noqa: E731
    calib, train = part(order[:CALIB]), part(order[CALIB:])
    pv1 = heads_v1_dev(train, calib, dev)
    t0 = time.time()
    net = train_deep(train, calib, cfg)
    fit_s = time.time() - t0
    torch.save(net.state_dict(), TMP / f"deep_{args.name}.pt")
    cal = predict(net, calib["chips"], False)
    temps = {k: temperature(cal[k], calib[k]) for k in ("gender", "race")}
    views = [predict(net, dev["chips"], m) for m in (False, True)]
    prob = lambda vs: {k: np.mean([_softmax(v[k] / temps.get(k, 1.0)) for v in vs], 0)  # noqa: E731
                       for k in ("gender", "race", "age")}
    rows = [("heads-v1 (refit)", score(pv1, dev)), (f"{args.name}: net heads", score(prob(views[:1]), dev)),
            (f"{args.name}: net heads + TTA", score(prob(views), dev))]
    pt = prob(views)
    rows.append((f"{args.name}: (heads-v1 + net TTA) / 2", score({k: (pv1[k] + pt[k]) / 2 for k in pv1}, dev)))
    np.savez(TMP / f"deep_{args.name}_dev.npz", **pt)
    write_rows(f"{args.name} (deep) {json.dumps(asdict(cfg))} fit {fit_s:.0f} s", rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
