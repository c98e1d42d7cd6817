"""The server under hostile-but-fair clients (issue 14), against the real uvicorn server on a local
port with real photos: slow uploaders, aborted uploads, JSON of any depth, foreign Host names,
tokens in query strings, and a corpus of bad requests that must never get a 500 nor stop the server.

Limits are small so that the slow cases take seconds: 3 s to send a body, 10 bodies at once.
"""
from __future__ import annotations

import argparse
import base64
import logging
import select
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from facelm.serve.background import BackgroundServer
from facelm.serve.cli import add_parser, config_from_args
from facelm.serve.config import ConfigError, ServeConfig, token_from_env

BODY_TIMEOUT = 3.0
READERS = 10
MAX_UPLOAD = 1024 * 1024
TOKEN = "reliability-token-0123456789"
LOGGERS = ("uvicorn", "uvicorn.access")


class Records(logging.Handler):
    """Every record uvicorn's loggers pass on while attached (access records after its filters).
    Attach after a server starts: uvicorn's logging set-up removes the handlers of its loggers."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def attach(self) -> None:
        for name in LOGGERS:
            if self not in logging.getLogger(name).handlers:
                logging.getLogger(name).addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self) -> list[str]:
        return [r.getMessage() for r in self.records]

    def problems(self) -> list[str]:
        return [r.getMessage() for r in self.records if r.exc_info or r.levelno >= logging.ERROR]


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    cfg = ServeConfig(port=0, workers=1, queue=2, readers=READERS, body_timeout=BODY_TIMEOUT,
                      max_upload_bytes=MAX_UPLOAD)
    srv = BackgroundServer(cfg, log_level="info")
    with srv:
        yield srv


@pytest.fixture(scope="module")
def logs(server: BackgroundServer) -> Iterator[Records]:
    handler = Records()
    handler.attach()
    yield handler
    for name in LOGGERS:
        logging.getLogger(name).removeHandler(handler)


@pytest.fixture(scope="module")
def url(server: BackgroundServer) -> str:
    return server.url


@pytest.fixture(scope="module")
def port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def pair(lfw_dir: Path, lfw_pairs: list[dict]) -> dict:
    row = lfw_pairs[0]
    return {"image_a": ("a.jpg", (lfw_dir / row["file_a"]).read_bytes(), "image/jpeg"),
            "image_b": ("b.jpg", (lfw_dir / row["file_b"]).read_bytes(), "image/jpeg")}


def health(url: str) -> dict:
    r = httpx.get(url + "/healthz", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def wait_for(url: str, key: str, value: int, within: float = 5.0) -> dict:
    deadline = time.monotonic() + within
    while (h := health(url))[key] != value:
        assert time.monotonic() < deadline, f"{key} is {h[key]}, expected {value}"
        time.sleep(0.05)
    return h


def start_upload(port: int, length: int = 100_000, path: str = "/v1/verify") -> socket.socket:
    """A raw connection that announces a multipart body of `length` bytes and sends its start."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {length}\r\n"
                 f"Content-Type: multipart/form-data; boundary=XyZ\r\n\r\n--XyZ\r\n".encode())
    return sock


def slow_client(port: int, every: float) -> tuple[bytes, float]:
    """Trickle one byte every `every` s until the server answers; (its whole answer, seconds)."""
    t0 = time.monotonic()
    with start_upload(port) as sock:
        try:
            while not select.select([sock], [], [], every)[0]:
                sock.sendall(b"a")
        except OSError:
            pass  # the server closed first: its answer is still in our receive buffer
        answer = b""
        while chunk := sock.recv(65536):  # to EOF: the server must close the connection
            answer += chunk
    return answer, time.monotonic() - t0


# ---- item 6 of issue 14: slow uploaders, aborted uploads ----

