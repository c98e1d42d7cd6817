"""`facelm eval make-mcq`: a local FaceXBench-format benchmark from the labelled photos in
../shared/data, so the MCQ runner is exercised end to end on real faces without FaceXBench's images.

Files (same JSON layout and answer-format instruction as FaceXBench):
* utkface_single_mcq_age.json, utkface_multiple_mcq_age.json  (bias_fairness / age; UTKFace ages)
* utkface_single_mcq_gender.json                              (bias_fairness / gender)
* utkface_single_mcq_race.json                                (bias_fairness / race; White, Black,
  Asian, Indian: UTKFace's "Others" is not one group, so it is never the answer)
* lfw_single_mcq_expression.json                              (attributes_expression / expression;
  LFW expression labels of the identities the expression head never saw (its "test" split),
  classes drawn round-robin so rare ones appear)
* lfw_multiple_mcq.json                                       (face_recognition / hr_fr; LFW View 1
  *test* pairs only: the train pairs calibrated facelm's threshold)
Image paths are written relative to the output folder (so the runner finds them from the JSON
files), pointing into the data folder; no photo is copied. The same seed gives the same files.
"""
from __future__ import annotations

import json
import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from ..csvio import read_csv
from ..errors import InputFormatError
from ..schema_version import dumps as stamped_json
from .fairness import age_group_index

