"""Full-size random-weight replicas of hub VLM folders (issue 17): the SmolVLM-256M replica goes
through train → merge → reload → generate; the InternVL3-1B hub files load without torchvision and
tile like the real processor. The InternVL3-1B weights run in benchmarks/replica_recipe.py, not here.

CPU budget: SmolVLM's processor splits an image into up to 4×4 tiles of 512 px plus a global one
(17 × 64 image tokens). The training test turns splitting off in its copy of the folder (one tile,
64 image tokens) and runs 2 steps; the architecture is the real one.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from facelm.cli import main
from facelm.csvio import read_csv
from facelm.data.schema import QA_QUESTIONS, Record
from facelm.models.replica import FIXTURES, NOTICE, REPLICAS, build_replica, write_hub_files

pytestmark = pytest.mark.slow
VISION = ("model.vision_model.", "model.connector.")
TEXT = "model.text_model."


@pytest.fixture(scope="module")
def smol(tmp_path_factory) -> Path:
    return build_replica("smolvlm-256m", tmp_path_factory.mktemp("replica") / "SmolVLM-256M-Instruct")


@pytest.fixture(scope="module")
def smol_one_tile(smol, tmp_path_factory) -> Path:
    """The replica with image splitting off (CPU budget); the weights are linked, not copied."""
    out = tmp_path_factory.mktemp("replica") / "smol-one-tile"
    out.mkdir()
    for f in smol.iterdir():
        if f.suffix == ".safetensors":
            os.symlink(f, out / f.name)
        else:
            shutil.copyfile(f, out / f.name)
    pre = json.loads((out / "preprocessor_config.json").read_text())
    (out / "preprocessor_config.json").write_text(json.dumps({**pre, "do_image_splitting": False}))
    return out


@pytest.fixture(scope="module")
def qa_data(utk_dir, tmp_path_factory) -> Path:
    rows = read_csv(utk_dir / "labels.csv")[1][:4]
    recs = [Record(id=f"qa{i}", kind="qa", images=(str(utk_dir / r["file"]),),
                   question=QA_QUESTIONS["demographics"], aspect="demographics",
                   answer=f"A {r['gender']} person of about {r['age']} years.")
            for i, r in enumerate(rows)]
    folder = tmp_path_factory.mktemp("qa")
    (folder / "records.jsonl").write_text("".join(json.dumps(r.to_dict()) + "\n" for r in recs))
    return folder


def test_smolvlm_replica_has_the_hub_files_and_sizes(smol):
    from transformers import AutoTokenizer
    fixtures = FIXTURES / REPLICAS["smolvlm-256m"].fixtures
    for name in ("generation_config.json", "preprocessor_config.json", "processor_config.json",
                 "chat_template.json", "tokenizer_config.json", "special_tokens_map.json"):
        assert (smol / name).read_bytes() == (fixtures / name).read_bytes(), name
    cfg = json.loads((smol / "config.json").read_text())
    assert cfg["facelm_replica"]["note"] == NOTICE and NOTICE in (smol / "README.md").read_text()
    tok = AutoTokenizer.from_pretrained(smol)
    assert len(tok) == cfg["text_config"]["vocab_size"] == 49280
    assert tok.convert_tokens_to_ids("<image>") == cfg["image_token_id"] == 49190
    assert tok.convert_tokens_to_ids("<end_of_utterance>") == 49279
    from safetensors import safe_open
    with safe_open(smol / "model.safetensors", "pt") as f:
        n = sum(torch.Size(f.get_slice(k).get_shape()).numel() for k in f.keys())
    assert 255e6 < n < 260e6  # SmolVLM-256M: 256.5 M parameters


def test_internvl3_hub_files_load_without_torchvision_and_tile(tmp_path):
    """The real InternVL3-1B-hf processor files minus the video processor config: the processor
    loads (no torchvision), and a 2:1 image becomes 2 tiles + a thumbnail of 256 tokens each."""
    from PIL import Image

    from facelm.models.hf_processor import load_processor
    from facelm.models.hf_inputs import prompt_text
    folder = write_hub_files("internvl3-1b", tmp_path / "InternVL3-1B-hf")
    (folder / "video_preprocessor_config.json").unlink()
    proc = load_processor(str(folder))
    tok = proc.tokenizer
    assert type(proc).__name__ == "InternVLProcessor"
    assert tok.convert_tokens_to_ids("<IMG_CONTEXT>") == 151667
    # the embedding has 151,674 rows; transformers appends the named video token "<video>" after
    # them, so it is the one id the model cannot embed (facelm never sends video)
    assert len(tok) == 151675 and tok.convert_ids_to_tokens(151674) == "<video>"
    image = Image.new("RGB", (896, 448), (120, 90, 60))
    batch = proc(text=[prompt_text(proc, 1, QA_QUESTIONS["general"])], images=[[image]],
                 return_tensors="pt")
    assert tuple(batch["pixel_values"].shape) == (3, 3, 448, 448)
    assert int((batch["input_ids"] == 151667).sum()) == 3 * 256
    assert int(batch["input_ids"].max()) < 151674


def test_smolvlm_replica_trains_merges_reloads_and_generates(smol_one_tile, qa_data, tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoModelForImageTextToText

    from facelm.models.hf_vlm import load
    out, merged = tmp_path / "run", tmp_path / "merged"
    assert main(["train", "vlm", "--base", str(smol_one_tile), "--data", str(qa_data),
                 "--out", str(out), "--preset", "released", "--max-steps", "2", "--batch-size", "1",
                 "--grad-accum", "1", "--lr", "1e-3", "--no-gradient-checkpointing",
                 "--quiet"]) == 0
    keys = load_file(out / "adapter" / "adapter_model.safetensors").keys()
    assert keys and all(".text_model." in k and "lora_" in k for k in keys)
    # all-linear on the LM: attention and MLP projections of every layer
    assert {k.split(".")[-3] for k in keys} >= {"q_proj", "k_proj", "v_proj", "o_proj",
                                               "gate_proj", "up_proj", "down_proj"}
    assert main(["train", "merge", "--adapter", str(out), "--out", str(merged)]) == 0
    report = json.loads((merged / "facelm_export.json").read_text())
    assert report["max_abs_diff"] < 1e-4 and report["adapter_effect"] > 0
    assert not (merged / "video_preprocessor_config.json").exists()
    plain = AutoModelForImageTextToText.from_pretrained(merged, dtype=torch.float32)
    base = AutoModelForImageTextToText.from_pretrained(smol_one_tile, dtype=torch.float32)
    b, m = base.state_dict(), plain.state_dict()
    assert set(b) == set(m)
    changed = [k for k in b if not torch.equal(b[k], m[k])]
    assert changed and all(k.startswith(TEXT) for k in changed)
    assert any(k.startswith(VISION) for k in b)
    del base, plain
    text = load(merged, device="cpu").generate([qa_data_image(qa_data)], "Describe this image.",
                                               max_new_tokens=3)
    assert isinstance(text, str)


def qa_data_image(folder: Path) -> str:
    return json.loads((folder / "records.jsonl").read_text().splitlines()[0])["images"][0]


def test_replica_never_writes_into_a_folder_that_is_not_one(tmp_path):
    from facelm.errors import FaceLMError
    again = write_hub_files("internvl3-1b", write_hub_files("internvl3-1b", tmp_path / "r"))  # a replica: rewritten
    assert (again / "config.json").is_file()
    real = tmp_path / "real-model"
    real.mkdir()
    (real / "config.json").write_text('{"model_type": "internvl"}')
    with pytest.raises(FaceLMError, match="does not hold a facelm replica"):
        write_hub_files("internvl3-1b", real)
    assert [p.name for p in real.iterdir()] == ["config.json"]
    assert (real / "config.json").read_text() == '{"model_type": "internvl"}'
