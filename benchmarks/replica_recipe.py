"""FaceLLM's recipe end to end on the full-size InternVL3-1B replica, on this CPU, in one process.

    .venv/bin/python benchmarks/replica_recipe.py [--photos 2] [--steps 1] [--paper-steps 0]

Stages, each through facelm's own CLI entry point (no code path special-cased for the replica):
1. `python -m facelm.models.replica internvl3-1b` (random weights, the hub's files);
2. `facelm data qa --teacher evidence` on a few UTKFace photos padded to 2:1, so the processor's
   dynamic tiling really tiles (2 tiles of 448 px + a thumbnail = 768 image tokens per photo);
3. `facelm train vlm --preset released` (batch 1 × accum 1 here) and `--preset paper`;
4. `facelm train merge` (reloads with AutoModelForImageTextToText; logits vs base + adapter);
   then: only language-model tensors changed;
5. `facelm eval mcq --model MERGED` on a local FaceXBench-format benchmark (`eval make-mcq`; the
   gender file, --mcq questions);
6. `facelm serve --model MERGED` (BackgroundServer, 1 worker) answering /v1/chat/completions.

On 2 shared CPU cores one released step (3 tiles, ~900 tokens, fp32, gradient checkpointing) takes
minutes, so the defaults are 1 released step, no paper step and 1 question.

Tile cap for CPU: the hub's preprocessor allows 12 tiles + a thumbnail (13 × 256 = 3,328 image
tokens, over the 2,048 cutoff); this run sets `max_patches` to --tile-cap (default 2) in its copy of
preprocessor_config.json, the hub's own knob. Prints a table; --json writes it too.
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
UTK = ROOT.parent / "shared" / "data" / "utkface-dev"


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photos", type=int, default=2)
    p.add_argument("--aspects", default="demographics,expression")
    p.add_argument("--steps", type=int, default=1, help="released-preset optimizer steps")
    p.add_argument("--paper-steps", type=int, default=0, help="paper-preset steps (0: skip)")
    p.add_argument("--tile-cap", type=int, default=2)
    p.add_argument("--mcq", type=int, default=1, help="questions of the gender file")
    p.add_argument("--work", type=Path, default=ROOT / ".cache" / "replica-recipe")
    p.add_argument("--json", type=Path)
    return p.parse_args()


def peak_gb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def cli(*argv: str) -> None:
    from facelm.cli import main
    rc = main([str(a) for a in argv])
    if rc != 0:
        raise SystemExit(f"facelm {' '.join(map(str, argv))} exited {rc}")


def wide_photos(n: int, out: Path) -> Path:
    """The first n UTKFace photos centred on a 2:1 grey canvas, with their labels CSV."""
    from PIL import Image

    from facelm.csvio import read_csv
    header, rows = read_csv(UTK / "labels.csv")
    (out / "images").mkdir(parents=True, exist_ok=True)
    lines = [",".join(header)]
    for r in rows[:n]:
        face = Image.open(UTK / r["file"]).convert("RGB")
        canvas = Image.new("RGB", (face.width * 2, face.height), (128, 128, 128))
        canvas.paste(face, (face.width // 2, 0))
        name = "images/" + Path(r["file"]).name.replace(".jpg", "") + ".png"
        canvas.save(out / name)
        lines.append(",".join(name if h == "file" else r[h] for h in header))
    (out / "labels.csv").write_text("\n".join(lines) + "\n")
    return out


def timed_steps() -> list[float]:
    """Wall seconds of each optimizer step, recorded by wrapping the trainer's step function
    (measurement only: the wrapped function runs unchanged)."""
    from facelm.train import vlm
    times: list[float] = []
    inner: Callable[..., Any] = vlm._step

    def step(*a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        out = inner(*a, **k)
        times.append(time.perf_counter() - t)
        return out
    vlm._step = step
    return times


def lm_only_changed(base: Path, merged: Path) -> tuple[int, int]:
    """(changed tensors, of which outside the language model), one tensor at a time from the saved
    files (base bf16 widened to fp32 equals the fp32 merged copy exactly where nothing changed)."""
    import torch
    from safetensors import safe_open
    changed = []
    with safe_open(base / "model.safetensors", "pt") as a, \
            safe_open(merged / "model.safetensors", "pt") as b:
        assert set(a.keys()) == set(b.keys()), "the merged folder names other tensors"
        for k in a.keys():
            if not torch.equal(a.get_tensor(k).float(), b.get_tensor(k).float()):
                changed.append(k)
    return len(changed), sum("language_model." not in k for k in changed)


def serve_once(model: Path, image: Path) -> str:
    import base64

    import httpx

    from facelm.serve.background import BackgroundServer
    from facelm.serve.config import ServeConfig
    uri = "data:image/png;base64," + base64.b64encode(image.read_bytes()).decode()
    body = {"model": "facelm", "max_tokens": 4, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": uri}},
        {"type": "text", "text": "Describe the face pose of the image."}]}]}
    with BackgroundServer(ServeConfig(port=0, workers=1, model=str(model), warm=False),
                          start_timeout=600) as url:
        r = httpx.post(url + "/v1/chat/completions", json=body, timeout=600)
    r.raise_for_status()
    return r.json()["choices"][0]["message"]["content"]


def run(args: argparse.Namespace, row: dict[str, Any]) -> None:
    w = args.work
    shutil.rmtree(w, ignore_errors=True)
    t = time.perf_counter()
    base = Path(w / "InternVL3-1B-hf")
    from facelm.models.replica import build_replica
    build_replica("internvl3-1b", base)
    pre = json.loads((base / "preprocessor_config.json").read_text())
    (base / "preprocessor_config.json").write_text(json.dumps({**pre, "max_patches": args.tile_cap}))
    row["build_s"] = round(time.perf_counter() - t, 1)
    photos = wide_photos(args.photos, w / "photos")
    cli("data", "qa", "--images", photos, "--labels", photos / "labels.csv", "--out", w / "qa",
        "--aspects", args.aspects, "--teacher", "evidence", "--quiet")
    row["records"] = sum(1 for _ in open(w / "qa" / "records.jsonl"))
    steps = timed_steps()
    cli("train", "vlm", "--base", base, "--data", w / "qa", "--out", w / "released", "--preset",
        "released", "--max-steps", args.steps, "--batch-size", 1, "--grad-accum", 1, "--quiet")
    row.update(released_s_per_step=[round(s, 1) for s in steps], peak_gb_after_train=round(peak_gb(), 2))
    dump(args, row)
    if args.paper_steps:
        steps.clear()
        cli("train", "vlm", "--base", base, "--data", w / "qa", "--out", w / "paper", "--preset",
            "paper", "--max-steps", args.paper_steps, "--batch-size", 1, "--quiet")
        row["paper_s_per_step"] = [round(s, 1) for s in steps]
    t = time.perf_counter()
    cli("train", "merge", "--adapter", w / "released", "--out", w / "merged")
    report = json.loads((w / "merged" / "facelm_export.json").read_text())
    row.update(merge_s=round(time.perf_counter() - t, 1), merge_max_abs_diff=report["max_abs_diff"],
               adapter_effect=report["adapter_effect"], peak_gb_after_merge=round(peak_gb(), 2))
    row["changed_tensors"], row["changed_outside_lm"] = lm_only_changed(base, w / "merged")
    dump(args, row)
    cli("eval", "make-mcq", "--out", w / "bench", "--per-file", args.mcq)
    t = time.perf_counter()
    cli("eval", "mcq", "--bench", w / "bench" / "utkface_single_mcq_gender.json", "--model",
        w / "merged", "--out", w / "mcq", "--no-plots", "--quiet")
    results = json.loads((w / "mcq" / "results.json").read_text())
    row.update(mcq_s=round(time.perf_counter() - t, 1), mcq_overall=results["overall"],
               peak_gb_after_mcq=round(peak_gb(), 2))
    dump(args, row)
    t = time.perf_counter()
    square = sorted((UTK / "images").iterdir())[0]   # one tile: the cheapest request
    row["serve_answer"] = serve_once(w / "merged", square)
    row.update(serve_s=round(time.perf_counter() - t, 1), peak_gb_final=round(peak_gb(), 2),
               children_peak_gb=round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20, 2))


def dump(args: argparse.Namespace, row: dict[str, Any]) -> None:
    """The figures so far (a long run that is cut short keeps them)."""
    if args.json:
        args.json.write_text(json.dumps(row, indent=2) + "\n")


def main() -> int:
    args = parse()
    row: dict[str, Any] = {"tile_cap": args.tile_cap}
    start = time.perf_counter()
    try:
        run(args, row)
    finally:
        row["total_s"] = round(time.perf_counter() - start, 1)
        for k, v in row.items():
            print(f"| {k} | {v} |")
        dump(args, row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
