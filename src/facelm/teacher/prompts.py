"""Versioned teacher prompts, loaded from a TOML file a user can replace (`--prompts FILE`).

The prompt the teacher sees states the known labels; the question stored for the student is the
one from `facelm.data.schema.QA_QUESTIONS` / `PAIR_QUESTIONS` and never does (see labels.py for the
leakage check that enforces it).
"""
from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from ..errors import InputFormatError
from .labels import phrases

DEFAULT_PROMPTS = "v1.toml"
_REQUIRED = {"meta": ("version",), "qa": ("system", "user", "strict_system", "focus", "titles"),
             "pairs": ("system", "strict_system", "describe", "compare", "one_step", "length",
                       "verdict")}


@dataclass(frozen=True)
class ChatPrompt:
    """What a chat teacher receives: a system message, a user message and 0-2 images."""
    system: str
    user: str
    images: tuple[str, ...] = ()


@dataclass(frozen=True)
class PromptSet:
    data: dict[str, Any]
    version: str      # meta.version + "+" + first 8 hex of the file's SHA-256
    source: str

    def questions(self, table: str, defaults: Mapping[str, str]) -> dict[str, str]:
        """The student questions: `defaults`, overridden by the file's [<table>.questions]."""
        return {**defaults, **self.data[table].get("questions", {})}

    def qa(self, aspect: str, labels: Mapping[str, Any], image: str, evidence: str = "",
           strict: bool = False) -> ChatPrompt:
        q = self.data["qa"]
        if aspect not in q["focus"] or aspect not in q["titles"]:
            raise InputFormatError(f"no prompt for aspect {aspect!r}", item=self.source,
                                   hint="add it under [qa.focus] and [qa.titles]")
        user = q["user"].format(labels=phrases(labels).sentence(), evidence=evidence,
                                aspect=q["titles"][aspect], focus=q["focus"][aspect])
        return ChatPrompt(q["strict_system"] if strict else q["system"], user, (image,))

    def pair_describe(self, image: str, evidence: str = "", strict: bool = False) -> ChatPrompt:
        p = self.data["pairs"]
        return ChatPrompt(self._pair_system(strict), p["describe"].format(evidence=evidence),
                          (image,))

    def pair_explain(self, tier: str, same: bool, images: tuple[str, str], *,
                     descriptions: tuple[str, str] | None = None, evidence: str = "",
                     strict: bool = False) -> ChatPrompt:
        """Step two (text only, from the two descriptions) or, without descriptions, one step."""
        p = self.data["pairs"]
        fields = {"verdict": p["verdict"]["same" if same else "different"],
                  "length": p["length"][tier], "evidence": evidence}
        if descriptions is not None:
            user = p["compare"].format(description_a=descriptions[0],
                                       description_b=descriptions[1], **fields)
            return ChatPrompt(self._pair_system(strict), user, ())
        return ChatPrompt(self._pair_system(strict), p["one_step"].format(**fields), images)

    def _pair_system(self, strict: bool) -> str:
        return self.data["pairs"]["strict_system" if strict else "system"]


def load_prompts(path: str | Path | None = None) -> PromptSet:
    """The prompt set in `path`, or the packaged default; checks every required key is there."""
    if path is None:
        raw = resources.files("facelm.teacher").joinpath("prompts").joinpath(DEFAULT_PROMPTS).read_bytes()
        source = f"facelm/teacher/prompts/{DEFAULT_PROMPTS}"
    else:
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise InputFormatError(f"cannot read the prompt file ({exc})", item=str(path)) from exc
        source = str(path)
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputFormatError(f"not a TOML prompt file ({exc})", item=source,
                               hint=f"start from facelm/teacher/prompts/{DEFAULT_PROMPTS}") from exc
    for table, keys in _REQUIRED.items():
        missing = [k for k in keys if k not in data.get(table, {})]
        if missing:
            raise InputFormatError(f"[{table}] lacks {', '.join(missing)}", item=source,
                                   hint=f"start from facelm/teacher/prompts/{DEFAULT_PROMPTS}")
    digest = hashlib.sha256(raw).hexdigest()[:8]
    return PromptSet(data=data, version=f"{data['meta']['version']}+{digest}", source=source)


def evidence_text(analysis: Any) -> str:
    """The measured analysis of one face as one prompt line (ending in a newline), so a teacher
    grounds pose, quality and expression in measurements instead of inventing them."""
    from ..explain import quality_flags
    p, q = analysis.pose, analysis.quality
    parts = [f"head pose yaw {p.yaw:+.0f}°, pitch {p.pitch:+.0f}°, roll {p.roll:+.0f}° (yaw > 0: "
             f"turned towards the image's right)",
             f"face brightness {q.brightness:.2f} and contrast {q.contrast:.2f} (0-1), "
             f"{q.interocular_px:.0f} px between the eyes, {analysis.faces_found} face(s) in the photo"]
    flags = quality_flags(analysis)
    if flags:
        parts.append("image problems: " + ", ".join(f.replace("_", " ") for f in flags))
    at = analysis.attributes
    if at is not None:
        parts.append(f"expression classifier: {at.expression} "
                     f"({at.expression_probs[at.expression]:.0%})")
    return ("Measurements from face-analysis models (trust them over your impression): "
            + "; ".join(parts) + ".\n")
