"""The OpenAI-endpoint FaceVLM against a real local chat-completions server (facelm's own test
server, speaking the protocol over HTTP on 127.0.0.1)."""
from __future__ import annotations

import base64
import io
import time

import numpy as np
import pytest
from PIL import Image

from facelm.models import load_model
from facelm.models.openai_vlm import OpenAIVLM
from facelm.teacher.chat_server import ChatServer, ServerConfig


def _decode(url: str) -> np.ndarray:
    assert url.startswith("data:image/jpeg;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def test_generate_sends_photos_in_order_then_the_prompt_and_retries(portrait_path, lfw_dir):
    other = sorted(lfw_dir.rglob("*.jpg"))[0]
    cfg = ServerConfig(script=["429", "ok"], retry_after_s=0.05)
    with ChatServer(cfg) as server:
        model = load_model(f"openai:test-model@{server.url}")
        assert isinstance(model, OpenAIVLM) and model.cfg.base_url == server.url
        text = model.generate([portrait_path, other], "Describe the face pose.", max_new_tokens=50)
    assert text.startswith("Reply 2:")  # the canned answer to the second (retried) request
    assert server.outcomes["429"] == 1 and server.outcomes["ok"] == 1
    body = server.requests[-1]
    assert body["model"] == "test-model" and body["max_tokens"] == 50
    assert body["temperature"] == 0.0  # greedy unless sampling is asked for
    parts = body["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["image_url", "image_url", "text"]
    assert parts[2]["text"] == "Describe the face pose."
    sizes = [_decode(p["image_url"]["url"]).shape[:2] for p in parts[:2]]
    assert sizes[0] == np.asarray(Image.open(portrait_path)).shape[:2]  # portrait first
    assert sizes[1] == np.asarray(Image.open(other)).shape[:2]
    assert model.usage["requests"] == 1 and model.usage["completion_tokens"] > 0


def test_generate_batch_runs_requests_concurrently(portrait_path):
    with ChatServer(ServerConfig(latency_s=0.3)) as server:
        model = OpenAIVLM("m", server.url, concurrency=8)
        start = time.monotonic()
        out = model.generate_batch([([portrait_path], f"question {i}") for i in range(8)])
        wall = time.monotonic() - start
    assert len(out) == 8 and all(t.startswith("Reply") for t in out)
    assert wall < 8 * 0.3 / 2  # sequential would take 2.4 s; concurrent about one latency


def test_arrays_are_accepted_and_options_cannot_be_scored(portrait_path):
    rgb = np.asarray(Image.open(portrait_path).convert("RGB"))
    with ChatServer() as server:
        model = OpenAIVLM("m", server.url)
        assert model.generate([rgb], "Describe this image.")
        url = server.requests[-1]["messages"][0]["content"][0]["image_url"]["url"]
        assert _decode(url).shape == rgb.shape
    with pytest.raises(NotImplementedError):
        model.score_choices([rgb], "Which?", ["Male", "Female"])