POSTPEND = "Please answer the question and provide only the correct option letter, e.g., A, B, C, D."
# FaceXBench's nine age groups by name, in the order of models.evidence_mcq.AGE_BINS (their bounds)
AGE_GROUPS = ("0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "more than 70")
PREPEND = {
    "age": "Age estimation involves predicting the age of a person based on their facial features in an "
           "image. For this task, we define the following age groups: 0-2, 3-9, 10-19, 20-29, 30-39, "
           "40-49, 50-59, 60-69, and more than 70 years. You have to perform the task of age estimation.",
    "gender": "Gender prediction involves determining the gender of a person based on their facial "
              "features in an image. You have to perform the task of gender prediction.",
    "race": "Race estimation involves predicting the racial group of a person based on their facial "
            "features in an image. You have to perform the task of race estimation.",
    "expression": "Facial expression recognition involves identifying the emotional state of a person "
                  "based on their facial expressions in an image. You have to perform the task of "
                  "facial expression recognition.",
    "hr_fr": "High-resolution face recognition involves identifying a person based on their facial "
             "features in images typically of good quality or resolution. You have to perform the "
             "task of high-resolution face recognition.",
}
EXPRESSION_NAMES = {"neutral": "Neutral", "happiness": "Happy", "surprise": "Surprise", "sadness": "Sad",
                    "anger": "Anger", "disgust": "Disgust", "fear": "Fear", "contempt": "Contempt"}
RACES = ("White", "Black", "Asian", "Indian")


@dataclass(frozen=True)
class MakeMCQConfig:
    data: str                 # the shared data folder (holds utkface-dev/ and lfw-view1/)
    out: str
    per_file: int = 50        # questions per JSON file
    seed: int = 0


def age_group(age: float) -> str:
    return AGE_GROUPS[age_group_index(age)]


def _read_csv(path: Path, need: tuple[str, ...]) -> list[dict[str, str]]:
    return read_csv(path, need, hint="pass --data pointing at the shared data folder (../shared/data)")[1]


class _Writer:
    """Collects the questions of one file with options shuffled by the seeded RNG."""

    def __init__(self, out: Path, data_root: Path, rng: random.Random) -> None:
        self.out, self.root, self.rng = out, data_root, rng
        self.questions: dict[str, dict[str, Any]] = {}

    def draw(self, pool: list[dict], n: int, what: str) -> list[dict]:
        """n distinct rows (one question each), or a clear error when the data has fewer."""
        if n > len(pool):
            raise InputFormatError(f"--per-file {n} asks for more questions than there are {what} "
                                   f"({len(pool)})", item=str(self.out), hint=f"use --per-file {len(pool)} or less")
        return self.rng.sample(pool, n)

    def add(self, images: list[str], text: str, options: list[str], answer: str) -> None:
        opts = list(options)
        self.rng.shuffle(opts)
        self.questions[str(len(self.questions) + 1)] = {
            "image_paths": [os.path.relpath(self.root / p, self.out) for p in images],
            "question_text": text, "options": opts,
            "correct_answer_option": "ABCD"[opts.index(answer)], "answer": answer}

    def save(self, name: str, category: str, sub: str, dataset: str, num_images: str) -> Path:
        doc = {"category": category, "sub-category": sub, "dataset": dataset, "question_type": "MCQ",
               "num_images": num_images, "prepend_text": PREPEND[sub], "postpend_text": POSTPEND,
               "questions": self.questions}
        path = self.out / name
        path.write_text(json.dumps(doc, indent=4) + "\n", encoding="utf-8")
        return path


def _age_single(w: _Writer, utk: list[dict], n: int) -> None:
    texts = ("What is the age group of the person in this image?",
             "Which age group does the person in this image belong to?")
    for r in w.draw(utk, n, "UTKFace photos"):
        right = age_group(float(r["age"]))
        others = w.rng.sample([g for g in AGE_GROUPS if g != right], 3)
        w.add([r["file"]], w.rng.choice(texts), [right, *others], right)


def _age_multiple(w: _Writer, utk: list[dict], n: int) -> None:
    for i in range(n):
        if i % 2 == 0:  # older of two, FaceXBench's most common age question
            a, b = w.rng.sample(utk, 2)
            ia, ib = (age_group_index(float(x["age"])) for x in (a, b))
            right = "Both are of the same age group" if ia == ib else ("Image 1" if ia > ib else "Image 2")
            w.add([a["file"], b["file"]], "Who among these two appears to be older?",
                  ["Image 1", "Image 2", "Both are of the same age group", "None of the above"], right)
        else:           # which of three photos is in a named group (exactly one, or none)
            trio = w.rng.sample(utk, 3)
            groups = [age_group(float(x["age"])) for x in trio]
            unique = [g for g in groups if groups.count(g) == 1]
            absent = [g for g in AGE_GROUPS if g not in groups]
            # FaceXBench asks for a group present in one photo more often than for an absent one
            target = w.rng.choice(unique if unique and w.rng.random() < 0.7 else absent)
            right = f"Image {groups.index(target) + 1}" if target in groups else "None of the above"
            w.add([x["file"] for x in trio], f"Which image shows a person in {target} age group?",
                  ["Image 1", "Image 2", "Image 3", "None of the above"], right)


def _gender(w: _Writer, utk: list[dict], n: int) -> None:
    texts = ("Identify the gender of the person in this image.",
             "What is the gender of the person in this image?")
    for r in w.draw(utk, n, "UTKFace photos"):
        right = r["gender"].capitalize()
        w.add([r["file"]], w.rng.choice(texts), ["Male", "Female", "Both", "None of the above"], right)


def _race(w: _Writer, utk: list[dict], n: int) -> None:
    pool = [r for r in utk if r["race"] in RACES]
    for r in w.draw(pool, n, "UTKFace photos labelled White, Black, Asian or Indian"):
        w.add([r["file"]], "What is the race of the person in this image?", list(RACES), r["race"])


def _expression(w: _Writer, expr: list[dict], n: int) -> None:
    from ..faces.expression_head import identity_split
    by_class: dict[str, list[dict]] = {}
    for r in expr:   # LFW paths are images/<identity>/<file>; the head was fitted on the others
        if r["expression"] in EXPRESSION_NAMES and identity_split(Path(r["file"]).parent.name) == "test":
            by_class.setdefault(r["expression"], []).append(r)
    for rows in by_class.values():
        w.rng.shuffle(rows)
    classes = sorted(by_class)
    texts = ("Which expression is the person showing in the image?",
             "What is the main expression of the person in the image?")
    picked, k = [], 0
    while len(picked) < n and any(by_class.values()):
        rows = by_class[classes[k % len(classes)]]
        if rows:
            picked.append(rows.pop())
        k += 1
    if len(picked) < n:
        w.draw(picked, n, "LFW photos with an expression label")  # raises the clear error
    for r in picked:
        right = EXPRESSION_NAMES[r["expression"]]
        others = w.rng.sample([v for v in EXPRESSION_NAMES.values() if v != right], 3)
        w.add([r["file"]], w.rng.choice(texts), [right, *others], right)


def _same_person(w: _Writer, pairs: list[dict], n: int) -> None:
    test = [p for p in pairs if p["set"] == "view1_test"]
    same = [p for p in test if p["same"] == "1"]
    singles = [(p[f"file_{s}"], p[f"id_{s}"]) for p in test if p["same"] == "0" for s in "ab"]
    for i, p in enumerate(w.draw(same, n, "same-person LFW View 1 test pairs")):
        distract = []
        while len(distract) < 2:
            f, ident = w.rng.choice(singles)
            if ident != p["id_a"] and ident not in [d[1] for d in distract]:
                distract.append((f, ident))
        if i % 2 == 0:
            files = [p["file_a"], p["file_b"], distract[0][0], distract[1][0]]
            order = list(range(4))
            w.rng.shuffle(order)
            imgs = [files[k] for k in order]
            pos = sorted(order.index(k) + 1 for k in (0, 1))
            right = f"Images {pos[0]} and {pos[1]}"
            cands = [f"Images {a} and {b}" for a in range(1, 5) for b in range(a + 1, 5)]
            wrong = w.rng.sample([c for c in cands if c != right], 3)
            w.add(imgs, "Which two images show the same person?", [right, *wrong], right)
        else:
            rest = [p["file_b"], distract[0][0], distract[1][0]]
            w.rng.shuffle(rest)
            right = f"Image {rest.index(p['file_b']) + 2}"
            w.add([p["file_a"], *rest], "The first image is of a person A. The same person A is present "
                  "in which of the other images?", ["Image 2", "Image 3", "Image 4", "None of the above"], right)


def make_mcq(cfg: MakeMCQConfig) -> list[Path]:
    """Write the local benchmark into cfg.out; returns the JSON files written."""
    data, out = Path(cfg.data), Path(cfg.out)
    utk_root, lfw_root = data / "utkface-dev", data / "lfw-view1"
    utk = _read_csv(utk_root / "labels.csv", ("file", "age", "gender", "race"))
    expr = _read_csv(lfw_root / "expressions.csv", ("file", "expression"))
    pairs = _read_csv(lfw_root / "pairs.csv", ("set", "same", "file_a", "file_b", "id_a", "id_b"))
    out.mkdir(parents=True, exist_ok=True)
    bias, utkface = "bias_fairness", "utkface"
    jobs: list[tuple[str, Callable, list, Path, tuple[str, str, str, str]]] = [
        ("utkface_single_mcq_age.json", _age_single, utk, utk_root, (bias, "age", utkface, "single")),
        ("utkface_multiple_mcq_age.json", _age_multiple, utk, utk_root, (bias, "age", utkface, "multiple")),
        ("utkface_single_mcq_gender.json", _gender, utk, utk_root, (bias, "gender", utkface, "single")),
        ("utkface_single_mcq_race.json", _race, utk, utk_root, (bias, "race", utkface, "single")),
        ("lfw_single_mcq_expression.json", _expression, expr, lfw_root,
         ("attributes_expression", "expression", "lfw", "single")),
        ("lfw_multiple_mcq.json", _same_person, pairs, lfw_root,
         ("face_recognition", "hr_fr", "lfw", "multiple")),
    ]
    written = []
    for name, build, rows, root, meta in jobs:
        w = _Writer(out, root, random.Random(f"{cfg.seed}:{name}"))  # per file: stable if others change
        build(w, rows, cfg.per_file)
        written.append(w.save(name, *meta))
    (out / "config.json").write_text(stamped_json({"make_mcq": asdict(cfg)}, indent=2) + "\n", encoding="utf-8")
    return written
