"""Security and overload behaviour of the real server: token on/off, the bind-address rule,
queue full -> 503 + Retry-After, and uploads never reaching the disk or the log. The server here
also runs with `--model evidence`, whose texts then replace the built-in explainer's."""
from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from facelm.serve.background import BackgroundServer
from facelm.serve.config import ServeConfig

TOKEN = "test-token-0123456789abcdef"


@pytest.fixture(scope="module")
def server() -> BackgroundServer:
    # One worker and room for one request: a burst of requests must overflow it.
    srv = BackgroundServer(ServeConfig(port=0, token=TOKEN, workers=1, queue=1, model="evidence"))
    with srv:
        yield srv


@pytest.fixture(scope="module")
def url(server) -> str:
    return server.url


@pytest.fixture(scope="module")
def pair(lfw_dir: Path, lfw_pairs: list[dict]) -> dict:
    row = lfw_pairs[0]
    return {"image_a": ("a.jpg", (lfw_dir / row["file_a"]).read_bytes()),
            "image_b": ("b.jpg", (lfw_dir / row["file_b"]).read_bytes())}


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_token_required_when_set(url: str, pair: dict) -> None:
    with httpx.Client(base_url=url, timeout=60) as c:
        assert c.get("/healthz").json()["auth_required"] is True  # health stays open
        assert c.get("/").status_code == 200                         # so does the page
        for headers in ({}, bearer("wrong-token-0123456789"), {"Authorization": TOKEN}):
            r = c.post("/v1/verify", files=pair, headers=headers)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
            assert "FACELM_TOKEN" in r.json()["error"]["hint"]
        assert c.post("/v1/chat/completions", json={}).status_code == 401
        r = c.post("/v1/verify", files=pair, headers=bearer(TOKEN))
        assert r.status_code == 200 and isinstance(r.json()["same"], bool)


def test_queue_full_gives_503_with_retry_after(url: str, pair: dict) -> None:
    async def burst(n: int) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=120, headers=bearer(TOKEN)) as c:
            return await asyncio.gather(*(c.post("/v1/verify", files=pair) for _ in range(n)))

    responses = asyncio.run(burst(8))
    codes = sorted(r.status_code for r in responses)
    assert 200 in codes and 503 in codes and set(codes) <= {200, 503}, codes
    busy = [r for r in responses if r.status_code == 503]
    for r in busy:
        assert int(r.headers["retry-after"]) >= 1
        assert r.json()["error"]["type"] == "server_busy"
    ok = [r.json() for r in responses if r.status_code == 200]
    assert all(o == ok[0] for o in ok)  # admitted requests are answered in full, identically
    with httpx.Client(base_url=url, timeout=60, headers=bearer(TOKEN)) as c:
        health = c.get("/healthz").json()
        assert health["in_progress"] == 0 and health["rejected_busy"] >= len(busy)
        assert c.post("/v1/verify", files=pair).status_code == 200  # and it keeps serving


def test_model_writes_the_texts(url: str, lfw_dir: Path, lfw_pairs: list[dict]) -> None:
    from facelm.data.schema import PAIR_QUESTIONS, QA_QUESTIONS
    from facelm.imageio import load_rgb
    from facelm.models import load_model
    row = lfw_pairs[0]
    a, b = lfw_dir / row["file_a"], lfw_dir / row["file_b"]
    model = load_model("evidence")
    with httpx.Client(base_url=url, timeout=60, headers=bearer(TOKEN)) as c:
        out = c.post("/v1/verify", files={"image_a": (a.name, a.read_bytes()),
                                          "image_b": (b.name, b.read_bytes())}).json()
        assert c.get("/healthz").json()["text_model"] == "evidence"
        one = c.post("/v1/describe", files={"image": (a.name, a.read_bytes())},
                     data={"aspect": "skin_texture"}).json()
    assert out["text_model"] == "evidence"
    for tier in ("concise", "detailed"):
        assert out["explanation"][tier] == model.generate([load_rgb(a), load_rgb(b)], PAIR_QUESTIONS[tier])
    assert one["text_model"] == "evidence"
    assert one["answers"] == {"skin_texture": model.generate([load_rgb(a)], QA_QUESTIONS["skin_texture"])}


def test_a_dead_worker_is_replaced(server: BackgroundServer, pair: dict) -> None:
    """A worker process killed (as by a crash in native code or the OOM killer) costs at most the
    request it was running: the pool is replaced and the server goes on answering."""
    import signal
    (pid,) = server.app.state.pool.pids()
    os.kill(pid, signal.SIGKILL)
    statuses = []
    with httpx.Client(base_url=server.url, timeout=120, headers=bearer(TOKEN)) as c:
        for _ in range(3):
            r = c.post("/v1/verify", files=pair)
            statuses.append(r.status_code)
            if r.status_code == 200:
                break
            assert r.status_code == 500 and "restarted" in r.json()["error"]["message"]
        assert statuses[-1] == 200 and len(statuses) <= 2, statuses
        assert c.get("/healthz").json()["worker_restarts"] == 1
    assert pid not in server.app.state.pool.pids()


def _cli(*args: str, env: dict | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "facelm.cli", "serve", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


@pytest.mark.parametrize("host, token", [("0.0.0.0", ""), ("192.168.1.10", ""), ("::", "short")])
def test_cli_refuses_other_hosts_without_a_real_token(host: str, token: str) -> None:
    env = {**os.environ, "FACELM_TOKEN": token}
    proc = _cli("--host", host, "--port", "9", env=env)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, out
    assert "FACELM_TOKEN" in out and "Traceback" not in out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_server_keeps_uploads_off_disk_and_out_of_the_log(tmp_path: Path, deepface_dir: Path) -> None:
    """`facelm serve` as users start it, with TMPDIR pointed at an empty folder: a 2.3 MB upload
    (over Starlette's 1 MB spooling threshold) must leave no file there, and its name no log line."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    port = _free_port()
    env = {**os.environ, "TMPDIR": str(tmp), "FACELM_TOKEN": ""}
    # Warmed at start-up: importing onnxruntime writes a small session file (.ses) to TMPDIR,
    # which is not an upload; the snapshot is taken after it.
    proc = _cli("--port", str(port), "--workers", "1", env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        before = sorted(tmp.rglob("*"))
        photo = (deepface_dir / "images" / "img1.jpg").read_bytes()
        assert len(photo) > 2 * 1024 * 1024
        secret = "private-holiday-photo-name.jpg"
        r = httpx.post(base + "/v1/describe", files={"image": (secret, photo)},
                       data={"aspect": "pose"}, timeout=120)
        assert r.status_code == 200, r.text
        assert r.json()["analysis"]["source"] == secret
        assert sorted(tmp.rglob("*")) == before
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert "POST /v1/describe" in out and "200" in out  # the access log works...
    assert secret not in out                             # ...and never names the upload
