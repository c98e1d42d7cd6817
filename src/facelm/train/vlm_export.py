"""Merge a LoRA adapter into its base and save a plain model, checked against base + adapter.

Other tools have been known to export the unmerged base silently; here the merged folder is reloaded
with `AutoModelForImageTextToText` and its logits on a probe input must match base + adapter.
"""
from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import FaceLMError
from ..schema_version import dumps as stamped_json

EXPORT_INFO = "facelm_export.json"
# Files of a model folder that are weights or model config; everything else (processor, tokenizer,
# chat template, video processor config) is copied verbatim so the export keeps the hub's layout.
_NOT_PROCESSOR = {"config.json", "generation_config.json", "README.md", ".gitattributes"}
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".index.json", ".gguf")


@dataclass(frozen=True)
class ExportReport:
    out: str
    base: str
    adapter: str
    max_abs_diff: float      # merged (reloaded) vs base + adapter, on the probe
    adapter_effect: float    # base + adapter vs base alone: 0 means the adapter changes nothing
    checked: bool


def probe_batch(processor: Any) -> dict[str, Any]:
    """A deterministic probe input: one gradient image and a question, as a generation prompt."""
    import numpy as np
    from PIL import Image

    from ..models.hf_inputs import encode_prompts
    ramp = np.linspace(0, 255, 64 * 64 * 3).reshape(64, 64, 3).astype(np.uint8)
    return dict(encode_prompts(processor, [([Image.fromarray(ramp)], "Describe this image.")]))


def _logits(model: Any, batch: dict[str, Any]) -> Any:
    import torch
    with torch.no_grad():
        return model(**batch).logits.float()


def _processor_source(base: str) -> Path | None:
    """The folder holding the base's processor files (a local folder or the hub cache)."""
    if Path(base).is_dir():
        return Path(base)
    try:
        from huggingface_hub import snapshot_download
        return Path(snapshot_download(base, local_files_only=True))
    except Exception:  # not cached as a snapshot: the processor is saved from memory instead
        return None


def _copy_processor_files(src: Path, out: Path) -> int:
    n = 0
    for f in src.iterdir():
        if f.is_file() and f.name not in _NOT_PROCESSOR and not f.name.endswith(_WEIGHT_SUFFIXES):
            shutil.copy2(f, out / f.name)
            n += 1
    return n


def export_merged(adapter: str | Path, out: str | Path, *, base: str | None = None,
                  check: bool = True, atol: float = 1e-3) -> ExportReport:
    """Merge `adapter` into its base (from adapter_config.json unless `base` is given), save to
    `out`, reload it and compare logits with base + adapter."""
    from peft import PeftModel

    from ..models.hf_vlm import ADAPTER_CONFIG, adapter_base, load_base
    adapter, out = Path(adapter), Path(out)
    if not (adapter / ADAPTER_CONFIG).is_file() and (adapter / "adapter" / ADAPTER_CONFIG).is_file():
        adapter = adapter / "adapter"  # the training output folder was given
    if not (adapter / ADAPTER_CONFIG).is_file():
        raise FaceLMError(f"no {ADAPTER_CONFIG} here", item=str(adapter),
                          hint="give the adapter folder written by `facelm train vlm` (OUT/adapter)")
    base = base or adapter_base(adapter)
    model, processor = load_base(base, dtype="float32", device="cpu")
    probe = probe_batch(processor)
    base_logits = _logits(model, probe)
    peft_model = PeftModel.from_pretrained(model, str(adapter)).eval()
    adapted = _logits(peft_model, probe)
    merged = peft_model.merge_and_unload()
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(out))
    src = _processor_source(base)
    if src is None or not _copy_processor_files(src, out):
        processor.save_pretrained(str(out))
    report = ExportReport(str(out), base, str(adapter), float("nan"),
                          float((adapted - base_logits).abs().max()), check)
    if check:
        report = _check(out, probe, adapted, report, atol)
    _write_report(report)
    return report


def _write_report(report: ExportReport) -> None:
    path = Path(report.out) / EXPORT_INFO
    path.write_text(stamped_json(asdict(report), indent=2) + "\n", encoding="utf-8")


def _check(out: Path, probe: dict[str, Any], adapted: Any, report: ExportReport,
           atol: float) -> ExportReport:
    from dataclasses import replace

    import torch
    from transformers import AutoModelForImageTextToText
    reloaded = AutoModelForImageTextToText.from_pretrained(str(out), dtype=torch.float32).eval()
    diff = float((_logits(reloaded, probe) - adapted).abs().max())
    report = replace(report, max_abs_diff=diff)
    if not diff <= atol:
        _write_report(report)
        raise FaceLMError(f"the merged model's logits differ from base + adapter by {diff:.3g} "
                          f"(tolerance {atol})", item=str(out),
                          hint="do not use this export; report it with facelm_export.json")
    return report
