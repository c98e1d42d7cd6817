"""FaceXBench-format benchmarks: loader (real files and bad ones), FaceXBench's prompt, the local
benchmark, and the runner end to end with the evidence model on real photos."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import pytest

from facelm.cli import main
from facelm.errors import InputFormatError
from facelm.eval.make_mcq import MakeMCQConfig, make_mcq
from facelm.eval.mcq import build_prompt, load_benchmark, load_task
from facelm.eval.mcq_report import summarise
from facelm.eval.mcq_run import MCQConfig, run_mcq
from facelm.models import FaceVLM, load_model


@pytest.fixture(scope="module")
def local_bench(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("bench")
    make_mcq(MakeMCQConfig(data=str(data_dir), out=str(out), per_file=3, seed=0))
    return out


@pytest.fixture(scope="module")
def evidence() -> FaceVLM:
    """One instance for the module: its analysis cache serves repeated photos."""
    return load_model("evidence")


@pytest.fixture(scope="module")
def mcq_run(local_bench: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    assert main(["eval", "mcq", "--bench", str(local_bench), "--model", "evidence",
                 "--out", str(out), "--quiet"]) == 0
    return out


# ---- loader ------------------------------------------------------------------------------------

def test_real_facexbench_files_load(data_dir: Path) -> None:
    tasks = {t.file: t for t in load_benchmark(data_dir / "facexbench-format")}
    counts = {f: len(t.questions) for f, t in tasks.items()}
    assert counts == {"lfw_multiple_mcq.json": 60, "rafdb_single_mcq_train.json": 100,
                      "tools_retrieval.json": 100, "utkface_multiple_mcq_age_test.json": 150,
                      "utkface_single_mcq_gender_test.json": 50}
    assert tasks["lfw_multiple_mcq.json"].task == "Face Recognition"
    assert tasks["rafdb_single_mcq_train.json"].task == "Face Analysis"
    # the one known quirk (q12: letter C, answer text of D) is reported, and the letter is kept
    quirks = tasks["tools_retrieval.json"].warnings
    assert len(quirks) == 1 and quirks[0].startswith("question 12:")
    assert tasks["tools_retrieval.json"].questions[11].correct == "C"


def test_prompt_is_assembled_as_facexbench_does(data_dir: Path) -> None:
    task = load_task(data_dir / "facexbench-format" / "utkface_single_mcq_gender_test.json")
    q = task.questions[0]
    post = "Please answer the question and provide only the correct option letter, e.g., A, B, C, D."
    assert build_prompt(task, q) == ("Identify the gender of the person in this image.\n" + post + "\n"
                                     "(A) Both\n(B) Female\n(C) None of the above\n(D) Male\n")
    assert build_prompt(task, q, prepend=True).startswith(task.prepend_text + "\nIdentify the gender")
    tools = load_task(data_dir / "facexbench-format" / "tools_retrieval.json")
    assert build_prompt(tools, tools.questions[0]).startswith("Ignore the black image provided.")
    assert q.image_paths[0].endswith("facexbench-format/images/utkface_single_mcq_gender_test/question_1.png")


def _write(path: Path, doc: Any) -> Path:
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    return path


GOOD_Q = {"image_paths": ["a.png"], "question_text": "Q?", "options": ["x", "y", "z", "w"],
          "correct_answer_option": "B", "answer": "y"}


@pytest.mark.parametrize("doc,message", [
    ('{"category": "x", "questions": {', "not valid JSON (line 1"),
    ([1, 2], "top level must be an object"),
    ({"category": "x", "questions": {"1": GOOD_Q}}, "missing key(s) sub-category"),
    ({"category": "x", "sub-category": "y", "questions": {}}, "non-empty object"),
    ({"category": "x", "sub-category": "y", "questions": {"7": {**GOOD_Q, "correct_answer_option": "E"}}},
     "question '7': correct_answer_option 'E' is not one of A, B, C, D"),
    ({"category": "x", "sub-category": "y", "questions": {"3": {**GOOD_Q, "options": "x,y"}}},
     "question '3': options must be a list"),
    ({"category": "x", "sub-category": "y", "questions": {"2": {"question_text": "Q"}}},
     "question '2': missing key(s) image_paths, options, correct_answer_option"),
])
def test_loader_errors_name_the_file_and_question(tmp_path: Path, doc: Any, message: str) -> None:
    path = _write(tmp_path / "bad.json", doc)
    with pytest.raises(InputFormatError) as err:
        load_benchmark(tmp_path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_loader_errors_for_missing_and_empty_folders(tmp_path: Path) -> None:
    with pytest.raises(InputFormatError, match="does not exist"):
        load_benchmark(tmp_path / "nope")
    with pytest.raises(InputFormatError, match="holds no .json question files"):
        load_benchmark(tmp_path)


# ---- the local benchmark -----------------------------------------------------------------------

def test_make_mcq_is_seeded_and_valid(local_bench: Path, data_dir: Path, tmp_path: Path) -> None:
    again = make_mcq(MakeMCQConfig(data=str(data_dir), out=str(tmp_path / "a"), per_file=3, seed=0))
    other = make_mcq(MakeMCQConfig(data=str(data_dir), out=str(tmp_path / "b"), per_file=3, seed=1))
    for f in again:  # same seed, same files (image paths differ only by the output folder)
        mine = json.loads((local_bench / f.name).read_text())
        assert [q["options"] for q in mine["questions"].values()] == \
               [q["options"] for q in json.loads(f.read_text())["questions"].values()]
    assert [f.read_text() for f in other] != [f.read_text() for f in again]
    tasks = load_benchmark(local_bench)
    assert {t.sub_category for t in tasks} == {"age", "gender", "race", "expression", "hr_fr"}
    for t in tasks:
        assert not t.warnings and t.postpend_text.startswith("Please answer the question")
        for q in t.questions:
            assert len(q.options) == 4 == len(set(q.options))
            assert q.options["ABCD".index(q.correct)] == q.answer
            assert all(Path(p).is_file() for p in q.image_paths), q.image_paths
    # expression questions only on identities the expression head was not fitted on
    from facelm.faces.expression_head import identity_split
    expr = next(t for t in tasks if t.sub_category == "expression")
    assert {identity_split(Path(p).parent.name) for q in expr.questions for p in q.image_paths} == {"test"}


def test_make_mcq_refuses_more_questions_than_data(data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InputFormatError, match="--per-file 501 asks for more questions than there are "
                                               "same-person LFW View 1 test pairs"):
        make_mcq(MakeMCQConfig(data=str(data_dir), out=str(tmp_path), per_file=501))
    assert main(["eval", "make-mcq", "--out", str(tmp_path), "--data", str(tmp_path / "nope")]) == 2


# ---- runner --------------------------------------------------------------------------------------

def test_end_to_end_with_the_evidence_model(mcq_run: Path) -> None:
    for name in ("report.md", "results.json", "config.json", "predictions.jsonl", "bar.png", "radar.png"):
        assert (mcq_run / name).is_file(), name
    res = json.loads((mcq_run / "results.json").read_text())
    o = res["overall"]
    assert o["questions"] == 18 and o["errors"] == 0
    # race is read by the race head now: scored like every other measured kind
    assert res["sub_tasks"]["race"]["unparsed"] == 0
    assert res["sub_tasks"]["race"]["modes"] == {"loglik": 3, "generate": 0}
    # measured kinds are answered from measurements: well above chance on real photos
    assert sum(r["correct"] for r in res["sub_tasks"].values()) >= 11
    assert res["sub_tasks"]["hr_fr"]["correct"] == 3
    md = (mcq_run / "report.md").read_text()
    assert "| Models | Overall | Bias & Fairness | Face Recognition |" in md
    assert json.loads((mcq_run / "config.json").read_text())["mcq"]["model"] == "evidence"


def test_rerun_resumes_without_answering_again(mcq_run: Path, local_bench: Path) -> None:
    before = (mcq_run / "predictions.jsonl").read_text()
    assert main(["eval", "mcq", "--bench", str(local_bench), "--out", str(mcq_run), "--quiet",
                 "--no-plots"]) == 0
    assert (mcq_run / "predictions.jsonl").read_text() == before
    with pytest.raises(InputFormatError, match="different mode"):
        run_mcq(None, load_benchmark(local_bench), MCQConfig(bench=str(local_bench), mode="generate"),
                mcq_run, progress=False)


class ScriptedModel(FaceVLM):
    """Answers from a script; fails on one question; cannot score options."""
    name = "scripted"

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.batch_sizes: list[int] = []

    def generate_batch(self, items: Sequence[Any], **gen: Any) -> list[str]:
        self.batch_sizes.append(len(items))
        return super().generate_batch(items, **gen)

    def generate(self, images: Sequence[Any], prompt: str, **gen: Any) -> str:
        question = prompt.splitlines()[0]
        if question == "boom":
            raise RuntimeError("model crashed")
        return self.answers[question]


@pytest.mark.parametrize("batch_size", [1, 2])
def test_generation_mode_counts_unparsed_and_failures(tmp_path: Path, portrait_path: Path,
                                                      batch_size: int) -> None:
    qs = {str(i): {"image_paths": [str(portrait_path)], "question_text": text,
                   "options": ["Female", "Male", "Both", "None of the above"], "correct_answer_option": "B"}
          for i, text in enumerate(["q1", "q2", "q3", "boom"], 1)}
    qs["5"] = {**qs["1"], "image_paths": ["missing.png"]}
    (tmp_path / "b").mkdir()
    _write(tmp_path / "b" / "t.json", {"category": "bias_fairness", "sub-category": "gender",
                                        "num_images": "single", "questions": qs})
    model = ScriptedModel({"q1": "A man with short hair.", "q2": "The answer is B.", "q3": "(A)"})
    cfg = MCQConfig(bench="b", mode="generate", batch_size=batch_size)
    recs = run_mcq(model, load_benchmark(tmp_path / "b"), cfg, tmp_path / "r", progress=False)
    # batches of two: (q1, q2) answered together; (q3, boom) fails as a batch and is retried alone
    assert model.batch_sizes == ([] if batch_size == 1 else [2, 2])
    by_id = {r["id"]: r for r in recs}
    assert by_id["1"]["pred"] is None and by_id["2"]["is_correct"] and by_id["3"]["pred"] == "A"
    assert "model crashed" in by_id["4"]["error"]
    assert by_id["5"]["error"].startswith("image missing: ") and "/b/missing.png;" in by_id["5"]["error"]
    o = summarise(recs)["overall"]
    assert (o["questions"], o["correct"], o["unparsed"], o["errors"]) == (5, 1, 1, 2)
    assert o["accuracy"] == pytest.approx(20.0)


def test_missing_images_are_reported_per_question(data_dir: Path, tmp_path: Path) -> None:
    tasks = load_benchmark(data_dir / "facexbench-format" / "utkface_single_mcq_gender_test.json")
    recs = run_mcq(load_model("evidence"), tasks, MCQConfig(bench="x", limit=4), tmp_path, progress=False)
    assert len(recs) == 4 and all("image missing" in r["error"] for r in recs)


def test_evidence_model_is_honest_and_answers_free_questions(portrait_path: Path, lfw_dir: Path) -> None:
    m = load_model("evidence")
    tools = "Which tool should be used to find the person's name?\n(A) OCR\n(B) Search engine\n"
    with pytest.raises(NotImplementedError, match="no measurement"):
        m.score_choices([portrait_path], tools, ["OCR", "Search engine"])
    assert "I cannot choose an option" in m.generate([portrait_path], tools)
    race = "What is the race?\n(A) White\n(B) Black\n(C) Asian\n(D) Indian\n"
    scores = m.score_choices([portrait_path], race, ["White", "Black", "Asian", "Indian"])
    assert sum(math.exp(x) for x in scores) <= 1.0 + 1e-9 and max(scores) > math.log(0.25)
    assert "[race:" in m.generate([portrait_path], race)
    assert "°" in m.generate([portrait_path], "Describe the pose of the face.")
    other = lfw_dir / "images" / "Aaron_Peirsol" / "Aaron_Peirsol_0002.jpg"
    assert "same person" in m.generate([portrait_path, other], "Are these the same person?").lower()


def test_evidence_model_analyses_each_array_once_per_ask(portrait_path: Path, lfw_dir: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The server and CLI `ask` several questions about the same decoded photos: one analysis per
    photo, not one per question, and the same answers as asking one at a time."""
    import facelm.api
    from facelm.data.schema import PAIR_QUESTIONS, QA_QUESTIONS
    from facelm.imageio import load_rgb
    calls: list[int] = []
    real = facelm.api.analyze
    monkeypatch.setattr(facelm.api, "analyze", lambda im, **kw: (calls.append(1), real(im, **kw))[1])
    m = load_model("evidence")
    face = load_rgb(portrait_path)
    answers = m.ask([face], QA_QUESTIONS)
    assert len(calls) == 1 and len(answers) == len(QA_QUESTIONS) == 8
    assert answers["pose"] == m.generate([face], QA_QUESTIONS["pose"])  # the same text
    other = load_rgb(lfw_dir / "images" / "Aaron_Peirsol" / "Aaron_Peirsol_0002.jpg")
    calls.clear()
    tiers = m.ask([face, other], PAIR_QUESTIONS)
    assert len(calls) == 2 and set(tiers) == set(PAIR_QUESTIONS)


