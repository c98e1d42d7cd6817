"""Staged VerLM training (as the paper): stage "mapper" trains the mappers, separator, score token
and cross-projection with the LM frozen; stage "full" trains end to end (LM through LoRA or fully).
Resumable, loss on answer tokens only, gradient accumulation, bf16/fp16 where the device has it,
and multi-GPU through `accelerate launch` (the loop uses `accelerate.Accelerator`)."""
from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..errors import InputFormatError
from ..models.verlm.config import CONFIG_NAME, VerLMConfig
from .common import save_config, save_loss_curve, set_seed, train_lock

STAGES: dict[str, tuple[str, ...]] = {"mapper": ("mapper",), "full": ("full",),
                                      "both": ("mapper", "full")}
LM_TRAIN = ("lora", "full")
STATE_FILE, OPTIM_FILE = "train_state.json", "optimizer.pt"


@dataclass(frozen=True)
class TrainConfig:
    data: str
    out: str
    stage: str = "both"            # mapper | full | both
    epochs: float = 1.0
    max_steps: int = 0             # per stage; 0: epochs decide
    lr: float = 1e-3               # stage 1 (prefix modules)
    lr_full: float = 2e-4          # stage 2 (prefix modules and LM)
    lm_train: str = "lora"         # stage 2: lora | full
    batch_size: int = 8
    grad_accum: int = 1
    warmup_steps: int = 10
    weight_decay: float = 0.01
    max_answer_tokens: int = 160
    kinds: tuple[str, ...] = ("pair", "qa")
    tiers: tuple[str, ...] = ("concise", "detailed")
    aspects: tuple[str, ...] = ()
    max_records: int = 0
    mixed_precision: str = "auto"  # auto | no | bf16 | fp16
    save_every: int = 0            # optimizer steps between checkpoints (0: end of each stage)
    sensitivity_pairs: int = 8     # after training: does the text depend on the pair? (0: skip)
    stop_after: int = 0            # end each stage after N steps of its (longer) schedule (0: at its end)
    resume: bool = False
    seed: int = 0
    model: VerLMConfig = field(default_factory=VerLMConfig)

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise InputFormatError(f"--stage must be one of {list(STAGES)}", item=self.stage)
        if self.lm_train not in LM_TRAIN:
            raise InputFormatError("--lm-train must be lora or full", item=self.lm_train)


def _precision(requested: str) -> str:
    import torch

    from ..models.hf_vlm import pick_dtype  # one rule for "auto" in both trainers
    if requested != "auto":
        return requested
    return "bf16" if pick_dtype("auto") == torch.bfloat16 else "no"


def _read_state(out: Path, resume: bool) -> dict[str, Any]:
    """The saved progress when resuming an interrupted run, else (or if none) a fresh start."""
    path = out / STATE_FILE
    if resume and path.is_file():
        return json.loads(path.read_text())
    return {"done": [], "stage": None, "step": 0, "losses": []}


def _build_model(tc: TrainConfig, out: Path, state: dict[str, Any]) -> Any:
    from ..models.verlm.checkpoint import load_checkpoint
    from ..models.verlm.lm import load_lm
    from ..models.verlm.model import VerLM
    if tc.resume and (out / CONFIG_NAME).is_file() and (state["done"] or state["step"]):
        return load_checkpoint(out, trainable=True)
    lm, tok = load_lm(tc.model.lm, tc.model.lm_layers)
    return VerLM(tc.model, lm, tok)


def _setup_stage(model: Any, stage: str, tc: TrainConfig) -> list[Any]:
    """Freeze/unfreeze for the stage; returns the trainable parameters."""
    from ..models.verlm.checkpoint import add_lora
    for p in model.lm.parameters():
        p.requires_grad_(False)
    if stage == "full":
        if tc.lm_train == "lora":
            if model.__dict__.get("peft") is None:
                add_lora(model, model.config.lora_r, model.config.lora_alpha)
            model.config = model.config.replace(lm_weights="lora")
            for name, p in model.lm.named_parameters():
                p.requires_grad_("lora_" in name)
        else:
            model.config = model.config.replace(lm_weights="full")
            for p in model.lm.parameters():
                p.requires_grad_(True)
    params = [p for m in model.prefix_modules() for p in m.parameters()]
    for p in params:
        p.requires_grad_(True)
    return params + [p for p in model.lm.parameters() if p.requires_grad]


