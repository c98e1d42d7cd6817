"""Issue 13: gender-trained features by fine-tuning the tail of dlib's face-recognition ResNet.

    .venv/bin/python benchmarks/gender_tail_data.py ...   # first: chips + activations (see there)
    .venv/bin/python benchmarks/train_gender_tail.py --start 10 --epochs 12 --name ft256
    .venv/bin/python benchmarks/train_gender_tail.py --start 13 --epochs 12 --name ftlast

The tail (blocks `start`..13 of benchmarks/dlib_torch.DlibNet, initialised from dlib's weights) plus
linear gender / race / age heads on its pooled 256-d output are fitted on utkface-train's cached
activations (input of block 10, 128 x 8 x 8, chip or mirrored chip at random), with the losses of
benchmarks/train_attributes.py; the same 1,000 CALIB photos are held back for early stopping and
temperatures. Reported on utkface-dev: heads-v1 refitted (baseline), the tail alone (chip, and TTA:
mean of chip and mirror), the tail's pooled output concatenated to the 623-d features with the
heads-v1 recipe refitted on it, and heads-v1 + tail averaged (calibrated probabilities). Seeds fixed,
torch on --threads threads. Results: JSON lines on stderr, markdown rows in OUT/results.md.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))
from dlib_torch import CUT_256, load_net  # noqa: E402
from train_attributes import CALIB, Recipe, _loss, fit, load, temperature, to_weights  # noqa: E402
from facelm.faces.attr_heads import AGE_MAX, GENDERS, RACES, logits, probabilities  # noqa: E402

ROOT = HERE.parent
TMP = Path(__file__).resolve().parents[1] / ".cache" / "gender"   # chips, activations, models, results.md


@dataclass(frozen=True)
class TailCfg:
    start: int = CUT_256       # first fine-tuned block (10: all 256-channel blocks; 13: the last)
    epochs: int = 12
    lr_tail: float = 2e-4
    lr_head: float = 2e-3
    weight_decay: float = 5e-2
    batch: int = 64
    dropout: float = 0.3
    gender_weight: float = 1.0   # extra weight on the gender loss (1: as train_attributes)
    teen_weight: float = 1.0     # weight of the gender loss on photos aged 10-19
    seed: int = 0


class TailNet(torch.nn.Module):
    """dlib blocks start..13 -> global average (256) -> dropout -> gender, race, age logits."""

    def __init__(self, cfg: TailCfg, first: int = CUT_256) -> None:
        """`first`: the block whose input the activations are (advance() moves them on)."""
        super().__init__()
        net = load_net()
        self.prefix = torch.nn.ModuleList(copy.deepcopy(net.blocks[first: cfg.start]))   # frozen
        self.blocks = torch.nn.ModuleList(copy.deepcopy(net.blocks[cfg.start:]))
        for p in self.prefix.parameters():
            p.requires_grad_(False)
        self.drop = torch.nn.Dropout(cfg.dropout)
        self.gender = torch.nn.Linear(256, len(GENDERS))
        self.race = torch.nn.Linear(256, len(RACES))
        self.age = torch.nn.Linear(256, AGE_MAX + 1)

    def pooled(self, act: torch.Tensor) -> torch.Tensor:
        x = act
        for b in [*self.prefix, *self.blocks]:
            x = b(x)
        return x.mean((2, 3))

    def forward(self, act: torch.Tensor) -> tuple[torch.Tensor, ...]:
        h = self.drop(self.pooled(act))
        return self.gender(h), self.race(h), self.age(h)


def load_split(name: str) -> dict[str, np.ndarray]:
    """Labels + 623-d features (.cache/attr) joined with the cached activations (same order)."""
    d = load(ROOT / f".cache/attr/{name}.npz")
    a = np.load(TMP / f"{name}_act.npz")
    assert (a["files"] == d["files"]).all(), "activation cache out of order"
    d["act"] = a["act"]
    return d


@torch.no_grad()
def advance(act: np.ndarray, start: int, batch: int = 256) -> np.ndarray:
    """Cached activations (input of block CUT_256) moved through dlib's frozen blocks up to `start`."""
    blocks = load_net().blocks[CUT_256:start]
    out = []
    for i in range(0, len(act), batch):
        a = torch.from_numpy(act[i: i + batch].astype(np.float32))
        x = a.reshape(-1, *a.shape[2:])
        for b in blocks:
            x = b(x)
        out.append(x.reshape(len(a), 2, *x.shape[1:]).numpy())
    return np.concatenate(out)


def _targets(d: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, torch.Tensor]:
    return {"gender": torch.from_numpy(d["gender"][idx]), "race": torch.from_numpy(d["race"][idx]),
            "age": torch.from_numpy(np.minimum(d["age"][idx], AGE_MAX).astype(np.float32))}