def test_slow_uploaders_lock_nobody_out(url: str, port: int, pair: dict) -> None:
    """8 clients sending a byte every 0.3 s used to hold all 8 queue slots (every other request:
    503). Now they wait in the intake, normal requests are answered meanwhile, and each slow one
    gets 408 after the body timeout, with its connection closed."""
    with ThreadPoolExecutor(8) as pool, httpx.Client(base_url=url, timeout=60) as c:
        slow = [pool.submit(slow_client, port, 0.3) for _ in range(8)]
        h = wait_for(url, "receiving", 8)
        assert h["in_progress"] == 0  # receiving takes no analysis slot
        for _ in range(2):
            t0 = time.monotonic()
            r = c.post("/v1/verify", files=pair)
            assert r.status_code == 200, r.text
            print(f"verify while 8 slow clients trickle: {time.monotonic() - t0:.2f} s")
        assert not any(f.done() for f in slow)  # the slow clients were still sending all along
        answers = [f.result(timeout=BODY_TIMEOUT + 10) for f in slow]
    for answer, seconds in answers:
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert b"request_timeout" in answer and b"connection: close" in answer.lower()
        assert BODY_TIMEOUT - 0.1 <= seconds < BODY_TIMEOUT + 3
    h = health(url)
    assert h["receiving"] == 0 and h["timed_out"] >= 8 and h["rejected_busy"] == 0


def test_receiving_is_bounded_and_aborted_uploads_log_one_line(url: str, port: int, pair: dict,
                                                                logs: Records) -> None:
    socks = [start_upload(port) for _ in range(READERS)]
    try:
        wait_for(url, "receiving", READERS)
        r = httpx.post(url + "/v1/verify", files=pair, timeout=30)
        assert r.status_code == 503 and r.json()["error"]["type"] == "server_busy"
        assert int(r.headers["retry-after"]) >= 1
        before = len(logs.records)
    finally:
        for s in socks:
            s.close()  # the clients give up mid-upload
    wait_for(url, "receiving", 0)
    time.sleep(0.2)
    new = [r for r in logs.records[before:] if "GET /healthz" not in r.getMessage()]
    gone = [r.getMessage() for r in new if "disconnected" in r.getMessage()]
    assert len(gone) == READERS and all("POST /v1/verify" in g for g in gone), gone
    assert not [r for r in new if r.exc_info or r.levelno >= logging.ERROR]  # no tracebacks
    assert len(new) == READERS  # one line each: no access line for a response nobody received
    assert httpx.post(url + "/v1/verify", files=pair, timeout=60).status_code == 200


# ---- JSON of any depth, Host allow-list, tokens, the access log ----

