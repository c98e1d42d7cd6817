"""Full-size, random-weight replicas of real hub VLM folders, built offline.

    python -m facelm.models.replica internvl3-1b OUT      # OpenGVLab/InternVL3-1B-hf layout
    python -m facelm.models.replica smolvlm-256m OUT      # HuggingFaceTB/SmolVLM-256M-Instruct layout

Tiny models (`hf_tiny`) hide what breaks at real size: the hub's exact processor and tokenizer files,
a 151k-token vocabulary, 448-px dynamic tiling, memory, LoRA on the real module names. A replica
has the real architecture and the real config/processor/tokenizer files (stored as fixtures in
`replica_fixtures/<name>/`, each file's source in its SOURCE.md), with seeded random weights. It is
not the real model: config.json carries a `facelm_replica` entry and README.md says so.
"""
from __future__ import annotations

import argparse
import json
import lzma
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

FIXTURES = Path(__file__).with_name("replica_fixtures")
NOTICE = "random-weight replica, not the real model"
# Qwen2's pre-tokenizer split (its tokenizer.json), kept so that text splits like the real one.
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")


@dataclass(frozen=True)
class ReplicaSpec:
    hub: str                                  # the repository whose layout is replicated
    fixtures: str                             # folder under replica_fixtures/
    write_tokenizer: Callable[[Path, Path], None]  # (fixture folder, out folder) -> tokenizer.json


def _smollm2_tokenizer(fixtures: Path, out: Path) -> None:
    """The stored tokenizer.json (xz-compressed, 435 KB; 1.8 MB unpacked) as it is."""
    with lzma.open(fixtures / "tokenizer.json.xz", "rb") as src:
        (out / "tokenizer.json").write_bytes(src.read())


def _qwen2_tokenizer(fixtures: Path, out: Path) -> None:
    """A byte-level BPE with Qwen2.5's vocabulary size (151,643 + 31 added = 151,674), its
    pre-tokenizer and its added tokens at their real ids. The real merges are not stored here (no
    copy could be had): merges are trained on facelm's own text and the remaining ids are unused
    filler entries, so ids of ordinary text differ from the real tokenizer's."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    from ..data.schema import PAIR_QUESTIONS, QA_QUESTIONS
    from .hf_tiny import _CORPUS
    cfg = json.loads((fixtures / "tokenizer_config.json").read_text(encoding="utf-8"))
    added = {int(i): t for i, t in cfg["added_tokens_decoder"].items()}
    base_size = min(added)                                     # 151643: ordinary tokens below
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    text = list(QA_QUESTIONS.values()) + list(PAIR_QUESTIONS.values()) + _CORPUS
    tok.train_from_iterator(text * 4, trainers.BpeTrainer(
        vocab_size=2048, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    data = json.loads(tok.to_str())
    vocab = data["model"]["vocab"]
    for i in range(len(vocab), base_size):                     # unreachable: no merge makes them
        vocab[f"<|replica_unused_{i}|>"] = i
    data["added_tokens"] = [{"id": i, **{k: t[k] for k in ("content", "single_word", "lstrip",
                             "rstrip", "normalized", "special")}} for i, t in sorted(added.items())]
    (out / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


# replica name -> spec. Plain registry; a new replica is a fixtures folder plus an entry here.
REPLICAS: dict[str, ReplicaSpec] = {
    "internvl3-1b": ReplicaSpec("OpenGVLab/InternVL3-1B-hf", "internvl3_1b_hf", _qwen2_tokenizer),
    "smolvlm-256m": ReplicaSpec("HuggingFaceTB/SmolVLM-256M-Instruct", "smolvlm_256m_instruct",
                                _smollm2_tokenizer),
}
# Fixture files that are not hub files (provenance, compressed inputs).
_NOT_COPIED = {"SOURCE.md", "tokenizer.json.xz"}


def _copy_fixtures(fixtures: Path, out: Path, spec: ReplicaSpec, seed: int) -> None:
    """The hub files, with config.json marked as a replica (the other files are byte-for-byte)."""
    for f in sorted(fixtures.iterdir()):
        if f.name not in _NOT_COPIED:
            shutil.copyfile(f, out / f.name)
    cfg = json.loads((fixtures / "config.json").read_text(encoding="utf-8"))
    cfg["facelm_replica"] = {"of": spec.hub, "weights": f"random, torch seed {seed}", "note": NOTICE}
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    (out / "README.md").write_text(
        f"---\ntags: [facelm-replica]\n---\n# {spec.hub}: {NOTICE}\n\n"
        f"Built by `python -m facelm.models.replica`. The config, processor and chat-template files "
        f"are copies of `{spec.hub}`'s (see facelm's replica_fixtures/{spec.fixtures}/SOURCE.md); "
        f"the weights are random (torch seed {seed}). Use it to test code paths, sizes and speed; "
        f"its outputs mean nothing.\n", encoding="utf-8")


def build_replica(name: str, out: str | Path, *, seed: int = 0, dtype: str = "bfloat16") -> Path:
    """Write replica `name` (a key of REPLICAS) into `out`; returns `out`. Weights are initialised
    in fp32 with torch seed `seed`, then saved as `dtype` (the hub files are bfloat16)."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText
    out = write_hub_files(name, out, seed=seed)  # checks the name
    spec = REPLICAS[name]
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(AutoConfig.from_pretrained(out),
                                                    dtype=torch.float32)
    model.to(getattr(torch, dtype)).save_pretrained(out)
    # save_pretrained rewrote config.json and generation_config.json in its own words
    _copy_fixtures(FIXTURES / spec.fixtures, out, spec, seed)
    return out


def _refuse_foreign(out: Path) -> None:
    """A non-empty folder is written into only when it holds a replica already (its config says
    so): the hub file names (config.json, tokenizer.json ...) would overwrite a real model's."""
    import json
    from ..errors import FaceLMError
    if not out.is_dir() or not any(out.iterdir()):
        return
    try:
        ours = "facelm_replica" in json.loads((out / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        ours = False
    if not ours:
        raise FaceLMError("is a folder that does not hold a facelm replica; it was left unchanged",
                          item=str(out), hint="give a new or empty output folder")


def write_hub_files(name: str, out: str | Path, *, seed: int = 0) -> Path:
    """Every file of replica `name` but the weights: enough to load its processor (seconds)."""
    if name not in REPLICAS:
        raise ValueError(f"unknown replica {name!r}; choose one of {sorted(REPLICAS)}")
    spec = REPLICAS[name]
    fixtures, out = FIXTURES / spec.fixtures, Path(out)
    _refuse_foreign(out)
    out.mkdir(parents=True, exist_ok=True)
    _copy_fixtures(fixtures, out, spec, seed)
    spec.write_tokenizer(fixtures, out)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m facelm.models.replica", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=sorted(REPLICAS))
    p.add_argument("out", help="output folder (created)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16")
    args = p.parse_args(argv)
    out = build_replica(args.name, args.out, seed=args.seed, dtype=args.dtype)
    print(f"{args.name}: {NOTICE} of {REPLICAS[args.name].hub} written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