def _schedule(total: int, warmup: int) -> Any:
    def factor(step: int) -> float:  # linear warm-up, cosine decay to 10%
        if step < warmup:
            return (step + 1) / warmup
        frac = (step - warmup) / max(1, total - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
    return factor


def _save(acc: Any, model: Any, out: Path, state: dict[str, Any], opt: Any, sched: Any) -> None:
    import torch
    from ..models.verlm.checkpoint import save_checkpoint
    acc.wait_for_everyone()
    if acc.is_main_process:
        save_checkpoint(acc.unwrap_model(model), out)
        torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, out / OPTIM_FILE)
        (out / STATE_FILE).write_text(json.dumps(state))  # last: it marks the checkpoint complete


def _optimizer(params: list[Any], stage: str, tc: TrainConfig, total: int, out: Path,
               state: dict[str, Any]) -> tuple[Any, Any, int]:
    """AdamW + schedule for the stage, restored when resuming it; returns (opt, sched, step)."""
    import torch
    lr = tc.lr if stage == "mapper" else tc.lr_full
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=tc.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(total, tc.warmup_steps))
    resumed = state["stage"] == stage and state["step"] > 0
    if resumed and (out / OPTIM_FILE).is_file():
        saved = torch.load(out / OPTIM_FILE, weights_only=False)
        opt.load_state_dict(saved["optimizer"])
        sched.load_state_dict(saved["scheduler"])
    step = state["step"] if resumed else 0
    state.update(stage=stage, step=step)
    return opt, sched, step