@pytest.mark.parametrize("path", ["/v1/verify", "/v1/describe", "/v1/chat/completions"])
@pytest.mark.parametrize("body, words", [
    (b"[" * 200_000, "nested too deeply"),
    (b'{"image": ' + b"[" * 900 + b"]" * 900 + b"}", "more than 64 levels"),
    (b'{"seed": NaN}', "NaN is not a JSON value"),
    (b'{"seed": ' + b"9" * 5000 + b"}", "not valid JSON"),
])
def test_json_of_any_depth_is_a_400(url: str, path: str, body: bytes, words: str) -> None:
    r = httpx.post(url + path, content=body, headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == 400, r.text
    assert words in r.json()["error"]["message"]


@pytest.mark.parametrize("host, status", [
    ("evil.example", 400), ("evil.example:8000", 400), ("127.0.0.1.nip.io", 400), ("[::2]", 400),
    ("localhost", 200), ("LOCALHOST:9", 200), ("localhost.", 200), ("127.0.0.1:1", 200), ("[::1]:80", 200),
])
def test_host_allow_list_without_token(url: str, host: str, status: int) -> None:
    for path in ("/healthz", "/v1/aspects"):
        r = httpx.get(url + path, headers={"Host": host}, timeout=10)
        assert r.status_code == status, (path, r.text)
    if status == 400:
        assert r.json()["error"]["type"] == "invalid_host" and "--allowed-hosts" in r.json()["error"]["hint"]
        assert r.headers["x-content-type-options"] == "nosniff"  # refusals carry the headers too


def test_request_without_host_header_is_served(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:  # HTTP/1.0: no Host
        s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 200 ")


def test_host_allow_list_settings() -> None:
    assert ServeConfig().host_allowlist() == {"localhost", "127.0.0.1", "[::1]"}
    assert ServeConfig(host="::1").host_allowlist() == {"localhost", "127.0.0.1", "[::1]"}
    assert "my.lan" in ServeConfig(allowed_hosts=("My.LAN",)).host_allowlist()
    assert ServeConfig(allowed_hosts=("*",)).host_allowlist() is None
    assert ServeConfig(token=TOKEN).host_allowlist() is None  # a rebound page has no token
    assert ServeConfig(token=TOKEN, allowed_hosts=("a.lan",)).host_allowlist() >= {"a.lan", "localhost"}
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["serve", "--allowed-hosts", " a.lan, b.lan ,", "--body-timeout", "5",
                              "--readers", "3"])
    cfg = config_from_args(args)
    assert (cfg.allowed_hosts, cfg.body_timeout, cfg.readers) == (("a.lan", "b.lan"), 5.0, 3)


def test_query_strings_never_reach_the_access_log(url: str, logs: Records) -> None:
    before = len(logs.records)
    for path in ("/healthz?token=SECRET-IN-QUERY", "/v1/aspects?x=1&token=SECRET-IN-QUERY"):
        assert httpx.get(url + path, timeout=10).status_code == 200
    lines = logs.lines()[before:]
    assert any('"GET /healthz HTTP/1.1" 200' in line for line in lines), lines
    assert not [line for line in logs.lines() if "SECRET" in line or "?" in line]


def test_token_is_stripped_and_a_blank_one_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACELM_TOKEN", f"  {TOKEN}\n")
    assert token_from_env() == TOKEN
    monkeypatch.setenv("FACELM_TOKEN", "")
    assert token_from_env() is None  # empty: unset, as before
    monkeypatch.setenv("FACELM_TOKEN", " \t\n")
    with pytest.raises(ConfigError, match="blank"):
        ServeConfig(token=token_from_env()).validate()


def test_cli_refuses_a_blank_token_in_one_line() -> None:
    env = {"FACELM_TOKEN": "   ", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "facelm.cli", "serve", "--port", "9"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "FACELM_TOKEN is blank" in proc.stderr


@pytest.fixture(scope="module")
def token_url(logs: Records) -> Iterator[str]:
    # Models not warmed: every request here is refused before it reaches a worker.
    with BackgroundServer(ServeConfig(port=0, token=TOKEN, workers=1, warm=False), log_level="info") as u:
        logs.attach()
        yield u


@pytest.mark.parametrize("headers, query", [
    ({}, ""), ({"Authorization": "Bearer"}, ""), ({"Authorization": "bearer   " + TOKEN.upper()}, ""),
    ({"Authorization": f"Basic {TOKEN}"}, ""), ({"Authorization": TOKEN}, ""),
    ({"Authorization": f"Bearer {TOKEN[:-1]}"}, ""), ({"Authorization": "Bearer " + "x" * 8000}, ""),
    ({"Authorization": b"Bearer \xff\xfe\x80"}, ""), ({}, f"?token={TOKEN}"),
])
def test_bad_tokens_are_401(token_url: str, pair: dict, headers: dict, query: str, logs: Records) -> None:
    with httpx.Client(base_url=token_url, timeout=30) as c:
        r = c.post("/v1/verify" + query, files=pair, headers=headers)
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
        assert c.get("/v1/models", headers=headers).status_code == 401
        # With a token a foreign Host is answered (the token is the defence), still with 401.
        assert c.get("/v1/models", headers={**headers, "Host": "evil.example"}).status_code == 401
    assert not [line for line in logs.lines() if TOKEN in line]


# ---- the bad-request corpus: no 500, no dead server (the table in docs/reliability.md) ----

def _multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "B0und") -> bytes:
    out = b""
    for name, filename, data in parts:
        fn = f'; filename="{filename}"' if filename is not None else ""
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"{fn}\r\n\r\n'.encode()
        out += data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def _png(width: int, height: int, seed: int = 0) -> bytes:
    import io

    import numpy as np
    from PIL import Image
    noise = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, format="PNG")
    return buf.getvalue()


Case = tuple[str, str, str, Any, int]  # (case, method, path, httpx kwargs or raw bytes, expected status)
JSON = {"content-type": "application/json"}
MULTIPART = {"content-type": "multipart/form-data; boundary=B0und"}


def _jpost(body: bytes | dict, path: str = "/v1/verify") -> tuple[str, str, dict]:
    return "POST", path, {"json": body} if isinstance(body, dict) else {"content": body, "headers": JSON}


def _mpost(parts: list, path: str = "/v1/verify", cut: int | None = None) -> tuple[str, str, dict]:
    body = _multipart(parts)
    return "POST", path, {"content": body[:cut] if cut else body, "headers": MULTIPART}


