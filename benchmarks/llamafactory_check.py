"""Does a facelm LLaMA-Factory export (with its generated YAML) pass LLaMA-Factory's own code?

Runs LLaMA-Factory's dataset parser and format converter (`get_dataset_list`, `align_dataset`) on
the YAML's dataset, and parses every YAML key with LLaMA-Factory's own argument dataclasses (no
unknown keys allowed). LLaMA-Factory is not a facelm dependency (its pins would replace the CPU
torch), so install it beside, without its dependencies, and point PYTHONPATH at it:

    .venv/bin/python -m pip install --no-deps --target /tmp/lf llamafactory==0.9.5 omegaconf antlr4-python3-runtime==4.9.3
    facelm data export DATASET --format llamafactory --to OUT --llamafactory-yaml 1b
    DISABLE_VERSION_CHECK=1 PYTHONPATH=/tmp/lf .venv/bin/python benchmarks/llamafactory_check.py OUT/NAME/facelm_lora_sft.yaml

DISABLE_VERSION_CHECK: LLaMA-Factory 0.9.5 pins transformers <= 5.6; its converter does not
depend on the difference.
"""
from __future__ import annotations

import importlib.machinery
import os
import sys
import types


def main(yaml_path: str) -> int:
    # torchaudio: an audio decoder LLaMA-Factory imports at module level; text and image data never
    # reach it, and it has no CPU wheel beside torch 2.13 here.
    stub = types.ModuleType("torchaudio")
    stub.__spec__ = importlib.machinery.ModuleSpec("torchaudio", None)
    sys.modules.setdefault("torchaudio", stub)
    import yaml
    from datasets import load_dataset
    from llamafactory.data.converter import align_dataset
    from llamafactory.data.parser import get_dataset_list
    from llamafactory.hparams import DataArguments
    from llamafactory.hparams.parser import _TRAIN_ARGS
    from transformers import HfArgumentParser
    with open(yaml_path) as f:
        cfg = yaml.safe_load(f)
    data_args = DataArguments(dataset=cfg["dataset"], dataset_dir=cfg["dataset_dir"], template=cfg["template"],
                              cutoff_len=cfg["cutoff_len"], preprocessing_num_workers=1, overwrite_cache=True)
    for attr in get_dataset_list(data_args.dataset, data_args.dataset_dir):
        ds = load_dataset("json", data_files=os.path.join(data_args.dataset_dir, attr.dataset_name), split="train")
        out = align_dataset(ds, attr, data_args, types.SimpleNamespace(local_process_index=0))
        missing = [i for i, r in enumerate(out) if not (r["_prompt"] and r["_response"] and r["_images"])]
        print(f"{attr.dataset_name}: {len(out)} records converted, {len(missing)} without prompt, "
              f"response or image; first: {out[0]['_prompt']} -> {out[0]['_response']}")
        if missing:
            return 1
    # bf16 is the released recipe's (a GPU's); transformers refuses it on a CPU-only machine.
    parsed = HfArgumentParser(_TRAIN_ARGS).parse_dict({**cfg, "bf16": False}, allow_extra_keys=False)
    print("every YAML key is a LLaMA-Factory argument:", ", ".join(type(p).__name__ for p in parsed))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    raise SystemExit(main(sys.argv[1]))