def test_age_groups_as_facexbench_writes_them(portrait_path: Path) -> None:
    from facelm.models.evidence_mcq import AGE_BINS, p_age_in, parse_age_bin
    assert parse_age_bin("20-29") == (20, 30) and parse_age_bin("50-60") == (50, 60)
    assert parse_age_bin("0-2") == (0, 3) and parse_age_bin("more than 70") == (70, float("inf"))
    assert parse_age_bin("Image 2") is None
    a = load_model("evidence").analyse(portrait_path)
    assert sum(p_age_in(a, lo, hi) for lo, hi in AGE_BINS) == pytest.approx(1.0, abs=1e-6)


def test_evidence_free_question_picks_the_aspect(portrait_path: Path) -> None:
    from facelm.explain import describe_face
    m = load_model("evidence")
    a = m.analyse(portrait_path)
    # "image" must not read as "age": a general question gets the general description
    assert m.generate([portrait_path], "Describe this image.") == describe_face(a, "general")
    assert m.generate([portrait_path], "Describe the skin texture of the image based on the visual "
                      "information.") == describe_face(a, "skin_texture")


def test_generation_and_loglik_agree_for_the_evidence_model(local_bench: Path, tmp_path: Path) -> None:
    # the evidence model's written answers go through extract_choice: same picks as its scores
    model, tasks = load_model("evidence"), load_benchmark(local_bench)
    gen = run_mcq(model, tasks, MCQConfig(bench="b", mode="generate"), tmp_path / "g", progress=False)
    ll = run_mcq(model, tasks, MCQConfig(bench="b", mode="loglik"), tmp_path / "l", progress=False)
    assert all(r["mode"] == "generate" for r in gen)
    assert [r["pred"] for r in gen] == [r["pred"] for r in ll]
    assert sum(r["pred"] is not None for r in gen) == 18   # every question, race included