def _pair(a: bytes, b: bytes) -> list[tuple[str, str, bytes]]:
    return [("image_a", "a.jpg", a), ("image_b", "b.jpg", b)]


def _chat(**kw: Any) -> tuple[str, str, dict]:
    return _jpost({"messages": [{"role": "user", "content": "hi"}], **kw}, "/v1/chat/completions")


def _image_part(url: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


def json_cases(photo: bytes) -> list[Case]:
    b64 = base64.b64encode(photo).decode()
    two = {"image_a": b64, "image_b": b64}
    return [
        ("JSON: 200,000 nested `[`", *_jpost(b"[" * 200_000), 400),
        ("JSON: 900 nested `[` inside an object", *_jpost(b'{"a":' + b"[" * 900 + b"]" * 900 + b"}"), 400),
        ("JSON: truncated", *_jpost(b'{"image_a": "abc'), 400),
        ("JSON: empty body", *_jpost(b""), 400),
        ("JSON: non-UTF-8 bytes", *_jpost(b'{"image_a": "\xff\xfe"}'), 400),
        ("JSON: NaN / Infinity", *_jpost(b'{"image_a": NaN, "seed": -Infinity}'), 400),
        ("JSON: 5,000-digit integer", *_jpost(b'{"seed": ' + b"7" * 5000 + b"}"), 400),
        ("JSON: top level is an array", *_jpost(b"[]"), 400),
        ("JSON: top level is a string", *_jpost(b'"x"'), 400),
        ("JSON: top level is null", *_jpost(b"null"), 400),
        ("JSON: image_a is a number", *_jpost({**two, "image_a": 5}), 422),
        ("JSON: image_a is not base64", *_jpost({**two, "image_a": "%%%"}), 422),
        ("JSON: base64 of text, not an image", *_jpost({**two, "image_a": "aGVsbG8="}), 422),
        ("JSON: seed 1e400 (inf)", *_jpost(f'{{"image_a": "{b64}", "image_b": "{b64}", "seed": 1e400}}'.encode()), 422),
        ("JSON: seed 10**30 (valid, huge)", *_jpost({**two, "seed": 10**30}), 200),
        ("JSON: threshold '1e999'", *_jpost({**two, "threshold": "1e999"}), 422),
        ("JSON: fast 'maybe'", *_jpost({**two, "fast": "maybe"}), 422),
        ("JSON: aspect is a list", *_jpost({"image": b64, "aspect": ["pose"]}, "/v1/describe"), 422),
        ("JSON: image over the size limit", *_jpost({"image": "A" * (MAX_UPLOAD * 2)}, "/v1/describe"), 413),
        ("JSON in UTF-16, no image", "POST", "/v1/verify",
         {"content": "{}".encode("utf-16"), "headers": {"content-type": "application/json; charset=utf-16"}}, 422),
    ]


def upload_cases(photo: bytes) -> list[Case]:
    return [
        ("content type text/plain", "POST", "/v1/verify", {"content": b"x", "headers": {"content-type": "text/plain"}}, 415),
        ("no content type", "POST", "/v1/verify", {"content": b"x"}, 415),
        ("urlencoded form", "POST", "/v1/verify", {"data": {"image_a": "x"}}, 415),
        ("multipart without boundary", "POST", "/v1/verify",
         {"content": b"x", "headers": {"content-type": "multipart/form-data"}}, 400),
        ("multipart: garbage body", "POST", "/v1/verify", {"content": b"\x00" * 500, "headers": MULTIPART}, 400),
        ("multipart: truncated in the second file", *_mpost(_pair(photo, photo), cut=len(photo) + 300), 422),
        ("multipart: 17 parts", *_mpost([(f"f{i}", None, b"1") for i in range(17)]), 400),
        ("multipart: 5,000-byte text field", *_mpost([*_pair(photo, photo), ("seed", None, b"1" * 5000)]), 413),
        ("multipart: file over the size limit", *_mpost(_pair(b"\xff" * (MAX_UPLOAD + 10), photo)), 413),
        ("multipart: image in a wrong field", *_mpost([("photo", "a.jpg", photo)], "/v1/describe"), 422),
        ("upload: 0 bytes", *_mpost(_pair(b"", photo)), 422),
        ("upload: text named .jpg", *_mpost(_pair(b"hello, not a photo", photo)), 422),
        ("upload: PDF", *_mpost(_pair(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", photo)), 422),
        ("upload: JPEG cut in half", *_mpost(_pair(photo[: len(photo) // 2], photo)), 422),
        ("upload: PNG of noise (no face)", *_mpost(_pair(_png(96, 96), photo)), 422),
    ]


def chat_and_protocol_cases(photo: bytes) -> list[Case]:
    data_url = "data:image/jpeg;base64," + base64.b64encode(photo).decode()
    head = b"POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=B0und\r\n"
    return [
        ("chat: 200,000 nested `[`", *_jpost(b"[" * 200_000, "/v1/chat/completions"), 400),
        ("chat: messages is a string", *_jpost({"messages": "hi"}, "/v1/chat/completions"), 422),
        ("chat: remote image URL", *_chat(messages=[{"role": "user", "content": [_image_part("http://x/a.jpg")]}]), 400),
        ("chat: data URL of text", *_chat(messages=[{"role": "user", "content": [
            _image_part("data:image/png;base64,aGVsbG8="), {"type": "text", "text": "who?"}]}]), 422),
        ("chat: 5 images", *_chat(messages=[{"role": "user", "content": [_image_part(data_url)] * 5}]), 413),
        ("chat: stream 'yes'", *_chat(stream="yes"), 422),
        ("chat: n = 2", *_chat(n=2), 400),
        ("chat: max_tokens -1", *_chat(max_tokens=-1), 422),
        ("chat: temperature 'hot'", *_chat(temperature="hot"), 422),
        ("chat: part of type audio", *_chat(messages=[{"role": "user", "content": [{"type": "audio"}]}]), 422),
        ("GET on a POST route", "GET", "/v1/verify", {}, 405),
        ("unknown path", "GET", "/v1/nothing", {}, 404),
        ("Host: evil.example (no token)", "GET", "/v1/aspects", {"headers": {"Host": "evil.example"}}, 400),
        ("raw: Content-Length 100 MB, body not sent", "RAW", "", head + b"Content-Length: 104857600\r\n\r\n", 413),
        ("raw: Content-Length 'abc'", "RAW", "", head + b"Content-Length: abc\r\n\r\n", 400),
        ("raw: not HTTP (a TLS hello)", "RAW", "", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64, 400),
        ("raw: a 64 KB header line (served)", "RAW", "",
         b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX: " + b"a" * 65536 + b"\r\n\r\n", 200),
    ]


def _raw(port: int, request: bytes) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        try:
            s.sendall(request)
        except OSError:
            pass  # refused while sending: the status is already on its way
        head = s.recv(64)
    return int(head.split(b" ")[1])


def test_a_64_kb_header_is_served_however_tcp_splits_it(port: int) -> None:
    """The corpus's 64 KB header line, sent in 4 KB pieces: h11's default limit (16 KB of
    incomplete headers) refused it whenever it arrived in pieces, as it once did on CI."""
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX: " + b"a" * 65536 + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        for i in range(0, len(request), 4096):
            s.sendall(request[i: i + 4096])
            time.sleep(0.005)
        assert s.recv(64).startswith(b"HTTP/1.1 200 ")


def test_bad_request_corpus_gets_no_500_and_the_server_lives(url: str, port: int, portrait_path: Path,
                                                             pair: dict, logs: Records) -> None:
    before = len(logs.records)
    got = {}
    with httpx.Client(base_url=url, timeout=60) as c:
        photo = portrait_path.read_bytes()
        for case, method, path, kw, want in json_cases(photo) + upload_cases(photo) + chat_and_protocol_cases(photo):
            status = _raw(port, kw) if method == "RAW" else c.request(method, path, **kw).status_code
            got[case] = (status, want)
            print(f"| {case} | {status} |")
    wrong = {case: sw for case, sw in got.items() if sw[0] != sw[1]}
    assert not wrong, wrong  # (got, expected); in particular no 500
    assert not [m for r in logs.records[before:] if (m := r.getMessage()) and (r.exc_info or "500" in m)]
    assert health(url)["status"] == "ok"
    assert httpx.post(url + "/v1/verify", files=pair, timeout=60).status_code == 200
