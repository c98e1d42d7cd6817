"""Hugging Face hub names without a network: fail in seconds with the offline hint.

Left alone, transformers retries each of a model's files for minutes when the hub cannot be reached
(3.5 minutes of silence for one name). Before loading a hub name, facelm checks once, with a short
timeout, whether the hub answers (through the HTTPS proxy the environment sets, if any). When it
does not, or HF_HUB_OFFLINE is set, a cached model loads from the cache only and an uncached one is
refused at once.
"""
from __future__ import annotations

import os
import threading
from typing import Any

from ..errors import ModelNotInstalledError

HUB_TIMEOUT_S = 3.0
OFFLINE_HINT = ("offline? download it once with `hf download NAME`, copy the Hugging Face cache "
                "from a machine that has it, or give a local folder")
_TRUE = ("1", "true", "yes", "on")


def offline_by_env() -> bool:
    return any(os.environ.get(k, "").strip().lower() in _TRUE
               for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def hub_reachable(timeout: float = HUB_TIMEOUT_S) -> bool:
    """Whether the hub answers an HTTP request (any status) within about `timeout` seconds,
    through the proxy the environment sets, as a download would. An HTTP answer, not a TCP
    connection: networks that intercept connections accept any. The request runs in a thread
    because name resolution (getaddrinfo) takes no timeout of its own."""
    ok: list[bool] = []

    def probe() -> None:
        import httpx
        try:
            httpx.head(f"{endpoint()}/api/models", timeout=timeout)
            ok.append(True)
        except (httpx.HTTPError, OSError, ValueError):
            ok.append(False)
    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 1.0)
    return bool(ok and ok[0])


def is_cached(name: str) -> bool:
    from huggingface_hub import try_to_load_from_cache
    return isinstance(try_to_load_from_cache(name, "config.json"), str)


def hub_kwargs(name: str) -> dict[str, Any]:
    """Extra `from_pretrained` arguments for the hub name `name`: none when the hub is reachable,
    local_files_only when it is not but the model is cached; else ModelNotInstalledError."""
    if not offline_by_env() and hub_reachable():
        return {}
    if is_cached(name):
        return {"local_files_only": True}
    why = "HF_HUB_OFFLINE is set" if offline_by_env() else \
        f"the Hugging Face hub ({endpoint()}) did not answer within {HUB_TIMEOUT_S:g} s"
    raise ModelNotInstalledError(f"not in the local Hugging Face cache, and {why}", item=name,
                                 hint=OFFLINE_HINT)
