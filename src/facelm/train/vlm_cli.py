"""`facelm train vlm`: LoRA fine-tuning of a Hugging Face VLM on facelm records.

    facelm train vlm --base OpenGVLab/InternVL3-1B-hf --data DATADIR --out DIR [--preset released]
    accelerate launch --config_file $(facelm train vlm --print-config ddp) -m facelm.cli train vlm ...
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any

# option -> (type, help); each overrides the preset's value when given.
_OVERRIDES: dict[str, tuple[type, str]] = {
    "lora_r": (int, "LoRA rank (paper 8, released 16)"),
    "lora_alpha": (int, "LoRA alpha (paper 16, released 32)"),
    "lora_dropout": (float, "LoRA dropout (default 0.05)"),
    "lr": (float, "learning rate (default 1e-5)"),
    "epochs": (float, "epochs (default 1)"),
    "max_steps": (int, "stop after this many optimizer steps"),
    "batch_size": (int, "samples per device per micro batch (default 2)"),
    "grad_accum": (int, "micro batches per optimizer step (paper 1, released 6)"),
    "warmup_ratio": (float, "fraction of steps with linear warm-up (default 0)"),
    "weight_decay": (float, "AdamW weight decay (default 0)"),
    "cutoff": (int, "max tokens per sample, image tokens included (default 2048)"),
    "save_every": (int, "optimizer steps between checkpoints (default: only at the end)"),
    "keep_checkpoints": (int, "checkpoints kept (default 2)"),
    "seed": (int, "seed for init, shuffling and dropout (default 0)"),
    "limit": (int, "use only the first N records (smoke runs)"),
}


def add_parser(sub: Any) -> None:
    from .vlm_config import LORA_TARGETS, PRESETS, SCHEDULES
    p = sub.add_parser("vlm", help="LoRA-tune a Hugging Face VLM (InternVL3, Qwen2-VL, SmolVLM, "
                       "LLaVA) on facelm records", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", help="hub name (downloads), local model folder, or tiny:internvl / "
                   "tiny:qwen2_vl / tiny:llava (built here from config, no download)")
    p.add_argument("--data", help="facelm dataset folder (records.jsonl) or JSONL file")
    p.add_argument("--out", help="output folder (adapter/, checkpoints/, loss_curve.png)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="paper",
                   help="paper: r=8 a=16 attention, lr 1e-5, 1 epoch; released: r=16 a=32 all "
                   "linear, batch 2 x accum 6, cosine, cutoff 2048")
    p.add_argument("--lora-target", choices=sorted(LORA_TARGETS),
                   help="language-model layers that get LoRA (the vision side never does)")
    p.add_argument("--schedule", choices=SCHEDULES, help="learning-rate schedule (default cosine)")
    p.add_argument("--system-prompt", help="system turn before every training prompt: none "
                   "(default: as inference sends), intern_vl (LLaMA-Factory's default, as FaceLLM's "
                   "released training saw), or the text itself")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"),
                   help="auto (default): bf16 on GPUs that have it, else fp32")
    for name, (typ, text) in _OVERRIDES.items():
        p.add_argument("--" + name.replace("_", "-"), type=typ, help=text)
    p.add_argument("--no-gradient-checkpointing", action="store_true",
                   help="faster, more memory")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--stop-after", type=int, default=0,
                   help="end this invocation after N optimizer steps in total (resume later)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--print-config", metavar="KIND", help="print the path of a packaged accelerate "
                   "config (ddp, fsdp, deepspeed_zero3) and exit")
    p.set_defaults(func=cmd_train_vlm)


def cmd_train_vlm(args: argparse.Namespace) -> int:
    from ..errors import InputFormatError
    if args.print_config:
        from .vlm_launch import config_path
        print(config_path(args.print_config))
        return 0
    missing = [o for o in ("base", "data", "out") if not getattr(args, o)]
    if missing:
        raise InputFormatError("missing option(s): " + ", ".join("--" + m for m in missing),
                               item="facelm train vlm", hint="see --help")
    from .vlm import train
    from .vlm_config import make_config
    over = {name: getattr(args, name) for name in _OVERRIDES}
    over.update(lora_target=args.lora_target, schedule=args.schedule, precision=args.precision,
                system_prompt=args.system_prompt)
    if args.no_gradient_checkpointing:
        over["gradient_checkpointing"] = False
    try:
        cfg = make_config(args.base, args.data, args.out, args.preset, **over)
    except ValueError as exc:
        raise InputFormatError(str(exc), item="facelm train vlm") from exc
    result = train(cfg, resume=args.resume, stop_after=args.stop_after, progress=not args.quiet)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun / accelerate: one summary line
        return 0
    first = f"{result.losses[0]:.4f}" if result.losses else "-"
    last = f"{result.losses[-1]:.4f}" if result.losses else "-"
    print(f"step {result.steps}/{result.total_steps}; loss {first} -> {last}; adapter in "
          f"{result.adapter}", file=sys.stderr)
    return 0
