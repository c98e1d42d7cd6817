"""LoRA fine-tuning of Hugging Face VLMs (issue 5), on tiny models built from config (no download)
and real UTKFace photos from ../shared/data."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch  # the test setup (scripts/setup.sh --test) installs the training extras

from facelm.cli import main  # noqa: E402
from facelm.csvio import read_csv  # noqa: E402
from facelm.data.schema import PAIR_QUESTIONS, QA_QUESTIONS, Record  # noqa: E402
from facelm.errors import FaceLMError, InputFormatError, ModelNotInstalledError  # noqa: E402
from facelm.models.hf_inputs import IGNORE_INDEX, answer_text, encode_examples  # noqa: E402
from facelm.models.hf_tiny import TINY_BUILDERS  # noqa: E402
from facelm.models.hf_vlm import family_of, load, load_base, submodule  # noqa: E402
from facelm.train.vlm import train  # noqa: E402
from facelm.train.vlm_config import make_config  # noqa: E402
from facelm.train.vlm_lora import apply_lora, trainable_names  # noqa: E402

FAMILIES = sorted(TINY_BUILDERS)


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bases")
    return {fam: TINY_BUILDERS[fam](root / fam) for fam in FAMILIES}


@pytest.fixture(scope="module")
def faces(utk_dir) -> list[dict]:
    rows = read_csv(utk_dir / "labels.csv")[1][:10]
    return [{**r, "path": str(utk_dir / r["file"])} for r in rows]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, faces) -> Path:
    """QA records about real faces (answers from their labels) and one two-image pair record."""
    folder = tmp_path_factory.mktemp("data")
    recs = [Record(id=f"qa{i}", kind="qa", images=(f["path"],), question=QA_QUESTIONS["demographics"],
                   answer=f"A {f['gender']} person of about {f['age']} years.", aspect="demographics")
            for i, f in enumerate(faces[:7])]
    recs.append(Record(id="pair0", kind="pair", images=(faces[0]["path"], faces[1]["path"]),
                       question=PAIR_QUESTIONS["concise"], answer="No, two different people.",
                       tier="concise", same=False))
    (folder / "records.jsonl").write_text("".join(json.dumps(r.to_dict()) + "\n" for r in recs))
    return folder


def _config(base: Path, data: Path, out: Path, **over):
    values = dict(lr=2e-3, max_steps=4, batch_size=2, grad_accum=1, gradient_checkpointing=False)
    return make_config(str(base), str(data), str(out), "released", **{**values, **over})


@pytest.mark.parametrize("family", FAMILIES)
def test_forward_generate_and_score_one_and_two_images(bases, faces, family):
    vlm = load(bases[family], device="cpu")
    one = vlm.generate([faces[0]["path"]], QA_QUESTIONS["general"], max_new_tokens=4)
    two = vlm.generate_batch([([faces[0]["path"]], "Describe this image."),
                              ([faces[0]["path"], faces[1]["path"]], PAIR_QUESTIONS["concise"])],
                             max_new_tokens=4)
    assert isinstance(one, str) and len(two) == 2 and all(isinstance(t, str) for t in two)
    scores = vlm.score_choices([faces[0]["path"]], "Gender?", ["male", "female", "a child"])
    assert len(scores) == 3 and all(s < 0 for s in scores)
    # scoring is the model's own likelihood: "a child" has more tokens, so it is less likely
    assert len(set(round(s, 4) for s in scores)) == 3


@pytest.mark.parametrize("family", FAMILIES)
def test_labels_cover_answer_tokens_only(bases, faces, family):
    from PIL import Image
    vlm = load(bases[family], device="cpu")
    proc = vlm.processor
    imgs = [Image.open(f["path"]).convert("RGB") for f in faces[:2]]
    items = [([imgs[0]], "Describe this image.", "A smiling man."),
             (imgs, PAIR_QUESTIONS["concise"], "No, they are two different people.")]
    batch = encode_examples(proc, items)
    assert batch["labels"].shape == batch["input_ids"].shape
    for i, (images, q, a) in enumerate(items):
        lab = batch["labels"][i]
        kept = lab[lab != IGNORE_INDEX]
        assert proc.tokenizer.decode(kept) == answer_text(proc, len(images), q, a)
        assert proc.tokenizer.decode(kept).lstrip().startswith(a)
        n = int(batch["attention_mask"][i].sum())
        start = n - len(kept)  # answers come right after the prompt, padding after them
        assert (lab[:start] == IGNORE_INDEX).all() and (lab[n:] == IGNORE_INDEX).all()
        assert (batch["input_ids"][i, start:n] == kept).all()
    out = vlm.model(**batch)  # one- and two-image samples in one batch
    assert torch.isfinite(out.loss)


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_only_on_language_model(bases, faces, family):
    from PIL import Image
    model, proc = load_base(str(bases[family]), dtype="float32", device="cpu")
    fam = family_of(model)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters()}
    # the vision tower has layers named like the LM's targets: they must not be adapted
    peft_model = apply_lora(model, _config(bases[family], Path("."), Path("."),
                                           lora_target="all-linear"))
    names = trainable_names(peft_model)
    assert names and all(f".{fam.language_model}." in n and ".lora_" in n for n in names)
    for path in fam.vision:
        assert not any("lora_" in n for n, _ in submodule(model, path).named_parameters())
    lm_leaves = {n.rsplit(".", 1)[-1] for n, _ in submodule(model, fam.language_model).named_modules()}
    assert {"q_proj", "down_proj"} <= lm_leaves
    # a real optimizer step moves LoRA weights and nothing of the base (vision, projector, LM)
    img = Image.open(faces[0]["path"]).convert("RGB")
    batch = encode_examples(proc, [([img], "Describe this image.", "A young man.")])
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    peft_model(**batch).loss.backward()
    opt.step()
    after = dict(peft_model.get_base_model().named_parameters())
    moved = [n for n, p in after.items() if "lora_" in n and "lora_B" in n and p.abs().max() > 0]
    assert moved
    base_after = {n.replace(".base_layer", ""): p for n, p in after.items() if "lora_" not in n}
    assert base_after.keys() == frozen.keys()
    assert all(torch.equal(frozen[n], base_after[n]) for n in frozen)


def test_training_leaves_vision_untouched_and_exports(bases, dataset, tmp_path):
    from safetensors.torch import load_file
    out, merged = tmp_path / "run", tmp_path / "merged"
    assert main(["train", "vlm", "--base", str(bases["internvl"]), "--data", str(dataset),
                 "--out", str(out), "--preset", "released", "--lr", "5e-3", "--max-steps", "3",
                 "--grad-accum", "1", "--quiet"]) == 0
    for f in ("adapter/adapter_config.json", "vlm_train_config.json", "loss_curve.png",
              "trainer_state.json", "adapter/vlm_train_config.json"):
        assert (out / f).is_file(), f
    keys = load_file(out / "adapter" / "adapter_model.safetensors").keys()
    assert keys and all(".language_model." in k and "lora_" in k for k in keys)
    assert main(["train", "merge", "--adapter", str(out), "--out", str(merged)]) == 0
    report = json.loads((merged / "facelm_export.json").read_text())
    assert report["max_abs_diff"] < 1e-4 and report["adapter_effect"] > 1e-3
    # the merged folder is a plain model: same vision weights as the base, changed LM weights
    from transformers import AutoModelForImageTextToText
    plain = AutoModelForImageTextToText.from_pretrained(merged)
    base, _ = load_base(str(bases["internvl"]), dtype="float32", device="cpu")
    b, m = base.state_dict(), plain.state_dict()
    vision = [k for k in b if k.startswith(("model.vision_tower.", "model.multi_modal_projector."))]
    assert vision and all(torch.equal(b[k], m[k]) for k in vision)
    q = "model.language_model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(b[q], m[q])
    # base + adapter through facelm (adapter folder given as the model) = merged model
    adapted = load(out / "adapter", device="cpu")
    from facelm.train.vlm_export import probe_batch
    probe = probe_batch(adapted.processor)
    with torch.no_grad():
        diff = (adapted.model(**probe).logits - plain(**probe).logits).abs().max()
    assert diff < 1e-4


def test_resume_continues_the_same_run(bases, dataset, tmp_path):
    whole = train(_config(bases["qwen2_vl"], dataset, tmp_path / "a", save_every=2), progress=False)
    cfg = _config(bases["qwen2_vl"], dataset, tmp_path / "b", save_every=2)
    part = train(cfg, stop_after=2, progress=False)
    assert part.steps == 2 and (tmp_path / "b" / "checkpoints" / "step-000002").is_dir()
    with pytest.raises(FaceLMError, match="--resume"):
        train(cfg, progress=False)
    rest = train(cfg, resume=True, progress=False)
    assert rest.steps == whole.steps == 4
    assert rest.losses == pytest.approx(whole.losses, rel=1e-5)
    assert len(set(whole.losses)) > 1  # the steps really differ (different batches, moving weights)
    from safetensors.torch import load_file
    wa = load_file(tmp_path / "a" / "adapter" / "adapter_model.safetensors")
    wb = load_file(tmp_path / "b" / "adapter" / "adapter_model.safetensors")
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)
    changed = make_config(cfg.base, cfg.data, cfg.out, "released", lr=1e-4, max_steps=4)
    with pytest.raises(FaceLMError, match="different config"):
        train(changed, resume=True, progress=False)


def _hub_layout(src: Path, dst: Path) -> Path:
    """The files of a real InternVL3-*-hf folder: a torchvision-backed image processor, a video
    processor config and a bare processor_config.json."""
    shutil.copytree(src, dst)
    inner = json.loads((dst / "processor_config.json").read_text())
    image = {**inner["image_processor"], "image_processor_type": "GotOcr2ImageProcessorFast",
             "processor_class": "InternVLProcessor"}
    (dst / "preprocessor_config.json").write_text(json.dumps(image))
    (dst / "processor_config.json").write_text(json.dumps(
        {"image_seq_length": inner["image_seq_length"], "processor_class": "InternVLProcessor"}))
    video = {k: image[k] for k in ("image_mean", "image_std", "size", "do_normalize", "do_rescale")}
    (dst / "video_preprocessor_config.json").write_text(json.dumps(
        {**video, "video_processor_type": "InternVLVideoProcessor",
         "processor_class": "InternVLProcessor"}))
    return dst


def test_hub_layout_internvl_loads_without_torchvision(bases, faces, tmp_path):
    from transformers.utils import is_torchvision_available
    from transformers import AutoProcessor
    folder = _hub_layout(bases["internvl"], tmp_path / "InternVL3-tiny-hf")
    if not is_torchvision_available():  # the failure facelm works around
        with pytest.raises(ImportError, match="(?i)torchvision"):
            AutoProcessor.from_pretrained(folder)
    vlm = load(folder, device="cpu")
    proc = vlm.processor
    assert type(proc).__name__ == "InternVLProcessor"
    if not is_torchvision_available():
        assert type(proc.image_processor).__name__ == "GotOcr2ImageProcessorPil"
        assert not hasattr(proc, "video_processor")
    assert proc.image_seq_length == json.loads((folder / "processor_config.json").read_text())[
        "image_seq_length"]
    assert isinstance(vlm.generate([faces[0]["path"]], "Describe this image.", max_new_tokens=3), str)
    from facelm.models import load_model  # the shared registry routes folders to this wrapper
    assert type(load_model(str(folder), device="cpu")).__name__ == "HFVLM"


def test_bad_inputs_name_the_item(bases, dataset, tmp_path):
    with pytest.raises(ModelNotInstalledError, match="no-such-folder"):
        load(tmp_path / "no-such-folder")
    bad = tmp_path / "bad"
    bad.mkdir()
    rec = Record(id="r1", kind="qa", images=("missing.jpg",), question="Describe this image.",
                 answer="A face.")
    (bad / "records.jsonl").write_text(json.dumps(rec.to_dict()) + "\n")
    with pytest.raises(InputFormatError, match="record r1"):
        train(_config(bases["internvl"], bad, tmp_path / "o"), progress=False)
    assert main(["train", "vlm", "--base", str(bases["internvl"]), "--data", str(dataset)]) == 2
    with pytest.raises(InputFormatError, match="cutoff"):
        train(_config(bases["internvl"], dataset, tmp_path / "c", cutoff=8), progress=False)
    with pytest.raises(InputFormatError, match="one optimizer step takes 12"):
        train(_config(bases["internvl"], dataset, tmp_path / "d", grad_accum=6), progress=False)


@pytest.mark.gpu
def test_bf16_training_step_on_gpu(bases, dataset, tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    cfg = _config(bases["internvl"], dataset, tmp_path / "gpu", max_steps=2, precision="auto",
                  gradient_checkpointing=True)
    result = train(cfg, progress=False)
    assert result.steps == 2 and all(torch.isfinite(torch.tensor(result.losses)))
    if torch.cuda.is_bf16_supported():
        assert result.mixed_precision == "bf16"
    from safetensors.torch import load_file
    weights = load_file(tmp_path / "gpu" / "adapter" / "adapter_model.safetensors")
    lora_b = [v for k, v in weights.items() if "lora_B" in k]
    assert lora_b and any(v.abs().max() > 0 for v in lora_b)  # LoRA B starts at 0: it trained


def test_internvl_around_a_pretrained_lm_keeps_its_weights(tmp_path):
    """The benchmark's composition (real LM + vision from config), with a tiny Llama standing in
    for SmolLM2: on text alone the VLM reproduces the source LM's logits exactly."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from facelm.models.hf_compose import VisionSpec, build_internvl_on_lm
    from facelm.models.hf_tiny import CHAT_TOKENS, train_tokenizer
    tok = train_tokenizer({})
    torch.manual_seed(1)
    lm = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2,
                                      num_attention_heads=2, num_key_value_heads=1,
                                      intermediate_size=64, tie_word_embeddings=True))
    lm.save_pretrained(tmp_path / "lm")
    tok.save_pretrained(tmp_path / "lm")
    folder = build_internvl_on_lm(tmp_path / "vlm", tmp_path / "lm",
                                  vision=VisionSpec(image_size=56, hidden_size=32, layers=1, heads=2))
    vlm = load(folder, device="cpu")
    assert vlm.processor.image_seq_length == 4 and vlm.model.config.image_seq_length == 4
    ids = tok("Describe this image." + CHAT_TOKENS[2], return_tensors="pt")
    with torch.no_grad():
        want = lm(**ids).logits
        got = vlm.model(**ids).logits[..., : want.shape[-1]]
    assert torch.equal(want, got)


