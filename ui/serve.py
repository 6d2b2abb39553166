"""Serving the status page with uvicorn: access logs (and uvicorn's own messages) go
to files, warnings still reach the console, and the URL is announced once the server
answers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn


def log_config(folder: Path) -> dict[str, Any]:
    """uvicorn's logging: ``access.log`` (a line per request) and ``server.log`` in
    ``folder``; warnings and errors also on the console."""
    folder.mkdir(parents=True, exist_ok=True)
    formatter = {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": formatter},
        "handlers": {
            "access": {
                "class": "logging.FileHandler",
                "filename": str(folder / "access.log"),
                "formatter": "plain",
            },
            "server": {
                "class": "logging.FileHandler",
                "filename": str(folder / "server.log"),
                "formatter": "plain",
            },
            "console": {"class": "logging.StreamHandler", "level": "WARNING", "formatter": "plain"},
        },
        "loggers": {
            "uvicorn": {"handlers": ["server", "console"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"handlers": ["server", "console"], "level": "INFO", "propagate": False},
            "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        },
    }


def serve(app: Any, host: str, port: int, logs: Path, announce: Callable[[str], None]) -> None:
    """Run ``app`` on ``host:port`` until interrupted; ``announce(url)`` once it listens."""
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_config=log_config(logs)))
    url = f"http://{host}:{port}"

    def wait_then_announce() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.1)
        if server.started:
            announce(url)

    threading.Thread(target=wait_then_announce, daemon=True).start()
    server.run()
