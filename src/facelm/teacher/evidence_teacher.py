"""The offline teacher: answers and explanations from the labels and the measured FaceAnalysis.

It reuses `facelm.explain`, so every number it writes is a measurement; the known labels are stated
as labels (demographics and general aspects) rather than passed off as visual findings. No network,
no language model: the whole data pipeline runs on a laptop with it.

Pair explanations state the *measured* verdict. Where the identity models disagree with the label,
the explanation contradicts it and the job drops it (counted in the manifest): writing "same person"
over a score that says otherwise would teach the student to explain what the evidence does not show.
"""
from __future__ import annotations

from typing import Any

from .base import Task, Teacher, TeacherError, TeacherReply
from .labels import phrases

# Aspects whose answer opens with the data set's labels (the others are about appearance only).
LABELLED_ASPECTS = ("demographics", "general")


class EvidenceTeacher(Teacher):
    name = "evidence"
    needs_analysis = True

    async def complete(self, task: Task) -> TeacherReply:
        if len(task.analyses) != len(task.prompt.images) or not task.analyses:
            raise TeacherError("the evidence teacher needs the measured analysis of each image",
                               item=",".join(task.prompt.images))
        if task.kind == "qa":
            return TeacherReply(qa_answer(task))
        if task.kind == "pair":
            return TeacherReply(pair_answer(task))
        # Step one of the two-step recipe: the all-aspect description of one face.
        from ..explain import describe_all
        return TeacherReply(" ".join(describe_all(task.analyses[0], seed=task.seed).values()))


def qa_answer(task: Task) -> str:
    from ..explain import describe_face
    text = describe_face(task.analyses[0], task.aspect or "general", seed=task.seed)
    if task.aspect in LABELLED_ASPECTS and task.labels:
        p = phrases(task.labels)
        known = [x for x in (f"a {p.gender}" if p.gender else None, p.ethnicity, p.age) if x]
        if known:
            lead = "The data set labels this person as " + ", ".join(known) + "."
            if task.aspect == "demographics":
                lead += " The measured estimates follow."
            text = f"{lead} {text}"
    return text


def pair_answer(task: Task) -> str:
    from ..explain import explain_pair
    from ..verify import compare_analyses
    cmp = compare_analyses(task.analyses[0], task.analyses[1])
    exp = explain_pair(cmp, seed=task.seed)
    return exp.concise if task.tier == "concise" else exp.detailed


def load(**_: Any) -> EvidenceTeacher:  # options of chat teachers do not apply
    return EvidenceTeacher()
