"""The teacher interface the data jobs call: one async `complete(task)` per piece of text.

A Task carries both forms of the request, so each teacher takes what it understands: a chat teacher
sends `prompt` (system + user text + images); the evidence teacher ignores the prompt and writes
from `analyses` and `labels`.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

from ..errors import FaceLMError
from .prompts import ChatPrompt

@dataclass(frozen=True)
class Task:
    kind: str                          # "qa" | "describe" (step one of a pair) | "pair"
    prompt: ChatPrompt
    aspect: str | None = None          # qa
    tier: str | None = None            # pair: "concise" | "detailed"
    same: bool | None = None           # pair: ground truth
    labels: dict[str, Any] = field(default_factory=dict)
    analyses: tuple[Any, ...] = ()     # FaceAnalysis per image, when the job measured them
    seed: int = 0


@dataclass(frozen=True)
class TeacherReply:
    text: str
    # prompt_tokens, completion_tokens, cost_usd, latency_s, attempts (what the teacher knows)
    usage: dict[str, Any] = field(default_factory=dict)


class TeacherError(FaceLMError):
    """One request failed for good (retries exhausted, or the endpoint rejected it): the item is
    recorded as failed and the job goes on."""


class TeacherFatalError(FaceLMError):
    """Every request would fail the same way (bad key, unknown model, wrong URL): stop the job."""


class Teacher(abc.ABC):
    #: recorded in every record ("evidence", "openai:gpt-4o@https://...")
    name: str = "teacher"
    #: True when complete() needs the measured FaceAnalysis of every image
    needs_analysis: bool = False

    @abc.abstractmethod
    async def complete(self, task: Task) -> TeacherReply:
        """The teacher's text for `task`; raises TeacherError / TeacherFatalError."""

    async def aclose(self) -> None:
        """Release connections; called once when the job ends."""

    def share_limit(self, limit: Any) -> bool:
        """Take the job's bound on requests in flight (an asyncio.Semaphore) and hold it only
        while a request is on the wire, not while waiting to retry; False (the default) makes the
        job hold it around each whole `complete` call instead."""
        return False

    def slots(self, concurrency: int) -> int:
        """How many requests the job may keep in flight when each of the teacher's endpoints
        takes `concurrency`: their caps summed (one endpoint, or none: `concurrency`)."""
        return concurrency

    def config(self) -> dict[str, Any]:
        """What the manifest records about this teacher (no secrets)."""
        return {"name": self.name}
