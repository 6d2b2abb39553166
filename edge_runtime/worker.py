"""A background thread that takes items from a bounded queue, for work that must not
slow a request down (the prediction log, shadow comparisons). ``offer`` never blocks:
when the queue is full the item is refused and the caller counts it."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class QueueWorker(Generic[T]):
    def __init__(
        self, name: str, handle: Callable[[T], None], on_error: Callable[[Exception], None], queue_size: int
    ) -> None:
        self.name = name
        self._handle = handle
        self._on_error = on_error
        self._queue: queue.Queue[T | None] = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def offer(self, item: T) -> bool:
        """Queue ``item``; False (nothing queued) when the queue is full."""
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            return False
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def join(self) -> None:
        """Wait until every queued item has been handled."""
        self._queue.join()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._handle(item)
            except Exception as exc:  # one bad item must not stop the worker
                self._on_error(exc)
            finally:
                self._queue.task_done()
