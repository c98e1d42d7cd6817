"""Run the server in a background thread of this process: for tests, notebooks and benchmarks.

    with BackgroundServer(ServeConfig(port=0)) as url:   # port 0: the OS picks a free port
        httpx.get(url + "/healthz")

It is the real uvicorn server on a real socket; only the process is shared. The analysis workers are
separate processes started with "spawn", which re-imports the main module: in a script, start the
server under `if __name__ == "__main__":` (and not from code piped to `python -`).
"""
from __future__ import annotations

import threading
import time
from typing import Any

from .config import MAX_HEADER_BYTES, ServeConfig, base_url


class BackgroundServer:
    """Context manager: start uvicorn with `create_app(config)` and stop it on exit."""

    def __init__(self, config: ServeConfig, *, start_timeout: float = 180.0, log_level: str = "warning"):
        self.config = config
        self.start_timeout = start_timeout
        self.log_level = log_level
        self.url = ""
        self.app: Any = None          # the FastAPI app, once started (app.state.pool, .config)
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> str:
        import uvicorn

        from .app import create_app
        app = self.app = create_app(self.config)
        self._server = uvicorn.Server(uvicorn.Config(
            app, host=self.config.host, port=self.config.port, log_level=self.log_level,
            lifespan="on", h11_max_incomplete_event_size=MAX_HEADER_BYTES))
        self._thread = threading.Thread(target=self._server.run, name="facelm-serve", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the server stopped during start-up; see the log above")
            if time.monotonic() > deadline:
                self._stop()
                raise TimeoutError(f"the server did not start within {self.start_timeout:.0f} s")
            time.sleep(0.05)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = base_url(self.config.host, port)
        return self.url

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
