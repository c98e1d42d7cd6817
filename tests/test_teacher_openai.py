"""The `openai` teacher against a real local chat-completions server that injects faults."""
from __future__ import annotations

import asyncio
import base64
import io
import time

import pytest
from PIL import Image

from facelm.teacher.base import Task, TeacherError, TeacherFatalError
from facelm.teacher.chat_server import REFUSAL, ChatServer, ServerConfig
from facelm.teacher.checks import is_refusal, stated_verdict
from facelm.teacher.openai_teacher import OpenAIConfig, OpenAITeacher, retry_after
from facelm.teacher.prompts import ChatPrompt


def _complete(teacher: OpenAITeacher, task: Task):
    async def go():
        try:
            return await teacher.complete(task)
        finally:
            await teacher.aclose()
    return asyncio.run(go())


def _teacher(url: str, **kw) -> OpenAITeacher:
    opts = dict(model="gpt-4o-mini", base_url=url, backoff_base_s=0.05, timeout_s=5.0)
    opts.update(kw)
    return OpenAITeacher(OpenAIConfig(**opts))


TEXT_TASK = Task("qa", ChatPrompt("You describe faces.", "Describe the pose."))


@pytest.mark.parametrize("transport", ["lean", "httpx"])
def test_retries_429_500_malformed_and_honours_retry_after(transport):
    cfg = ServerConfig(script=["429", "500", "malformed", "ok"], retry_after_s=0.4)
    with ChatServer(cfg) as server:
        t0 = time.monotonic()
        reply = _complete(_teacher(server.url, transport=transport), TEXT_TASK)
        elapsed = time.monotonic() - t0
    assert reply.usage["attempts"] == 4
    assert elapsed >= 0.4            # waited at least what the 429 asked for
    assert reply.text.startswith("Reply 4")
    assert reply.usage["prompt_tokens"] > 0 and reply.usage["completion_tokens"] > 0
    # gpt-4o-mini's list price: $0.15 / $0.60 per million tokens
    want = (reply.usage["prompt_tokens"] * 0.15 + reply.usage["completion_tokens"] * 0.60) / 1e6
    assert reply.usage["cost_usd"] == pytest.approx(want)


def test_chunked_responses_and_price_override():
    with ChatServer(ServerConfig(chunked=True)) as server:
        reply = _complete(_teacher(server.url, model="local", price_in=1.0, price_out=2.0),
                          TEXT_TASK)
    assert reply.text.startswith("Reply 1") and reply.usage["attempts"] == 1
    assert reply.usage["cost_usd"] == pytest.approx(
        (reply.usage["prompt_tokens"] + 2 * reply.usage["completion_tokens"]) / 1e6)


def test_unknown_model_price_is_unknown_not_zero():
    with ChatServer() as server:
        reply = _complete(_teacher(server.url, model="my-local-vlm"), TEXT_TASK)
    assert reply.usage["cost_usd"] is None


def test_hang_times_out_then_retries():
    with ChatServer(ServerConfig(script=["hang", "ok"], hang_s=30)) as server:
        t0 = time.monotonic()
        reply = _complete(_teacher(server.url, timeout_s=0.5), TEXT_TASK)
        assert time.monotonic() - t0 < 5
    assert reply.usage["attempts"] == 2


def test_gives_up_after_max_retries():
    with ChatServer(ServerConfig(script=["500"] * 5)) as server:
        with pytest.raises(TeacherError, match="gave up after 3 attempts; last: HTTP 500"):
            _complete(_teacher(server.url, max_retries=2), TEXT_TASK)
        assert len(server.requests) == 3


def test_bad_key_is_fatal_without_retries():
    with ChatServer(ServerConfig(script=["401"])) as server:
        with pytest.raises(TeacherFatalError, match="HTTP 401.*OPENAI_API_KEY"):
            _complete(_teacher(server.url), TEXT_TASK)
        assert len(server.requests) == 1


def test_connection_refused_is_retried_then_reported():
    with ChatServer() as server:
        url = server.url
    with pytest.raises(TeacherError, match="connection error"):
        _complete(_teacher(url, max_retries=1), TEXT_TASK)


def test_images_go_inline_as_jpeg_data_urls(portrait_path):
    task = Task("qa", ChatPrompt("sys", "Describe.", (str(portrait_path),)))
    with ChatServer() as server:
        _complete(_teacher(server.url, max_side=128), task)
        body = server.requests[0]
    assert body["model"] == "gpt-4o-mini"
    assert body["messages"][0] == {"role": "system", "content": "sys"}
    parts = body["messages"][1]["content"]
    url = parts[1]["image_url"]["url"]
    assert parts[0] == {"type": "text", "text": "Describe."}
    assert url.startswith("data:image/jpeg;base64,")
    img = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert img.format == "JPEG" and max(img.size) == 128   # 250 px LFW photo, downscaled


def test_bad_image_fails_before_any_request(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with ChatServer() as server:
        with pytest.raises(Exception, match="broken.jpg"):
            _complete(_teacher(server.url), Task("qa", ChatPrompt("s", "u", (str(bad),))))
        assert server.requests == []


def test_retry_after_header_forms():
    class R:
        def __init__(self, h):
            self.headers = h
    assert retry_after(R({"retry-after": "2"})) == 2.0
    assert retry_after(R({"retry-after-ms": "250", "retry-after": "9"})) == 0.25
    assert 55 < retry_after(R({"retry-after": time.strftime(
        "%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))})) <= 61
    assert retry_after(R({})) is None


def test_refusal_and_verdict_checks():
    assert is_refusal(REFUSAL)
    assert is_refusal("I cannot identify people in images.")
    assert is_refusal("Sorry, I can't do that.")
    assert is_refusal("")                       # empty: no answer either
    assert not is_refusal("The face is turned slightly to the left; it cannot be called frontal, "
                          "and nothing is claimed about the hidden ear.")
    assert stated_verdict("These two photos very likely show the same person.") is True
    assert stated_verdict("They are not the same person: the noses differ.") is False
    assert stated_verdict("The photos doesn't show the same individual") is False
    assert stated_verdict("A tentative verdict: different people, on weak evidence") is False
    assert stated_verdict("Nice lighting in both.") is None