def _step_loss(net: TailNet, act: torch.Tensor, y: dict[str, torch.Tensor], cfg: TailCfg) -> torch.Tensor:
    out = net(act)
    loss = _loss(None, out, y, Recipe().age_sigma)  # type: ignore[arg-type]  # _loss ignores net
    if cfg.gender_weight != 1.0:
        loss = loss + (cfg.gender_weight - 1.0) * F.cross_entropy(out[0], y["gender"])
    if cfg.teen_weight != 1.0:
        teen = ((y["age"] >= 10) & (y["age"] < 20)).float()
        ce = F.cross_entropy(out[0], y["gender"], reduction="none")
        loss = loss + (cfg.teen_weight - 1.0) * (ce * teen).mean()
    return loss


@torch.no_grad()
def predict(net: TailNet, act: np.ndarray, view: int, batch: int = 256) -> dict[str, np.ndarray]:
    """Logits (gender, race, age) and pooled 256-d of view 0 (chip) or 1 (mirror)."""
    net.eval()
    outs: dict[str, list[np.ndarray]] = {k: [] for k in ("gender", "race", "age", "pooled")}
    for i in range(0, len(act), batch):
        h = net.pooled(torch.from_numpy(act[i: i + batch, view].astype(np.float32)))
        for k, v in (("gender", net.gender(h)), ("race", net.race(h)), ("age", net.age(h)), ("pooled", h)):
            outs[k].append(v.numpy())
    return {k: np.concatenate(v) for k, v in outs.items()}


