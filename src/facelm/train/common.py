"""Helpers every facelm trainer shares: seeding, the loss-curve PNG, the config file saved next
to each checkpoint and where a record's image lies. Heavy imports (torch, matplotlib) happen
inside the functions."""
from __future__ import annotations

import json
import os
import random
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, Sequence

from ..data.store import jsonable
from ..outlock import output_lock


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and all GPUs) so a run repeats."""
    import numpy as np
    import torch

    random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def _smooth(values: Sequence[float], window: int) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def save_loss_curve(losses: Sequence[float], path: str | Path, title: str = "training loss") -> Path:
    """Write the per-step losses (and a moving average) as a PNG; returns the path."""
    import matplotlib
    matplotlib.use("Agg")  # headless: no display on training machines
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    steps = list(range(1, len(losses) + 1))
    ax.plot(steps, list(losses), lw=0.8, alpha=0.5, label="step loss")
    if len(losses) >= 5:
        ax.plot(steps, _smooth(list(losses), max(2, len(losses) // 20)), lw=1.6, label="moving average")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def save_config(config: Any, path: str | Path) -> Path:
    """Write a (frozen) dataclass, or a dict, as indented JSON; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(jsonable(config), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def train_lock(out: str | Path) -> AbstractContextManager:
    """The lock on a training folder (one run writes its checkpoints). Only the launch's first
    process (RANK 0, or no launcher) takes it: the other processes of the same run share the
    folder, and would otherwise be refused."""
    if os.environ.get("RANK", "0") != "0":
        return nullcontext()
    return output_lock(out, folder=True)


def resolve_image(path: str, data: str | Path) -> str:
    """A record's image path: as given (absolute or relative to the working directory) where that
    exists, else relative to the dataset folder (`data`, or the folder of a JSONL file), else as
    given, for the image loader to report."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return str(p)
    data = Path(data)
    root = data if data.is_dir() else data.parent
    return str(root / p) if (root / p).exists() else str(p)
