"""FaceLLM's released LLaMA-Factory recipe as a YAML beside the export, and the `intern_vl` system
prompt as a facelm trainer option (issue 17 item 3)."""
from __future__ import annotations

import json

import pytest

from facelm.cli import main
from facelm.data.llamafactory_yaml import YAML_NAME, released_yaml
from facelm.data.schema import QA_QUESTIONS, Record
from facelm.train.vlm_config import SYSTEM_PROMPTS, make_config, system_prompt


def _yaml(text: str) -> dict[str, str]:
    """key: value lines (the file is flat sections of scalars)."""
    return dict(line.split(": ", 1) for line in text.splitlines()
                if line and not line.startswith("#") and ": " in line)


@pytest.mark.parametrize("size,batch,accum", [("1b", "10", "8"), ("8b", "10", "8"),
                                              ("38b", "2", "6")])
def test_released_settings_per_size(size, batch, accum):
    y = _yaml(released_yaml("faces_train", "/data", size))
    assert y["template"] == "intern_vl" and y["lora_target"] == "all"
    assert (y["lora_rank"], y["lora_alpha"], y["learning_rate"]) == ("16", "32", "1.0e-5")
    assert (y["lr_scheduler_type"], y["bf16"], y["cutoff_len"]) == ("cosine", "true", "2048")
    assert (y["per_device_train_batch_size"], y["gradient_accumulation_steps"]) == (batch, accum)
    assert y["model_name_or_path"] == f"OpenGVLab/InternVL3-{size.upper()}-hf"
    assert y["dataset"] == "faces_train" and y["dataset_dir"] == "/data"


def test_export_writes_the_yaml_and_owns_it(utk_dir, tmp_path):
    src = tmp_path / "faces"
    src.mkdir()
    photos = sorted((utk_dir / "images").iterdir())[:3]
    recs = [Record(id=f"q{i}", kind="qa", images=(str(p),), question=QA_QUESTIONS["general"],
                   answer="A face.", aspect="general") for i, p in enumerate(photos)]
    (src / "records.jsonl").write_text("".join(json.dumps(r.to_dict()) + "\n" for r in recs))
    dest = tmp_path / "lf"
    assert main(["data", "export", str(src), "--format", "llamafactory", "--to", str(dest),
                 "--test-fraction", "0", "--llamafactory-yaml", "38b"]) == 0
    y = _yaml((dest / "faces" / YAML_NAME).read_text())
    assert y["dataset"] in json.loads((dest / "dataset_info.json").read_text())
    assert y["dataset_dir"] == str(dest.resolve()) and y["per_device_train_batch_size"] == "2"
    marker = json.loads((dest / "faces" / "facelm_export.json").read_text())
    assert f"faces/{YAML_NAME}" in marker["exports"]["llamafactory"]["files"]
    assert main(["data", "export", str(src), "--format", "swift", "--to", str(tmp_path / "sw"),
                 "--llamafactory-yaml", "1b"]) != 0


def test_system_prompt_option_puts_a_system_turn_before_training_prompts():
    from facelm.models.hf_inputs import messages
    cfg = make_config("tiny:internvl", "d", "o", "released", system_prompt="intern_vl")
    text = system_prompt(cfg.system_prompt)
    assert text == SYSTEM_PROMPTS["intern_vl"] and "InternVL" in text
    assert system_prompt("none") is None and system_prompt("Be brief.") == "Be brief."
    turns = messages(1, "Describe this image.", "A face.", system=text)
    assert [t["role"] for t in turns] == ["system", "user", "assistant"]
    assert [t["role"] for t in messages(1, "Describe this image.")] == ["user"]


def test_system_turn_reaches_the_training_tokens_and_labels_stay_on_the_answer(tmp_path):
    from PIL import Image

    from facelm.models.hf_inputs import IGNORE_INDEX, encode_examples
    from facelm.models.hf_processor import load_processor
    from facelm.models.hf_tiny import build_tiny_internvl
    proc = load_processor(str(build_tiny_internvl(tmp_path / "tiny")))
    item = [([Image.new("RGB", (56, 56))], QA_QUESTIONS["general"], "A face.")]
    plain = encode_examples(proc, item)
    with_system = encode_examples(proc, item, system="Be brief.")
    text = proc.tokenizer.decode(with_system["input_ids"][0])
    assert text.startswith("<|im_start|>system\nBe brief.<|im_end|>")
    answer = lambda b: b["input_ids"][0][b["labels"][0] != IGNORE_INDEX].tolist()  # noqa: E731
    assert answer(plain) == answer(with_system)
