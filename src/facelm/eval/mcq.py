"""FaceXBench-format multiple-choice benchmarks: loading, validation and prompt assembly.

A benchmark is a folder of JSON files (or one file), one per sub-task, in FaceXBench's layout
(see docs/eval.md): `category`, `sub-category`, `dataset`, `num_images`, `prepend_text`,
`postpend_text`, optional `context`, and `questions: {id: {image_paths, question_text, options,
correct_answer_option, answer}}`. Image paths are relative to the JSON file's folder (FaceXBench's
`benchmark/`) unless absolute, or to `images_root` when one is given.

The runner is in mcq_run.py, the reports in mcq_report.py.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputFormatError

LETTERS = "ABCDEFGHIJ"
TOP_KEYS = ("category", "sub-category", "questions")
QUESTION_KEYS = ("image_paths", "question_text", "options", "correct_answer_option")

# The FaceLLM paper's Table 4 columns are FaceXBench's six task groups, and each FaceXBench file
# names its group in its JSON `category`; the headline row follows that field (so headpose, whose
# files say `face_localization`, is under Face Localization, as FaceXBench's own scoring has it).
CATEGORY_TASKS = {
    "bias_fairness": "Bias & Fairness", "face_recognition": "Face Recognition",
    "fas_deepfakes": "Face Authentication", "attributes_expression": "Face Analysis",
    "face_localization": "Face Localization", "tools_use": "Face Tools Use",
}
# Sub-task titles, and the group of a sub-category whose file has a category not listed above.
TASKS: dict[str, tuple[str, str]] = {   # sub-category -> (task column, sub-task title)
    "age": ("Bias & Fairness", "Age Estimation"),
    "gender": ("Bias & Fairness", "Gender Prediction"),
    "race": ("Bias & Fairness", "Race Estimation"),
    "hr_fr": ("Face Recognition", "HR Face Recognition"),
    "lr_fr": ("Face Recognition", "LR Face Recognition"),
    "celebrity_identification": ("Face Recognition", "Celebrity Identification"),
    "fas": ("Face Authentication", "Face Anti-spoofing"),
    "deepfakes": ("Face Authentication", "Deepfake Detection"),
    "attributes": ("Face Analysis", "Attributes Prediction"),
    "expression": ("Face Analysis", "Expression Recognition"),
    "headpose": ("Face Localization", "Headpose Estimation"),
    "crowd_counting": ("Face Localization", "Crowd Counting"),
    "segmentation": ("Face Localization", "Face Parsing"),
    "tools_retrieval": ("Face Tools Use", "Face Tools Retrieval"),
}
TASK_ORDER = ("Bias & Fairness", "Face Recognition", "Face Authentication", "Face Analysis",
              "Face Localization", "Face Tools Use")


@dataclass(frozen=True)
class Question:
    id: str
    image_paths: tuple[str, ...]     # resolved paths
    question_text: str
    options: tuple[str, ...]
    correct: str                     # "A".."D"
    answer: str = ""                 # the correct option's text as the file states it


@dataclass(frozen=True)
class Task:
    """One FaceXBench JSON file: a sub-task with its questions."""
    file: str                        # file name, e.g. "utkface_single_mcq_gender_test.json"
    category: str
    sub_category: str
    dataset: str
    num_images: str                  # "single" | "multiple" | "zero"
    prepend_text: str
    postpend_text: str
    context: str
    questions: tuple[Question, ...] = field(repr=False)
    warnings: tuple[str, ...] = ()   # quirks kept as they are (e.g. answer text != letter)
    source: str = ""                 # the JSON file's path (FaceXBench's results layout copies it)

    @property
    def task(self) -> str:
        """The paper's task column: the file's JSON `category`, else its sub-category's group."""
        return CATEGORY_TASKS.get(self.category) or TASKS.get(self.sub_category,
                                                               (self.category, ""))[0]

    @property
    def title(self) -> str:
        return TASKS.get(self.sub_category, ("", self.sub_category))[1] or self.sub_category


def build_prompt(task: Task, q: Question, *, prepend: bool = False) -> str:
    """The prompt exactly as FaceXBench's evaluate.py assembles it: tool context (tools_use only),
    the task description (only with --prepend_text, off by default there too), the question, the
    answer-format instruction, then the options as "(A) ..." lines."""
    text = ""
    if task.category == "tools_use" and task.context:
        text += task.context + "\n"
    if prepend and task.prepend_text:
        text += task.prepend_text + "\n"
    text += q.question_text + "\n"
    if task.postpend_text:
        text += task.postpend_text + "\n"
    for i, option in enumerate(q.options[: len(LETTERS)]):
        text += f"({LETTERS[i]}) {option}\n"
    return text


