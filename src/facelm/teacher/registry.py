"""Teachers by name: a plain dict of "module:function" loaders, and the options they take."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from ..errors import FaceLMError
from .base import Teacher

TEACHERS: dict[str, str] = {
    "evidence": "facelm.teacher.evidence_teacher:load",
    "openai": "facelm.teacher.openai_teacher:load",
}


@dataclass(frozen=True)
class TeacherSpec:
    """Which teacher, and its options (None: the teacher's default). Saved in every manifest."""
    name: str = "evidence"
    model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    timeout_s: float | None = None
    max_retries: int | None = None
    backoff_base_s: float | None = None
    retry_after_cap_s: float | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    price_in: float | None = None
    price_out: float | None = None
    transport: str | None = None        # "auto" | "lean" | "httpx" (openai teacher)
    cooldown_s: float | None = None     # rest of an endpoint that keeps failing (openai teacher)


def make_teacher(spec: TeacherSpec) -> Teacher:
    if spec.name not in TEACHERS:
        raise FaceLMError(f"unknown teacher {spec.name!r}", item="--teacher",
                          hint=f"choose one of {', '.join(TEACHERS)}")
    module, func = TEACHERS[spec.name].split(":")
    options: dict[str, Any] = {k: v for k, v in spec.__dict__.items() if k != "name" and v is not None}
    return getattr(importlib.import_module(module), func)(**options)
