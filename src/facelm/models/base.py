"""The one interface every face model in facelm speaks: our VerLM prefix model, Hugging Face VLMs,
the offline evidence model and OpenAI-compatible endpoints.

Benchmarks, the server and the CLI only ever call these methods, so any model can sit behind any of
them (DESIGN.md: narrow interfaces).
"""
from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

import numpy as np

# A photo as a path, an RGB uint8 array (H, W, 3) or a PIL image; loaded with facelm.imageio.
ImageInput = Union[str, Path, np.ndarray, Any]


class FaceVLM(abc.ABC):
    """A model that reads one or two face photos and a prompt and writes text."""

    #: short name used in reports ("evidence", "verlm", "hf:OpenGVLab/InternVL3-1B-hf", ...)
    name: str = "facevlm"

    @abc.abstractmethod
    def generate(self, images: Sequence[ImageInput], prompt: str, *, max_new_tokens: int = 256,
                 do_sample: bool = False, temperature: float = 1.0, seed: int = 0) -> str:
        """The answer to `prompt` about `images` (1 or 2 photos, in order)."""

    def generate_batch(self, items: Sequence[tuple[Sequence[ImageInput], str]],
                       **gen: Any) -> list[str]:
        """Answers for many (images, prompt) items; models that batch override this."""
        return [self.generate(images, prompt, **gen) for images, prompt in items]

    def ask(self, images: Sequence[ImageInput], questions: Mapping[str, str],
            **gen: Any) -> dict[str, str]:
        """Answers to several questions about the same images, keyed as `questions` (e.g. by
        aspect or tier), in one `generate_batch` call."""
        texts = self.generate_batch([(images, q) for q in questions.values()], **gen)
        return dict(zip(questions, texts))

    def score_choices(self, images: Sequence[ImageInput], prompt: str,
                      choices: Sequence[str]) -> list[float]:
        """Log-likelihood of each choice as the answer to `prompt` (higher is more likely).

        Models that cannot score options (e.g. a remote endpoint without logprobs) raise
        NotImplementedError; callers then fall back to generation + answer extraction.
        """
        raise NotImplementedError(f"{self.name} cannot score options; use generation mode")
