"""Fit facelm's attribute heads (gender, age, race) on utkface-train features, choose on utkface-dev,
calibrate on a held-back slice of train, and ship them.

    .venv/bin/python benchmarks/attribute_data.py ../shared/data/utkface-train .cache/attr/train.npz
    .venv/bin/python benchmarks/attribute_data.py ../shared/data/utkface-dev .cache/attr/dev.npz
    .venv/bin/python benchmarks/train_attributes.py            # writes the shipped weights + card

One small multi-task MLP reads the features of `facelm.faces.attr_features` (FEATURE_VERSION);
gender and race are softmax heads with a temperature each (fitted on the calibration slice), age is
a distribution over 0..100 years (Gaussian soft labels plus an L1 term on its mean). Seeds are
fixed and torch runs on one thread, so a rerun reproduces the shipped file bit for bit on the same
machine (other CPUs: to ~1e-5 in the weights, the same decisions on utkface-dev).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from facelm.faces.attr_heads import AGE_MAX, GENDERS, RACES, HeadWeights, save_weights  # noqa: E402
from facelm.faces.attr_features import BLOCKS, FEATURE_VERSION  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CALIB = 1000          # photos of utkface-train held back from fitting, for temperatures + stopping


@dataclass(frozen=True)
class Recipe:
    hidden: int = 512
    dropout: float = 0.3
    weight_decay: float = 1e-2
    epochs: int = 60
    lr: float = 1e-3
    batch: int = 128
    age_sigma: float = 2.0
    seed: int = 0


def load(path: Path) -> dict[str, np.ndarray]:
    d = np.load(path)
    return {"x": d["x"].astype(np.float32), "age": d["age"].astype(np.float32),
            "gender": np.array([GENDERS.index(g) for g in d["gender"]]),
            "race": np.array([RACES.index(r) for r in d["race"]]), "files": d["files"]}


class Net(torch.nn.Module):
    def __init__(self, dim: int, r: Recipe) -> None:
        super().__init__()
        self.trunk = torch.nn.Sequential(
            torch.nn.Dropout(0.1), torch.nn.Linear(dim, r.hidden), torch.nn.GELU(approximate="tanh"),
            torch.nn.Dropout(r.dropout), torch.nn.Linear(r.hidden, r.hidden // 2), torch.nn.GELU(approximate="tanh"),
            torch.nn.Dropout(r.dropout))
        self.gender = torch.nn.Linear(r.hidden // 2, len(GENDERS))
        self.race = torch.nn.Linear(r.hidden // 2, len(RACES))
        self.age = torch.nn.Linear(r.hidden // 2, AGE_MAX + 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        h = self.trunk(x)
        return self.gender(h), self.race(h), self.age(h)


def _loss(net: Net, out: tuple[torch.Tensor, ...], y: dict[str, torch.Tensor], sigma: float) -> torch.Tensor:
    g, r, a = out
    years = torch.arange(AGE_MAX + 1, dtype=torch.float32)
    target = torch.exp(-0.5 * ((years[None] - y["age"][:, None]) / sigma) ** 2)
    target = target / target.sum(1, keepdim=True)
    logp = torch.log_softmax(a, 1)
    mean = (logp.exp() * years).sum(1)
    return (torch.nn.functional.cross_entropy(g, y["gender"]) + torch.nn.functional.cross_entropy(r, y["race"])
            - (target * logp).sum(1).mean() + 0.05 * (mean - y["age"]).abs().mean())


def fit(train: dict[str, np.ndarray], r: Recipe) -> tuple[Net, np.ndarray, np.ndarray]:
    torch.manual_seed(r.seed)
    mu, sd = train["x"].mean(0), train["x"].std(0) + 1e-6
    x = torch.from_numpy((train["x"] - mu) / sd)
    y = {"gender": torch.from_numpy(train["gender"]), "race": torch.from_numpy(train["race"]),
         "age": torch.from_numpy(np.minimum(train["age"], AGE_MAX))}
    net = Net(x.shape[1], r)
    opt = torch.optim.AdamW(net.parameters(), lr=r.lr, weight_decay=r.weight_decay)
    steps = r.epochs * ((len(x) + r.batch - 1) // r.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, r.lr, total_steps=steps)
    gen = torch.Generator().manual_seed(r.seed)
    net.train()
    for _ in range(r.epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), r.batch):
            idx = order[i: i + r.batch]
            loss = _loss(net, net(x[idx]), {k: v[idx] for k, v in y.items()}, r.age_sigma)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return net.eval(), mu, sd


def to_weights(net: Net, mu: np.ndarray, sd: np.ndarray, temps: dict[str, float]) -> HeadWeights:
    t = {k: v.detach().numpy().astype(np.float32) for k, v in net.state_dict().items()}
    return HeadWeights(mean=mu, std=sd, w1=t["trunk.1.weight"], b1=t["trunk.1.bias"],
                       w2=t["trunk.4.weight"], b2=t["trunk.4.bias"],
                       heads={k: (t[f"{k}.weight"], t[f"{k}.bias"]) for k in ("gender", "race", "age")},
                       temperatures=temps, feature_version=FEATURE_VERSION)


def temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising NLL on held-back photos (grid search: 1-D and robust)."""
    def nll(t: float) -> float:
        z = logits / t
        z = z - z.max(1, keepdims=True)
        return float(-(z[np.arange(len(y)), y] - np.log(np.exp(z).sum(1))).mean())
    grid = np.exp(np.linspace(np.log(0.3), np.log(5.0), 200))
    return float(grid[int(np.argmin([nll(t) for t in grid]))])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", type=Path, default=ROOT / ".cache/attr/train.npz")
    ap.add_argument("--dev", type=Path, default=ROOT / ".cache/attr/dev.npz")
    ap.add_argument("--grid", action="store_true", help="try the recipe grid and report each on dev")
    ap.add_argument("--ablation", action="store_true", help="refit on subsets of the feature blocks")
    ap.add_argument("--out", type=Path, default=None, help="default: the packaged weights file")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from attribute_report import evaluate, write_card  # benchmarks/ sibling
    full, dev = load(args.train), load(args.dev)
    order = np.random.default_rng(0).permutation(len(full["x"]))
    part = lambda idx: {k: v[idx] for k, v in full.items()}  # noqa: E731
    calib, train = part(order[:CALIB]), part(order[CALIB:])
    if args.ablation:
        return ablation(train, calib, dev)
    recipes = GRID if args.grid else (Recipe(),)
    rows = []
    for r in recipes:
        net, mu, sd = fit(train, r)
        w = to_weights(net, mu, sd, {"gender": 1.0, "race": 1.0})
        from facelm.faces.attr_heads import logits
        cl = logits(w, calib["x"])
        w = to_weights(net, mu, sd, {"gender": temperature(cl["gender"], calib["gender"]),
                                     "race": temperature(cl["race"], calib["race"])})
        rows.append((r, w, evaluate(w, dev)))
        print(json.dumps({"recipe": asdict(r), **rows[-1][2]["summary"]}), file=sys.stderr)
    if args.grid:
        return 0
    r, w, report = rows[0]
    out = args.out or ROOT / "src/facelm/faces/weights/attributes-v1.npz"
    save_weights(w, out, card=report["card"])
    write_card(report, asdict(r), evaluate(w, train)["summary"], out)
    return 0