def epoch_end(net: torch.nn.Module, gender_logits: np.ndarray, y: np.ndarray, epoch: int,
              loss: float, t0: float, best: tuple[float, float],
              best_state: dict) -> tuple[tuple[float, float], dict]:
    """Report the epoch's held-back gender accuracy and NLL; keep the state if it is the best."""
    z = gender_logits - gender_logits.max(1, keepdims=True)
    nll = float(-(z[np.arange(len(z)), y] - np.log(np.exp(z).sum(1))).mean())
    acc = float((gender_logits.argmax(1) == y).mean())
    print(f"epoch {epoch}: loss {loss:.3f} calib gender {acc:.3%} nll {nll:.4f} "
          f"({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    return ((acc, -nll), copy.deepcopy(net.state_dict())) if (acc, -nll) > best else (best, best_state)


def train_tail(train: dict[str, np.ndarray], calib: dict[str, np.ndarray], cfg: TailCfg) -> TailNet:
    """Fine-tune with random flips; keep the epoch with the best calib gender accuracy (then NLL)."""
    torch.manual_seed(cfg.seed)
    net = TailNet(cfg, first=cfg.start if train["act"].shape[1:] != (2, 128, 8, 8) else CUT_256)
    heads = [*net.gender.parameters(), *net.race.parameters(), *net.age.parameters()]
    opt = torch.optim.AdamW([{"params": list(net.blocks.parameters()), "lr": cfg.lr_tail},
                             {"params": heads, "lr": cfg.lr_head}], weight_decay=cfg.weight_decay)
    steps = cfg.epochs * ((len(train["act"]) + cfg.batch - 1) // cfg.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, [cfg.lr_tail, cfg.lr_head], total_steps=steps,
                                                pct_start=0.15)
    gen = torch.Generator().manual_seed(cfg.seed)
    best, best_state = (-1.0, 0.0), copy.deepcopy(net.state_dict())
    for epoch in range(cfg.epochs):
        net.train()
        t0, order = time.time(), torch.randperm(len(train["act"]), generator=gen).numpy()
        views = torch.randint(0, 2, (len(order),), generator=gen).numpy()
        for i in range(0, len(order), cfg.batch):
            idx = np.sort(order[i: i + cfg.batch])
            act = torch.from_numpy(train["act"][idx, views[idx]].astype(np.float32))
            loss = _step_loss(net, act, _targets(train, idx), cfg)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        best, best_state = epoch_end(net, predict(net, calib["act"], 0)["gender"], calib["gender"], epoch,
                                     loss.item(), t0, best, best_state)
    net.load_state_dict(best_state)
    return net.eval()


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def score(p: dict[str, np.ndarray], d: dict[str, np.ndarray]) -> dict[str, float]:
    """Gender overall + by age band, race, age MAE of probabilities p (gender, race, age)."""
    from attribute_report import BANDS
    pred = p["gender"].argmax(1)
    out = {"gender": float((pred == d["gender"]).mean())}
    for lo, hi, band in BANDS:
        m = (d["age"] >= lo) & (d["age"] < hi)
        out[band] = float((pred[m] == d["gender"][m]).mean())
    out["race"] = float((p["race"].argmax(1) == d["race"]).mean())
    out["age_mae"] = float(np.abs(p["age"] @ np.arange(AGE_MAX + 1) - d["age"]).mean())
    return out


def tail_probs(net: TailNet, d: dict[str, np.ndarray], temps: dict[str, float], tta: bool) -> dict[str, np.ndarray]:
    """Calibrated probabilities of the tail's heads (TTA: mean of chip and mirror)."""
    views = [predict(net, d["act"], v) for v in ((0, 1) if tta else (0,))]
    return {k: np.mean([_softmax(o[k] / temps.get(k, 1.0)) for o in views], 0)
            for k in ("gender", "race", "age")}


def heads_v1(train: dict[str, np.ndarray], calib: dict[str, np.ndarray]) -> tuple[object, dict[str, float]]:
    """The heads-v1 recipe (train_attributes.fit) fitted on train['x'], temperatures on calib."""
    net, mu, sd = fit(train, Recipe())
    w = to_weights(net, mu, sd, {"gender": 1.0, "race": 1.0})
    cl = logits(w, calib["x"])
    temps = {k: temperature(cl[k], calib[k]) for k in ("gender", "race")}
    return to_weights(net, mu, sd, temps), temps


def _row(name: str, s: dict[str, float]) -> str:
    bands = " | ".join(f"{s[b]:.1%}" for b in ("0-9", "10-19", "20-39", "40-59", "60+"))
    return f"| {name} | {s['gender']:.1%} | {bands} | {s['race']:.1%} | {s['age_mae']:.2f} |"


def _with_pooled(d: dict[str, np.ndarray], net: TailNet) -> dict[str, np.ndarray]:
    """d with x = 623-d features + the tail's pooled 256-d (mean of chip and mirror)."""
    pooled = (predict(net, d["act"], 0)["pooled"] + predict(net, d["act"], 1)["pooled"]) / 2
    return {**d, "x": np.concatenate([d["x"], pooled], 1).astype(np.float32)}


def variants(train: dict[str, np.ndarray], calib: dict[str, np.ndarray], dev: dict[str, np.ndarray],
             cfg: TailCfg, name: str) -> list[tuple[str, dict[str, float]]]:
    """Dev scores of heads-v1, the tail (chip / TTA), heads-v1 + tail averaged, concatenation."""
    t0 = time.time()
    w, _ = heads_v1(train, calib)
    pv1 = probabilities(w, dev["x"])
    rows = [("heads-v1 (refit)", score(pv1, dev))]
    print(f"heads-v1 fit {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    t0 = time.time()
    net = train_tail(train, calib, cfg)
    print(f"tail fit {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    torch.save(net.state_dict(), TMP / f"tail_{name}.pt")
    cal = predict(net, calib["act"], 0)
    temps = {k: temperature(cal[k], calib[k]) for k in ("gender", "race")}
    for tta in (False, True):
        rows.append((f"{name}: tail heads{' + TTA' if tta else ''}", score(tail_probs(net, dev, temps, tta), dev)))
    pt = tail_probs(net, dev, temps, True)
    rows.append((f"{name}: (heads-v1 + tail TTA) / 2", score({k: (pv1[k] + pt[k]) / 2 for k in pv1}, dev)))
    w2, _ = heads_v1(_with_pooled(train, net), _with_pooled(calib, net))
    p_cat = probabilities(w2, _with_pooled(dev, net)["x"])
    rows.append((f"{name}: heads-v1 recipe on 623 + tail 256", score(p_cat, dev)))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--name", default="ft256")
    ap.add_argument("--start", type=int, default=CUT_256)
    ap.add_argument("--epochs", type=int, default=TailCfg.epochs)
    ap.add_argument("--lr-tail", type=float, default=TailCfg.lr_tail)
    ap.add_argument("--lr-head", type=float, default=TailCfg.lr_head)
    ap.add_argument("--weight-decay", type=float, default=TailCfg.weight_decay)
    ap.add_argument("--gender-weight", type=float, default=TailCfg.gender_weight)
    ap.add_argument("--dropout", type=float, default=TailCfg.dropout)
    ap.add_argument("--teen-weight", type=float, default=TailCfg.teen_weight)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = TailCfg(start=args.start, epochs=args.epochs, lr_tail=args.lr_tail, lr_head=args.lr_head,
                  weight_decay=args.weight_decay, gender_weight=args.gender_weight, dropout=args.dropout,
                  teen_weight=args.teen_weight)
    full, dev = load_split("train"), load_split("dev")
    if cfg.start > CUT_256:  # the frozen blocks run once, not at every step
        full["act"], dev["act"] = advance(full["act"], cfg.start), advance(dev["act"], cfg.start)
    order = np.random.default_rng(0).permutation(len(full["x"]))
    part = lambda idx: {k: v[idx] for k, v in full.items()}  # noqa: E731
    calib, train = part(order[:CALIB]), part(order[CALIB:])
    t0 = time.time()
    rows = variants(train, calib, dev, cfg, args.name)
    write_rows(f"{args.name} {json.dumps(asdict(cfg))} {time.time() - t0:.0f} s", rows)
    return 0


def write_rows(header: str, rows: list[tuple[str, dict[str, float]]]) -> None:
    """Append the variants' rows to TMP/results.md (and JSON lines to stderr)."""
    with open(TMP / "results.md", "a") as f:
        f.write(f"\n<!-- {header} -->\n")
        for n, s in rows:
            f.write(_row(n, s) + "\n")
            print(json.dumps({"variant": n, **s}), file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
