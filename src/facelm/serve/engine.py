"""The work each request does, in a worker process: decode with limits, analyse, explain.

Results are exactly what `facelm verify --json` and `facelm describe --json` print, because they
come from the same calls (facelm.api) and the same `to_dict()`. When the server has a text model
(--model), its answers replace the evidence explainer's texts and `text_model` names it.

Each worker process holds its own face models (facelm.faces.models caches them per thread, and a
worker runs jobs on one thread) and its own copy of the text and chat models, loaded once by
`init_worker` when the process starts.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..errors import FaceLMError
from ..imageio import load_rgb
from .errors import APIError, from_facelm

# This process's models: "text" for verify/describe (None: the built-in explainer), "chat" for
# chat completions (None: the server has none). Set once by init_worker.
_MODELS: dict[str, Any] = {"text": None, "chat": None}


@dataclass(frozen=True)
class VerifyOptions:
    fast: bool = False
    threshold: float | None = None
    seed: int = 0
    face: object = None  # the raw `face` field, parsed in the worker (faces/select.py)


def load_models(spec: str | None) -> tuple[Any, Any]:
    """(text model, chat model). Without a spec, verify/describe use the built-in explainer and
    chat uses the "evidence" FaceVLM when it is installed."""
    from ..models import load_model
    if spec:
        model = load_model(spec)
        return model, model
    try:
        return None, load_model("evidence")
    except ModuleNotFoundError as exc:
        if exc.name and "facelm.models.evidence".startswith(exc.name):
            return None, None
        raise


def init_worker(model_spec: str | None, warm: bool) -> None:
    """Process initializer: load the models and, if asked, run one real analysis so the first
    request pays no loading cost and a broken install fails at start-up."""
    _MODELS["text"], _MODELS["chat"] = load_models(model_spec)
    if warm:
        from ..api import analyze
        from ..demo import bundled_photos
        analyze(bundled_photos()["astronaut"], name="warm-up")


def worker_info() -> dict[str, Any]:
    """Which process this is and which models it holds (the first job every worker runs)."""
    return {"pid": os.getpid(), "text_model": _name(_MODELS["text"]), "chat_model": _name(_MODELS["chat"])}


def _name(model: Any) -> str | None:
    return None if model is None else str(getattr(model, "name", "") or type(model).__name__)


def no_chat_model() -> APIError:
    return APIError(503, "this server has no chat model", type="model_not_available",
                    hint="start it with --model SPEC (e.g. --model evidence, or a checkpoint folder)")


def timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """(fn(*args), seconds), with facelm's errors turned into APIErrors, which survive pickling
    back to the server process with their item and hint."""
    t0 = time.perf_counter()
    try:
        return fn(*args), time.perf_counter() - t0
    except FaceLMError as exc:
        raise from_facelm(exc) from None


def verify(image_a: bytes, name_a: str, image_b: bytes, name_b: str, opts: VerifyOptions,
           max_pixels: int) -> dict[str, Any]:
    """The `facelm verify --json` object for two uploaded images."""
    from ..api import analyze, compare
    face = face_choice(opts.face)
    rgb_a = load_rgb(image_a, max_pixels=max_pixels, name=name_a)
    rgb_b = load_rgb(image_b, max_pixels=max_pixels, name=name_b)
    # face="all": two FaceSets, and compare judges their best-matching pair
    a = analyze(rgb_a, fast=opts.fast, name=name_a, face=face)
    b = analyze(rgb_b, fast=opts.fast, name=name_b, face=face)
    out = compare(a, b, threshold=opts.threshold, seed=opts.seed, face=face).to_dict()
    model = _MODELS["text"]
    if model is not None:
        from ..data.schema import PAIR_QUESTIONS
        out["explanation"].update(model.ask([rgb_a, rgb_b], PAIR_QUESTIONS, seed=opts.seed))
        out["text_model"] = _name(model)
    return out


def describe(image: bytes, name: str, aspect: str | None, seed: int, max_pixels: int,
             face: object = None) -> dict[str, Any]:
    """The `facelm describe --json` object for one uploaded image."""
    from ..api import analyze
    from ..api import describe as describe_face
    choice = face_choice(face)
    rgb = load_rgb(image, max_pixels=max_pixels, name=name)
    out = describe_face(analyze(rgb, name=name, face=choice), aspect=aspect, seed=seed).to_dict()
    model = _MODELS["text"]
    if model is not None:
        from ..data.schema import QA_QUESTIONS
        out["answers"] = model.ask([rgb], {k: QA_QUESTIONS[k] for k in out["answers"]}, seed=seed)
        out["text_model"] = _name(model)
    return out


def search(image: bytes, name: str, index: str, k: int, seed: int, max_pixels: int,
           min_score: float | None = None) -> dict[str, Any]:
    """The `facelm search --json` object for one uploaded image (the gallery is loaded once per
    worker and read again when its gallery.json changes)."""
    from ..api import analyze
    from ..identify import search as search_gallery
    rgb = load_rgb(image, max_pixels=max_pixels, name=name)
    return search_gallery(analyze(rgb, name=name), index, k=k, seed=seed,
                          min_score=min_score).to_dict()


def face_choice(value: object) -> Any:
    """The `face` field parsed (422 naming `face` when it is not a choice). A server text model
    reads the whole photo, so it cannot follow a choice of face: refused, as `--model` in the CLI."""
    from ..errors import InputFormatError
    from ..faces.select import DEFAULT_FACE, parse_face
    choice = parse_face(value, item="face")
    if choice != DEFAULT_FACE and _MODELS["text"] is not None:
        raise InputFormatError(f"face={value} does not work on this server", item="face",
                               hint="its text model (--model) reads the whole photo; leave out face")
    return choice


def chat(images: Sequence[bytes], prompt: str, gen: dict[str, Any], max_pixels: int) -> str:
    """One chat completion: the images decoded with limits, then the chat model's answer."""
    model = _MODELS["chat"]
    if model is None:
        raise no_chat_model()
    rgbs = [load_rgb(data, max_pixels=max_pixels, name=f"image {i + 1}")
            for i, data in enumerate(images)]
    return model.generate(rgbs, prompt, **gen)