def run_stage(acc: Any, model: Any, items: list[Any], stage: str, tc: TrainConfig, out: Path,
              state: dict[str, Any]) -> None:
    """Train one stage to its step budget, resuming from `state` when it was interrupted."""
    import torch
    from torch.utils.data import DataLoader
    from tqdm import tqdm
    from ..models.verlm.inputs import collate
    params = _setup_stage(model, stage, tc)
    pad = int(model.tokenizer.pad_token_id)
    gen = torch.Generator().manual_seed(tc.seed)
    dl = DataLoader(items, batch_size=tc.batch_size, shuffle=True, generator=gen,
                    collate_fn=lambda b: collate(b, pad))
    total = tc.max_steps or max(1, math.ceil(tc.epochs * max(1, len(dl) // tc.grad_accum)))
    opt, sched, step = _optimizer(params, stage, tc, total, out, state)
    end = min(total, tc.stop_after) if tc.stop_after else total  # the schedule still spans `total`
    pmodel, opt, dl, sched = acc.prepare(model, opt, dl, sched)
    pmodel.train()
    bar = tqdm(total=end, initial=step, desc=f"stage {stage}", disable=not acc.is_local_main_process,
               file=sys.stderr)
    batches_done = step * tc.grad_accum
    epoch, skip = divmod(batches_done, len(dl))
    acc_loss, n = 0.0, 0
    while step < end:
        gen.manual_seed(tc.seed + epoch)  # each epoch's order is reproducible, so resuming can skip
        if hasattr(dl, "set_epoch"):
            dl.set_epoch(epoch)
        for batch in (acc.skip_first_batches(dl, skip) if skip else dl):
            with acc.accumulate(pmodel):
                loss = pmodel(batch)
                acc.backward(loss)
                if acc.sync_gradients:
                    acc.clip_grad_norm_(params, 1.0)
                opt.step(), sched.step(), opt.zero_grad()
            acc_loss, n = acc_loss + float(loss.detach()), n + 1
            if not acc.sync_gradients:
                continue
            step += 1
            state["losses"].append(acc_loss / n)
            state["step"] = step
            bar.set_postfix(loss=f"{acc_loss / n:.3f}")
            bar.update(1)
            acc_loss, n = 0.0, 0
            if tc.save_every and step % tc.save_every == 0 and step < end:
                _save(acc, pmodel, out, state, opt, sched)
            if step >= end:
                break
        epoch, skip = epoch + 1, 0
    bar.close()
    state["done"].append(stage)
    state.update(stage=None, step=0)
    _save(acc, pmodel, out, state, opt, sched)
    acc.free_memory()


def train(tc: TrainConfig) -> Path:
    """Run the stages of `tc` into the checkpoint folder `tc.out`; returns it."""
    with train_lock(tc.out):  # one run per folder
        return _train(tc)


def _train(tc: TrainConfig) -> Path:
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs
    from ..models.verlm.features import FaceFeatureExtractor
    from .verlm_data import build_items, select_records
    set_seed(tc.seed)
    out = Path(tc.out)
    out.mkdir(parents=True, exist_ok=True)
    # unused parameters are normal here (no second image or score token in a QA-only batch)
    acc = Accelerator(gradient_accumulation_steps=tc.grad_accum, mixed_precision=_precision(tc.mixed_precision),
                      kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    state = _read_state(out, tc.resume)
    model = _build_model(tc, out, state)
    records = select_records(tc.data, kinds=tc.kinds, tiers=tc.tiers, aspects=tc.aspects,
                             limit=tc.max_records)
    items = build_items(records, tc.data, model.tokenizer, model.config, FaceFeatureExtractor(),
                        tc.max_answer_tokens, show=acc.is_local_main_process)
    if acc.is_main_process:
        save_config(tc, out / "train_config.json")
    for stage in STAGES[tc.stage]:
        if stage in state["done"]:
            continue
        run_stage(acc, model, items, stage, tc, out, state)
    if acc.is_main_process and state["losses"]:
        save_loss_curve(state["losses"], out / "loss.png", title=f"VerLM ({tc.stage})")
    if acc.is_main_process and tc.sensitivity_pairs:
        sensitivity_report(acc.unwrap_model(model), records, tc, out)
    return out


def sensitivity_report(model: Any, records: Sequence[Any], tc: TrainConfig, out: Path) -> dict[str, Any] | None:
    """The training report's input-sensitivity check (facelm.eval.explanations.input_sensitivity)
    on the first pairs of the training data, one prompt for all: written to sensitivity.json and
    summarised on stderr. A model whose texts do not change with the pair has not learned to read
    its prefix, whatever its loss."""
    from ..eval.explanations import input_sensitivity
    from ..models.verlm.features import FaceFeatureExtractor
    from ..models.verlm.interface import VerLMFaceVLM
    from .common import resolve_image
    pairs = [r for r in records if r.kind == "pair"]
    if not pairs:
        return None
    prompt, seen, chosen = pairs[0].question, set(), []
    for r in pairs:
        if r.question == prompt and r.images not in seen:
            seen.add(r.images)
            chosen.append(tuple(resolve_image(p, Path(tc.data)) for p in r.images))
        if len(chosen) >= tc.sensitivity_pairs:
            break
    was_training = model.training
    vlm = VerLMFaceVLM(model.eval(), extractor=FaceFeatureExtractor(), device=str(next(model.parameters()).device))
    report = input_sensitivity(vlm, chosen, prompt, max_new_tokens=tc.max_answer_tokens)
    model.train(was_training)
    (out / "sensitivity.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"input sensitivity: {report['distinct_texts']:.0%} distinct texts for {len(chosen)} pairs; "
          f"swapping the photos keeps the verdict in {report['swap']['verdict_kept']:.0%} and changes "
          f"the text in {report['swap']['text_changed']:.0%} (sensitivity.json)", file=sys.stderr)
    return report
