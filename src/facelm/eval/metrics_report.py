"""Report folders shared by `facelm eval metrics` and `facelm eval faithfulness`.

Each report is a folder with a Markdown summary, JSON numbers, PNG plot(s) and `config.json` (the
exact settings and tool versions), so a number can always be traced to how it was made.
"""
from __future__ import annotations

import json
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from ..errors import FaceLMError
from ..schema_version import stamp


def prepare_out(out: str | Path) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FaceLMError("the report path exists and is not a folder", item=str(out),
                          hint="give a folder with --out")
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_json(path: Path, obj: Any, *, stamped: bool = True) -> None:
    """`obj` as indented JSON, stamped with the schema and facelm versions (facelm.schema_version)
    unless stamped=False: a flat map of scores by metric or model name stays exactly that map, so
    that a reader iterating it meets no other key (its folder's config.json carries the stamp)."""
    text = json.dumps(stamp(obj) if stamped else obj, indent=2, ensure_ascii=False)
    path.write_text(text + "\n", encoding="utf-8")


def environment() -> dict[str, Any]:
    """Versions that change numbers: facelm, pycocoevalcap, Java, Python."""
    from importlib import metadata
    env: dict[str, Any] = {"python": platform.python_version(),
                           "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    for pkg in ("facelm", "pycocoevalcap", "transformers", "torch"):
        try:
            env[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            env[pkg] = None
    env["java"] = _java_version()
    return env


def _java_version() -> str | None:
    from .tokenize import java_available
    if not java_available():
        return None
    try:
        proc = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (proc.stderr or proc.stdout).splitlines()[0] if (proc.stderr or proc.stdout) else None


def save_config(out: Path, command: str, settings: dict[str, Any]) -> None:
    write_json(out / "config.json", {"command": command, "settings": settings,
                                     "environment": environment()})


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def bar_and_hist_png(path: Path, title: str, bars: dict[str, float],
                     hists: dict[str, Sequence[float]], bar_label: str = "score") -> None:
    """Left: corpus scores as bars; right: distributions of per-item scores."""
    import matplotlib
    matplotlib.use("Agg")  # files only; no display on servers
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    names, values = list(bars), list(bars.values())
    axes[0].bar(range(len(names)), values, color="#4c72b0")
    axes[0].set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=8)
    axes[0].set_ylabel(bar_label)
    for x, v in enumerate(values):
        axes[0].text(x, v, f"{v:.3f}", ha="center", va="bottom", fontsize=7)
    for name, vals in hists.items():
        axes[1].hist(list(vals), bins=30, alpha=0.5, label=name)
    axes[1].set_xlabel("per-item score")
    axes[1].set_ylabel("items")
    if hists:
        axes[1].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
