"""The answers of ``response_format=url``: PNG files kept in memory, bounded, expiring, under unguessable ids.

OpenAI's image URLs are unauthenticated and expire after an hour; these behave the same way. An id is 192
random bits (``secrets.token_urlsafe(24)``): the URL is the capability, so ``GET /v1/files/<id>.png`` needs
no API key (a browser's ``<img src>`` cannot send one). A file is forgotten when it expires (``ttl_s``), or
earlier, oldest first, when keeping it would pass ``max_files`` files or ``max_bytes`` bytes. Nothing is
written to disk. Thread-safe: files are put from the request threadpool and read from the event loop.
"""

from __future__ import annotations

import collections
import re
import secrets
import threading
import time
from typing import Callable

__all__ = ["FileStore", "FILE_NAME"]

FILE_NAME = re.compile(r"[A-Za-z0-9_-]{32}\.(png|webp|jpeg)")
"""The only file names the store hands out: 32 URL-safe characters (192 bits) and the image's format."""
MEDIA_TYPES = {"png": "image/png", "webp": "image/webp", "jpeg": "image/jpeg"}


class FileStore:
    """PNG bytes by id, at most ``max_files`` files and ``max_bytes`` bytes, each for ``ttl_s`` seconds."""

    def __init__(self, max_files: int = 256, max_bytes: int = 512 * 2**20, ttl_s: float = 3600.0,
                 clock: Callable[[], float] = time.monotonic):
        self.max_files, self.max_bytes, self.ttl_s = max_files, max_bytes, ttl_s
        self.clock = clock
        self._files: collections.OrderedDict[str, tuple[bytes, float]] = collections.OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, data: bytes, fmt: str = "png") -> str:
        """Keep ``data`` (an image in ``fmt``); returns its file name (``<id>.<fmt>``). Evicts expired files, then
        the oldest.

        Raises:
            ValueError: ``data`` alone is larger than ``max_bytes``.
        """
        if len(data) > self.max_bytes:
            raise ValueError(f"an answer of {len(data):,} bytes is over the URL store's {self.max_bytes:,} bytes")
        name = f"{secrets.token_urlsafe(24)}.{MEDIA_TYPES[fmt] and fmt}"
        with self._lock:
            self._expire()
            while self._files and (len(self._files) >= self.max_files or self._bytes + len(data) > self.max_bytes):
                self._drop(next(iter(self._files)))
            self._files[name] = (data, self.clock() + self.ttl_s)
            self._bytes += len(data)
        return name

    def get(self, name: str) -> tuple[bytes, float] | None:
        """The file's bytes and its seconds left, or ``None`` (malformed name, unknown, or expired)."""
        if not FILE_NAME.fullmatch(name):
            return None
        with self._lock:
            self._expire()
            entry = self._files.get(name)
            if entry is None:
                return None
            data, expires = entry
            return data, expires - self.clock()

    @staticmethod
    def media_type(name: str) -> str:
        return MEDIA_TYPES[name.rsplit(".", 1)[-1]]

    def stats(self) -> dict[str, int]:
        with self._lock:
            self._expire()
            return {"files": len(self._files), "bytes": self._bytes}

    def _expire(self) -> None:
        now = self.clock()
        # Insertion order is expiry order (one ttl for all): stop at the first file still valid.
        while self._files:
            name, (_, expires) = next(iter(self._files.items()))
            if expires > now:
                break
            self._drop(name)

    def _drop(self, name: str) -> None:
        data, _ = self._files.pop(name)
        self._bytes -= len(data)