_NETS = ("age_pool", "age_dist", "gender_hidden", "gender_logits")
ABLATIONS = (("embeddings only", ("sface", "dlib")),
             ("+ age network (pooled, distribution)", ("sface", "dlib", "age_pool", "age_dist")),
             ("+ gender network", ("sface", "dlib", *_NETS)),
             ("all (shipped): + chip colour", tuple(BLOCKS)),
             ("networks + colour, no embeddings", (*_NETS, "colour")))


def ablation(train: dict[str, np.ndarray], calib: dict[str, np.ndarray], dev: dict[str, np.ndarray]) -> int:
    """Dev figures of the default recipe on subsets of the feature blocks (other blocks zeroed,
    which the standardisation turns into constant, unused inputs)."""
    from attribute_report import evaluate
    from facelm.faces.attr_heads import logits
    rows = []
    for name, blocks in ABLATIONS:
        keep = np.zeros(train["x"].shape[1], bool)
        for b in blocks:
            keep[slice(*BLOCKS[b])] = True
        mask = lambda d: {**d, "x": d["x"] * keep}  # noqa: E731
        net, mu, sd = fit(mask(train), Recipe())
        w = to_weights(net, mu, sd, {"gender": 1.0, "race": 1.0})
        cl = logits(w, mask(calib)["x"])
        w = to_weights(net, mu, sd, {k: temperature(cl[k], calib[k]) for k in ("gender", "race")})
        s = evaluate(w, dev, x=mask(dev)["x"])["summary"]
        rows.append(f"| {name} | {s['gender']:.1%} | {s['gender_min_10up']:.1%} | {s['race']:.1%} | {s['age_mae']:.2f} |")
        print(rows[-1], file=sys.stderr)
    table = ["| features | gender | worst band 10+ | race | age MAE |", "|---|---|---|---|---|", *rows]
    (ROOT / "docs/benchmarks/attributes_ablation.md").write_text(
        "# Attribute heads: which features matter (utkface-dev)\n\n"
        "`.venv/bin/python benchmarks/train_attributes.py --ablation`: the shipped recipe refitted on\n"
        "subsets of the feature blocks (the rest zeroed).\n\n" + "\n".join(table) + "\n")
    return 0


GRID = tuple(Recipe(hidden=h, dropout=d, weight_decay=wd) for h in (256, 512) for d in (0.3, 0.5)
             for wd in (1e-2, 1e-1))

if __name__ == "__main__":
    raise SystemExit(main())
