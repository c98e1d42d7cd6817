"""LoRA fine-tuning of a Hugging Face VLM on facelm records (FaceLLM's recipe), one process or many.

The same code runs on a CPU, one GPU, or under `accelerate launch` / torchrun with DDP, FSDP or
DeepSpeed ZeRO-3 (the launch config decides; see facelm/train/configs/). Output folder:

    OUT/adapter/               peft adapter + processor (load with facelm or PeftModel)
    OUT/vlm_train_config.json  the config (also inside adapter/ and every checkpoint)
    OUT/checkpoints/step-N/    accelerate state (model, optimizer, scheduler, RNG) + trainer_state.json
    OUT/trainer_state.json     step and per-step losses
    OUT/loss_curve.png
"""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import FaceLMError
from .vlm_config import CONFIG_FILE, VLMTrainConfig

STATE_FILE = "trainer_state.json"


@dataclass
class TrainState:
    step: int = 0
    losses: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class TrainResult:
    out: Path
    adapter: Path
    steps: int
    total_steps: int
    losses: list[float]
    mixed_precision: str    # what ran: "bf16" or "no" (fp32)


def _accelerator(cfg: VLMTrainConfig) -> Any:
    import torch
    from accelerate import Accelerator

    from ..models.hf_vlm import pick_dtype
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto"
                                       and pick_dtype("auto") == torch.bfloat16)
    return Accelerator(gradient_accumulation_steps=cfg.grad_accum,
                       mixed_precision="bf16" if bf16 else "no")


def _build(cfg: VLMTrainConfig, acc: Any) -> tuple[Any, Any]:
    """(peft model, processor). The frozen base is held in bf16 under bf16 training (half the
    memory); peft keeps the LoRA weights in fp32."""
    from ..models.hf_vlm import load_base
    from .vlm_lora import apply_lora
    dtype = "bfloat16" if acc.mixed_precision == "bf16" else "float32"
    model, processor = load_base(cfg.base, dtype=dtype, device="cpu")
    if cfg.gradient_checkpointing:
        # non-reentrant checkpointing needs no input grads, so frozen embeddings are fine
        kwargs = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):  # the name from transformers 5.2x on
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        for config in (model.config, getattr(model.config, "text_config", None)):
            if config is not None:  # the KV cache is useless in training and clashes with it
                config.use_cache = False
    return apply_lora(model, cfg), processor


def _scheduler(cfg: VLMTrainConfig, optimizer: Any, total: int) -> Any:
    from transformers import get_scheduler
    name = {"constant": "constant_with_warmup"}.get(cfg.schedule, cfg.schedule)
    return get_scheduler(name, optimizer, num_warmup_steps=int(cfg.warmup_ratio * total),
                         num_training_steps=total)


def checkpoints(out: Path) -> list[Path]:
    return sorted((out / "checkpoints").glob("step-*"), key=lambda p: int(p.name.split("-")[1]))


def _check_same_run(cfg: VLMTrainConfig, out: Path) -> None:
    if not (out / CONFIG_FILE).is_file():
        return
    saved = VLMTrainConfig.load(out)
    if saved != cfg:
        before = asdict(saved)
        diff = [k for k, v in asdict(cfg).items() if before.get(k) != v]
        raise FaceLMError(f"--resume with a different config ({', '.join(diff)} changed)",
                          item=str(out), hint="use the same options, or a new --out to start over")


def _resume(acc: Any, out: Path) -> TrainState:
    found = checkpoints(out)
    if not found:
        return TrainState()
    acc.load_state(str(found[-1]))
    return TrainState(**json.loads((found[-1] / STATE_FILE).read_text(encoding="utf-8")))


def _save_state(state: TrainState, folder: Path) -> None:
    from .common import save_config
    save_config(state, folder / STATE_FILE)


def _save_checkpoint(acc: Any, cfg: VLMTrainConfig, state: TrainState) -> None:
    out = Path(cfg.out)
    folder = out / "checkpoints" / f"step-{state.step:06d}"
    acc.save_state(str(folder))
    if acc.is_main_process:
        _save_state(state, folder)
        cfg.save(folder)
        for old in checkpoints(out)[: -cfg.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)
    acc.wait_for_everyone()


def _step(acc: Any, model: Any, optimizer: Any, batches: list[dict[str, Any]],
          max_grad_norm: float) -> Any:
    """One optimizer step over grad_accum micro batches; the mean micro-batch loss."""
    import torch
    losses = []
    for batch in batches:
        with acc.accumulate(model):
            loss = model(**batch).loss
            acc.backward(loss)
            if acc.sync_gradients and max_grad_norm > 0:
                acc.clip_grad_norm_([p for p in model.parameters() if p.requires_grad],
                                    max_grad_norm)
            optimizer.step()
            optimizer.zero_grad()
        losses.append(loss.detach().float())
    return acc.reduce(torch.stack(losses).mean(), reduction="mean")