@pytest.mark.parametrize("question,options,expected", [
    ("Which two images show the same person?",
     ["Images 1 and 3", "Images 2 and 4", "Images 3 and 4", "Images 1 and 4"], "B"),
    ("How many pairs of images show the same person?", ["2", "3", "0", "1"], "D"),
    ("How many unique identities are present in these images?", ["2", "3", "4", "1"], "B"),
    ("There are two images of the same person. Which images are of people different from that person?",
     ["Image 2 and Image 4", "Image 1", "Image 1 and Image 3", "Image 1 and Image 2 and Image 3"], "C"),
    ("The first image is of a person A. The same person A is present in which of the other images?",
     ["Image 2", "Image 3", "Image 4", "None of the above"], "D"),
])
def test_evidence_model_on_facexbench_identity_questions(lfw_dir: Path, evidence: FaceVLM, question: str,
                                                         options: list[str], expected: str) -> None:
    # photos 2 and 4 show Aaron Peirsol; 1 and 3 two other people
    names = ("AJ_Cook/AJ_Cook_0001.jpg", "Aaron_Peirsol/Aaron_Peirsol_0001.jpg", "AJ_Lamas/AJ_Lamas_0001.jpg",
             "Aaron_Peirsol/Aaron_Peirsol_0002.jpg")
    imgs = [lfw_dir / "images" / p for p in names]
    prompt = question + "\n" + "".join(f"({'ABCD'[i]}) {o}\n" for i, o in enumerate(options))
    scores = evidence.score_choices(imgs, prompt, options)
    assert "ABCD"[scores.index(max(scores))] == expected



def test_evidence_model_answers_each_student_question_with_its_aspect():
    """The stored QA questions (facelm.data.schema) select their own aspect; "image" is no "age"."""
    from facelm.data.schema import QA_QUESTIONS
    from facelm.models.evidence import _aspect_for
    assert {a: _aspect_for(q) for a, q in QA_QUESTIONS.items()} == {a: a for a in QA_QUESTIONS}
    assert _aspect_for("What is the head pose in this image?") == "pose"
