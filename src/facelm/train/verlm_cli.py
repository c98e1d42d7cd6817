"""`facelm train verlm`: staged training of the VerLM prefix model. Imports nothing heavy at module
level (the CLI builds its parser for every command)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import InputFormatError


def add_parser(sub: Any) -> None:
    # defaults and choices come from the configs (light modules: no torch)
    from ..models.verlm.config import FUSIONS, MODES, SEPARATORS, VerLMConfig as M
    from .verlm import LM_TRAIN, STAGES, TrainConfig as T
    p = sub.add_parser("verlm", help="train the VerLM prefix model (mapper stage, then end to end)",
                       description="Train VerLM on `facelm data` records: --stage mapper (LM frozen), "
                                   "full (end to end, LM via LoRA or fully) or both (staged).")
    p.add_argument("--data", type=Path, required=True, help="dataset folder with records.jsonl")
    p.add_argument("--out", type=Path, required=True, help="checkpoint folder")
    p.add_argument("--stage", choices=tuple(STAGES), default=T.stage)
    p.add_argument("--fusion", choices=FUSIONS, default=M.fusion)
    p.add_argument("--separator", choices=SEPARATORS, default=M.separator)
    p.add_argument("--no-score-token", action="store_true",
                   help="do not condition pair prompts on the calibrated identity score")
    p.add_argument("--score-in-prompt", action="store_true",
                   help="also give the calibrated identity result as text after a pair's question")
    p.add_argument("--mode", choices=MODES, default=M.mode,
                   help="vision: face features only (the paper); grounded: the measured evidence "
                        "also follows as text, and decoding copies numbers from it")
    p.add_argument("--number-tokens", action="store_true",
                   help="vision mode: one digit-coded prefix token per number the explanation "
                        "states (the pair's own values), see facelm.models.verlm.numbers")
    p.add_argument("--answer-dropout", type=float, default=M.answer_dropout,
                   help="share of answer input tokens blanked in training (makes the LM read the prefix)")
    p.add_argument("--contrast-weight", type=float, default=M.contrast_weight,
                   help="weight of the contrastive conditioning loss (answer under its own pair vs "
                        "another's); 0: off")
    p.add_argument("--number-loss-weight", type=float, default=M.number_loss_weight,
                   help="loss weight of answer tokens holding a digit (default 1: plain mean)")
    p.add_argument("--contrast-margin", type=float, default=M.contrast_margin,
                   help="nats per answer token the own pair must win by")
    p.add_argument("--max-prompt-tokens", type=int, default=M.max_prompt_tokens)
    p.add_argument("--pixel-encoder", action="store_true", help="add a small CNN over the aligned crop")
    p.add_argument("--lm", default=M.lm, help="decoder LM: smollm2 (offline), a folder or a hub name")
    p.add_argument("--lm-layers", type=int, default=M.lm_layers, help="keep the LM's first N layers (0: all)")
    p.add_argument("--lm-train", choices=LM_TRAIN, default=T.lm_train, help="stage 2 LM training")
    p.add_argument("--lora-r", type=int, default=M.lora_r)
    p.add_argument("--prefix-len", type=int, default=M.prefix_len, help="k tokens per face")
    p.add_argument("--mapper-layers", type=int, default=M.mapper_layers)
    p.add_argument("--cross-layers", type=int, default=M.cross_layers)
    p.add_argument("--prompt-layers", type=int, default=M.prompt_layers)
    p.add_argument("--epochs", type=float, default=T.epochs, help="epochs per stage")
    p.add_argument("--max-steps", type=int, default=T.max_steps,
                   help="optimizer steps per stage (overrides epochs)")
    p.add_argument("--stop-after", type=int, default=T.stop_after,
                   help="end each stage after N optimizer steps while its schedule spans --max-steps")
    p.add_argument("--lr", type=float, default=T.lr, help="stage 1 learning rate")
    p.add_argument("--lr-full", type=float, default=T.lr_full, help="stage 2 learning rate")
    p.add_argument("--batch-size", type=int, default=T.batch_size)
    p.add_argument("--grad-accum", type=int, default=T.grad_accum)
    p.add_argument("--max-answer-tokens", type=int, default=T.max_answer_tokens)
    p.add_argument("--kinds", default=",".join(T.kinds), help="record kinds to train on")
    p.add_argument("--tiers", default=",".join(T.tiers), help="pair tiers to train on")
    p.add_argument("--aspects", default=",".join(T.aspects), help="qa aspects (default: all)")
    p.add_argument("--max-records", type=int, default=T.max_records)
    p.add_argument("--mixed-precision", choices=("auto", "no", "bf16", "fp16"), default=T.mixed_precision)
    p.add_argument("--save-every", type=int, default=T.save_every, help="checkpoint every N steps")
    p.add_argument("--sensitivity-pairs", type=int, default=T.sensitivity_pairs,
                   help="after training, generate for N training pairs (and swapped) to check that the "
                        "text depends on the pair: sensitivity.json (0: skip)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--seed", type=int, default=T.seed)
    p.set_defaults(func=handler)


def _csv(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def config_from_args(args: argparse.Namespace) -> Any:
    from ..models.verlm.config import VerLMConfig
    from .verlm import TrainConfig
    lm = args.lm
    if Path(lm).exists():
        lm = str(Path(lm).resolve())  # the checkpoint must find it from anywhere
    model = VerLMConfig(lm=lm, lm_layers=args.lm_layers, lora_r=args.lora_r, lora_alpha=2 * args.lora_r,
                        prefix_len=args.prefix_len, mapper_layers=args.mapper_layers,
                        cross_layers=args.cross_layers, fusion=args.fusion, separator=args.separator,
                        score_token=not args.no_score_token, pixel_encoder=args.pixel_encoder,
                        score_in_prompt=args.score_in_prompt, max_prompt_tokens=args.max_prompt_tokens,
                        prompt_layers=args.prompt_layers, mode=args.mode,
                        number_tokens=args.number_tokens,
                        answer_dropout=args.answer_dropout, contrast_weight=args.contrast_weight,
                        contrast_margin=args.contrast_margin,
                        number_loss_weight=args.number_loss_weight)
    if not (args.data / "records.jsonl").is_file() and not args.data.is_file():
        raise InputFormatError("no records.jsonl here", item=str(args.data),
                               hint="make a dataset with `facelm data pairs|qa --out DIR` first")
    return TrainConfig(data=str(args.data), out=str(args.out), stage=args.stage, epochs=args.epochs,
                       max_steps=args.max_steps, lr=args.lr, lr_full=args.lr_full,
                       lm_train=args.lm_train, batch_size=args.batch_size, grad_accum=args.grad_accum,
                       max_answer_tokens=args.max_answer_tokens, kinds=_csv(args.kinds),
                       tiers=_csv(args.tiers), aspects=_csv(args.aspects), max_records=args.max_records,
                       mixed_precision=args.mixed_precision, save_every=args.save_every,
                       resume=args.resume, seed=args.seed, model=model,
                       sensitivity_pairs=args.sensitivity_pairs, stop_after=args.stop_after)


def handler(args: argparse.Namespace) -> int:
    from .verlm import train
    out = train(config_from_args(args))
    print(f"VerLM checkpoint in {out} (loss curve: {out / 'loss.png'})", file=sys.stderr)
    return 0
