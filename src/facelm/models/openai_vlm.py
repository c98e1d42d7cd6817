"""Any OpenAI-compatible chat endpoint (OpenAI, a vLLM server, `facelm serve`) as a FaceVLM.

    model = load_model("openai:gpt-4o-mini")                         # key from $OPENAI_API_KEY
    model = load_model("openai:OpenGVLab/InternVL3-8B@http://gpu-box:8000/v1")   # a vLLM server

Requests go through the `openai` teacher's client (facelm.teacher.openai_teacher), so evaluation
gets the same retries, Retry-After handling and token accounting as data generation. Photos are
sent inline as JPEG data URLs, in order, before the prompt text, in one user turn.
`generate_batch` sends a batch concurrently (bounded by `concurrency`), which is what makes a
benchmark against a vLLM server fast.
"""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Sequence

from .base import FaceVLM, ImageInput


class OpenAIVLM(FaceVLM):
    def __init__(self, model: str, base_url: str | None = None, *, concurrency: int = 8,
                 max_side: int = 1024, **config: Any):
        from ..teacher.openai_teacher import DEFAULT_BASE_URL, OpenAIConfig
        self.cfg = OpenAIConfig(model=model, base_url=base_url or DEFAULT_BASE_URL,
                                max_side=max_side, **config)
        self.concurrency = max(1, int(concurrency))
        self.name = self.cfg.name
        self.usage: dict[str, float] = {"prompt_tokens": 0, "completion_tokens": 0, "requests": 0}

    def _body(self, urls: Sequence[str], prompt: str, max_new_tokens: int = 256,
              do_sample: bool = False, temperature: float = 1.0, seed: int = 0) -> dict[str, Any]:
        content: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": u}}
                                         for u in urls]
        content.append({"type": "text", "text": prompt})
        # Greedy unless sampling is asked for, as the local models do.
        return {"model": self.cfg.model, "max_tokens": max_new_tokens, "seed": seed,
                "temperature": temperature if do_sample else 0.0,
                "messages": [{"role": "user", "content": content}]}

    async def _run(self, items: Sequence[tuple[Sequence[ImageInput], str]],
                   gen: dict[str, Any]) -> list[str]:
        from ..teacher.openai_teacher import OpenAITeacher, encode_image
        teacher = OpenAITeacher(self.cfg)
        teacher.share_limit(asyncio.Semaphore(self.concurrency))
        # Each photo is encoded once per batch (the questions about one face share it), in a
        # thread, while the requests already encoded are out.
        encoded: dict[Any, asyncio.Future] = {}

        def data_url(img: ImageInput) -> asyncio.Future:
            key = str(img) if isinstance(img, (str, Path)) else id(img)  # items keep img alive
            if key not in encoded:
                encoded[key] = asyncio.ensure_future(
                    asyncio.to_thread(encode_image, img, self.cfg.max_side))
            return encoded[key]

        async def one(i: int, images: Sequence[ImageInput], prompt: str) -> str:
            urls = [await data_url(img) for img in images]
            reply = await teacher.post(self._body(urls, prompt, **gen), item=f"request {i}")
            for k in ("prompt_tokens", "completion_tokens"):
                self.usage[k] += reply.usage.get(k) or 0
            self.usage["requests"] += 1
            return reply.text
        try:
            return list(await asyncio.gather(*(one(i, *item) for i, item in enumerate(items))))
        finally:
            await teacher.aclose()

    def generate(self, images: Sequence[ImageInput], prompt: str, *, max_new_tokens: int = 256,
                 do_sample: bool = False, temperature: float = 1.0, seed: int = 0) -> str:
        gen = {"max_new_tokens": max_new_tokens, "do_sample": do_sample,
               "temperature": temperature, "seed": seed}
        return asyncio.run(self._run([(images, prompt)], gen))[0]

    def generate_batch(self, items: Sequence[tuple[Sequence[ImageInput], str]],
                       **gen: Any) -> list[str]:
        return asyncio.run(self._run(items, gen))

    # score_choices: chat endpoints return log-probabilities of the tokens they generate, not of
    # arbitrary option texts, so the base class's NotImplementedError stands and the multiple-choice
    # runner uses generation + answer extraction for these models.


def load(model: str, base_url: str | None = None, **kwargs: Any) -> OpenAIVLM:
    """Registry entry point: `load_model("openai:MODEL[@BASE_URL]")`."""
    return OpenAIVLM(model, base_url, **kwargs)