def test_two_processes_share_each_step(bases, dataset, tmp_path):
    """The same command under torchrun (2 CPU processes, gloo): each process takes half of every
    step's batch, and the run matches one process with the whole batch."""
    import os
    import subprocess
    import sys
    args = ["train", "vlm", "--base", str(bases["internvl"]), "--data", str(dataset), "--lr", "1e-2",
            "--max-steps", "2", "--no-gradient-checkpointing", "--quiet"]
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "-m", "facelm.cli", *args, "--out", str(tmp_path / "ddp"),
                          "--batch-size", "2"], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert main([*args, "--out", str(tmp_path / "one"), "--batch-size", "4"]) == 0
    ddp = json.loads((tmp_path / "ddp" / "trainer_state.json").read_text())["losses"]
    one = json.loads((tmp_path / "one" / "trainer_state.json").read_text())["losses"]
    # per-process means averaged vs one mean over all tokens: equal up to token-count weighting
    assert len(ddp) == len(one) == 2 and ddp == pytest.approx(one, rel=2e-3)
    assert ddp[1] != one[0]


def test_processes_split_every_step_without_overlap():
    from facelm.train.vlm_data import Schedule, micro_batches
    one = Schedule(n_examples=20, batch_size=4, grad_accum=2, world=1)
    two = Schedule(n_examples=20, batch_size=2, grad_accum=2, world=2)
    assert one.steps_per_epoch() == two.steps_per_epoch() == 2
    for step in range(4):  # two epochs: epoch 1 reshuffles
        whole = sorted(i for mb in micro_batches(one, step, 0, seed=3) for i in mb)
        parts = [i for rank in (0, 1) for mb in micro_batches(two, step, rank, seed=3) for i in mb]
        assert len(parts) == len(set(parts)) == 8 and sorted(parts) == whole
    epoch0 = [i for s in (0, 1) for mb in micro_batches(one, s, 0, seed=3) for i in mb]
    epoch1 = [i for s in (2, 3) for mb in micro_batches(one, s, 0, seed=3) for i in mb]
    assert epoch0 != epoch1 and len(set(epoch0)) == 16