def _bad(msg: str, item: str, hint: str = "fix the file, or move it out of the benchmark folder") -> InputFormatError:
    return InputFormatError(msg, item=item, hint=hint)


def _require(raw: dict, keys: tuple[str, ...], item: str, hint: str) -> None:
    missing = [k for k in keys if k not in raw]
    if missing:
        raise _bad(f"missing key(s) {', '.join(missing)}", item, hint)


def _question(qid: str, raw: Any, where: str, base: Path) -> tuple[Question, str | None]:
    item = f"{where} question {qid!r}"
    if not isinstance(raw, dict):
        raise _bad("is not an object", item)
    _require(raw, QUESTION_KEYS, item,
             "each question needs image_paths, question_text, options, correct_answer_option")
    opts, paths = raw["options"], raw["image_paths"]
    if not isinstance(opts, list) or len(opts) < 2 or not all(isinstance(o, (str, int, float)) for o in opts):
        raise _bad(f"options must be a list of at least 2 strings, got {opts!r}", item)
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise _bad(f"image_paths must be a list of strings, got {paths!r}", item)
    letter = str(raw["correct_answer_option"]).strip().upper()
    if len(letter) != 1 or letter not in LETTERS[: len(opts)]:
        raise _bad(f"correct_answer_option {raw['correct_answer_option']!r} is not one of "
                   f"{', '.join(LETTERS[: len(opts)])}", item)
    options = tuple(str(o) for o in opts)
    answer = str(raw.get("answer", ""))
    quirk = None
    if answer and answer.strip() != options[LETTERS.index(letter)].strip():
        quirk = f"question {qid}: answer text is not option {letter}'s text; the letter is scored"
    resolved = tuple(os.path.normpath(p if Path(p).is_absolute() else base / p) for p in paths)
    return Question(id=str(qid), image_paths=resolved, question_text=str(raw["question_text"]),
                    options=options, correct=letter, answer=answer), quirk


def load_task(path: Path, images_root: Path | None = None) -> Task:
    """One FaceXBench JSON file; raises InputFormatError naming the file, question and fix."""
    item = str(path)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise _bad(f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})", item) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise _bad(f"cannot read it ({exc})", item) from exc
    if not isinstance(data, dict):
        raise _bad("the top level must be an object with category, sub-category and questions", item)
    _require(data, TOP_KEYS, item,
             "a FaceXBench file has category, sub-category, num_images, questions, ...")
    raw_qs = data["questions"]
    if not isinstance(raw_qs, dict) or not raw_qs:
        raise _bad("questions must be a non-empty object {id: question}", item)
    base = Path(images_root) if images_root is not None else Path(path).parent
    questions, quirks = [], []
    for qid, raw in raw_qs.items():
        q, quirk = _question(qid, raw, str(path), base)
        questions.append(q)
        if quirk:
            quirks.append(quirk)
    return Task(file=Path(path).name, category=str(data["category"]),
                sub_category=str(data["sub-category"]), dataset=str(data.get("dataset", "")),
                num_images=str(data.get("num_images", "unknown")),
                prepend_text=str(data.get("prepend_text", "")),
                postpend_text=str(data.get("postpend_text", "")),
                context=str(data.get("context", "")), questions=tuple(questions),
                warnings=tuple(quirks), source=str(path))


def load_benchmark(path: Path, images_root: Path | None = None) -> list[Task]:
    """All tasks of a benchmark folder (every *.json, sorted by name) or of one JSON file."""
    path = Path(path)
    if not path.exists():
        raise InputFormatError("does not exist", item=str(path),
                               hint="give a folder of FaceXBench JSON files, e.g. one written by "
                                    "`facelm eval make-mcq --out DIR`")
    files = [path] if path.is_file() else sorted(p for p in path.glob("*.json")
                                                 if p.name not in ("config.json", "results.json"))
    if not files:
        raise InputFormatError("holds no .json question files", item=str(path),
                               hint="point --bench at the folder with FaceXBench's JSON files")
    return [load_task(f, images_root) for f in files]