def _loop(acc: Any, parts: tuple[Any, Any, Any, Any], examples: list[Any], sched: Any,
          cfg: VLMTrainConfig, state: TrainState, end: int, bar: Any) -> None:
    """Optimizer steps from state.step up to `end`, checkpointing every cfg.save_every."""
    from ..models.hf_vlm import to_device
    from .vlm_config import system_prompt
    from .vlm_data import collate, micro_batches
    model, optimizer, scheduler, processor = parts
    dtype = next(p for p in model.parameters() if not p.requires_grad).dtype  # the base's dtype
    model.train()
    while state.step < end:
        batches = [to_device(dict(collate(processor, [examples[i] for i in idx], cfg.cutoff,
                                          system_prompt(cfg.system_prompt))), acc.device, dtype)
                   for idx in micro_batches(sched, state.step, acc.process_index, cfg.seed)]
        loss = _step(acc, model, optimizer, batches, cfg.max_grad_norm).item()
        scheduler.step()
        state.step += 1
        state.losses.append(loss)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
        if cfg.save_every and state.step % cfg.save_every == 0 and state.step < end:
            _save_checkpoint(acc, cfg, state)


def train(cfg: VLMTrainConfig, *, resume: bool = False, stop_after: int = 0,
          progress: bool = True) -> TrainResult:
    """Train (or continue, with `resume`) the LoRA adapter described by `cfg`.

    `stop_after` > 0 ends this invocation after that many optimizer steps in total (a time-sliced
    or preemptible job); `resume=True` later continues the same run, same batches and schedule.
    """
    from .common import train_lock
    with train_lock(cfg.out):  # one run per folder
        return _train(cfg, resume, stop_after, progress)


def _train(cfg: VLMTrainConfig, resume: bool, stop_after: int, progress: bool) -> TrainResult:
    import torch
    from tqdm.auto import tqdm

    from .common import set_seed
    from .vlm_data import Schedule, load_examples
    out = Path(cfg.out)
    if resume:
        _check_same_run(cfg, out)
    elif checkpoints(out):
        raise FaceLMError("this folder already holds a training run", item=str(out),
                          hint="add --resume to continue it, or choose a new --out")
    set_seed(cfg.seed)
    acc = _accelerator(cfg)
    examples = load_examples(cfg.data, cfg.limit)
    model, processor = _build(cfg, acc)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                                  weight_decay=cfg.weight_decay)
    sched = Schedule(len(examples), cfg.batch_size, cfg.grad_accum, acc.num_processes)
    total = sched.total_steps(cfg.epochs, cfg.max_steps)
    # The scheduler is stepped once per optimizer step here; `prepare` would step it per process.
    scheduler = _scheduler(cfg, optimizer, total)
    model, optimizer = acc.prepare(model, optimizer)
    acc.register_for_checkpointing(scheduler)
    if acc.is_main_process:
        cfg.save(out)
    state = _resume(acc, out) if resume else TrainState()
    end = min(total, stop_after) if stop_after > 0 else total
    bar = tqdm(total=total, initial=state.step, desc="train vlm", unit="step",
               disable=not (progress and acc.is_main_process))
    _loop(acc, (model, optimizer, scheduler, processor), examples, sched, cfg, state, end, bar)
    bar.close()
    _save_checkpoint(acc, cfg, state)
    adapter = _save_adapter(acc, model, processor, cfg, state)
    return TrainResult(out, adapter, state.step, total, list(state.losses),
                       str(acc.mixed_precision))


def _save_adapter(acc: Any, model: Any, processor: Any, cfg: VLMTrainConfig,
                  state: TrainState) -> Path:
    from .common import save_loss_curve
    out = Path(cfg.out)
    adapter = out / "adapter"
    state_dict = acc.get_state_dict(model)  # gathers shards under FSDP / ZeRO-3 (all ranks call)
    if acc.is_main_process:
        acc.unwrap_model(model).save_pretrained(str(adapter), state_dict=state_dict)
        processor.save_pretrained(str(adapter))
        cfg.save(adapter)
        _save_state(state, out)
        if state.losses:
            save_loss_curve(state.losses, out / "loss_curve.png", title=f"LoRA on {Path(cfg.base).name}")
    acc.wait_for_everyone()
    return adapter
