"""The server's settings: one frozen dataclass, checked once before anything starts."""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

from ..imageio import DEFAULT_MAX_PIXELS

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
# 10 MB holds any camera JPEG; a face tool never needs more, and it bounds memory per request.
DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024
# uvicorn's HTTP/1.1 parser (h11) refuses a request whose headers are still incomplete past this
# many bytes. h11's own default (16 KB) made a 64 KB header line succeed or fail by how TCP split
# it (all in one read: served; in pieces: 400, seen once on CI), so the limit is stated here.
MAX_HEADER_BYTES = 256 * 1024
TOKEN_ENV = "FACELM_TOKEN"
# Tokens shorter than this are guessable by brute force over the network.
MIN_TOKEN_LENGTH = 16
# Host names a browser uses for this machine. A page on another site that re-points its own name
# at 127.0.0.1 (DNS rebinding) sends its own name as Host, so only these are accepted by default.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
ANY_HOST = "*"


class ConfigError(ValueError):
    """Settings that would make the server unsafe or unusable; the message says what to change."""


@dataclass(frozen=True)
class ServeConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = None              # when set, every /v1 request needs `Bearer <token>`
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES   # per image
    max_pixels: int = DEFAULT_MAX_PIXELS                # per image, after JPEG reduction on decode
    workers: int = 2                      # analysis processes (each holds its own copy of the models)
    queue: int = 8                        # requests admitted at once (running + waiting); more -> 503
    model: str | None = None              # FaceVLM spec for chat and for verify/describe text
    warm: bool = True                     # load and run the face models in every worker at start-up
    max_images_per_chat: int = 4
    # Request bodies are received before admission, each within body_timeout seconds (else 408),
    # at most `readers` at once (else 503): slow uploaders cannot hold the analysis queue.
    body_timeout: float = 60.0
    readers: int = 32
    # Extra Host header names to accept; ("*",) turns the check off. Empty: the check is on only
    # without a token, and accepts the loopback names (see host_allowlist).
    allowed_hosts: tuple[str, ...] = ()
    # A search gallery folder (facelm index build) for /v1/search; None: the route answers 503.
    index: str | None = None

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def host_allowlist(self) -> frozenset[str] | None:
        """Host names (no port) the server answers to, or None for any. With a token a rebound
        page cannot authenticate, so the check is on by default only for the token-less server."""
        if ANY_HOST in self.allowed_hosts or (self.token and not self.allowed_hosts):
            return None
        return frozenset(host_name(h) for h in (*LOOPBACK_NAMES, self.host, *self.allowed_hosts))

    def validate(self) -> "ServeConfig":
        """Raise ConfigError for unsafe or impossible settings; return self for chaining."""
        if self.token is not None and not self.token.strip():
            raise ConfigError(f"{TOKEN_ENV} is blank (only whitespace); set it to a secret of at "
                              f"least {MIN_TOKEN_LENGTH} characters, or unset it")
        if not self.loopback and not self.token:
            raise ConfigError(
                f"refusing to listen on {self.host} without a token: anyone who can reach it could "
                f"use it. Set {TOKEN_ENV} to a secret of at least {MIN_TOKEN_LENGTH} characters "
                f"(e.g. `export {TOKEN_ENV}=$(python -c 'import secrets; print(secrets.token_urlsafe())')`), "
                f"or serve on 127.0.0.1")
        if self.token is not None and len(self.token) < MIN_TOKEN_LENGTH:
            raise ConfigError(f"{TOKEN_ENV} is {len(self.token)} characters; use at least "
                              f"{MIN_TOKEN_LENGTH} (e.g. secrets.token_urlsafe())")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} is not between 0 and 65535")
        if self.workers < 1 or self.queue < 1:
            raise ConfigError("--workers and --queue must be at least 1")
        if self.max_upload_bytes < 1024 or self.max_pixels < 4096:
            raise ConfigError("--max-upload-mb and --max-pixels are too small for any face photo")
        if not self.body_timeout > 0 or self.readers < 1:
            raise ConfigError("--body-timeout must be above 0 and --readers at least 1")
        return self


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, 'localhost')."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to a public address


def base_url(host: str, port: int) -> str:
    """http://host:port, with an IPv6 address in brackets."""
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}"


def host_name(value: str) -> str:
    """A Host header value (or a configured name) without its port, lower case, IPv6 in brackets:
    'LocalHost:8000' -> 'localhost', '[::1]:80' -> '[::1]', '::1' -> '[::1]'."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[:value.find("]") + 1] if "]" in value else value
    if value.count(":") > 1:                 # a bare IPv6 address (only from configuration)
        return f"[{value}]"
    return value.partition(":")[0].rstrip(".")  # "localhost." is the same name


def token_from_env() -> str | None:
    """The token from FACELM_TOKEN without surrounding whitespace (a trailing newline from
    `$(cat file)` would otherwise never match); an empty value counts as unset, a blank one is
    kept so that validate() refuses it."""
    value = os.environ.get(TOKEN_ENV)
    return value.strip() if value else None
