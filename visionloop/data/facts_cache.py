"""A persistent cache of what decoding an image told us, keyed by content hash.

Re-versioning a folder after adding 1% new images must not decode the other 99%:
``files`` maps a listing entry (URI, size, change stamp) to its sha256, so an unchanged
file is not even read; ``facts`` maps a sha256 to its decode facts. Label rules are
never cached: they are cheap and labels change independently of pixels.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (key TEXT PRIMARY KEY, sha256 TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS facts (sha256 TEXT PRIMARY KEY, facts TEXT NOT NULL);
"""


class FactsCache:
    """SQLite-backed; ``FactsCache(None)`` is an in-memory cache for one run.

    Writes are buffered (at most ``BATCH`` rows, which lookups see) and committed in one
    ``executemany`` per table, so a cold run pays a statement per batch, not two per
    image."""

    VERSION = 1
    BATCH = 500
    # SQLite's page cache, in KiB. Its default (2 MiB) fills as the file grows, so a run
    # over 10,000 images held 1.5 MiB more than one over 1,000; a lookup in a cache this
    # size costs at most a read from the OS page cache: 10,000 lookups took 40-75 ms
    # with either size.
    CACHE_KIB = 512

    def __init__(self, path: str | Path | None) -> None:
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path) if path else ":memory:", check_same_thread=False)
        self.db.execute(f"PRAGMA cache_size = -{self.CACHE_KIB}")
        self.db.executescript(SCHEMA)
        self._facts: dict[str, str] = {}
        self._files: dict[str, str] = {}
        self._reads = 0
        self._parsed: dict[str, dict[str, Any]] = {}
        self._batch: dict[str, tuple[str, str | None] | None] = {}

    @property
    def pending(self) -> int:
        return len(self._facts) + len(self._files)

    def _read(self) -> None:
        """Keep a read transaction open across lookups: outside one, SQLite takes and
        drops its file lock for every statement, which costs more than the query. It is
        ended every ``BATCH`` reads so that another process can write in between."""
        self._reads += 1
        if self._reads >= self.BATCH:
            self._reads = 0
            self.commit()
        if not self.db.in_transaction:
            self.db.execute("BEGIN")

    def prefetch(self, keys: list[str]) -> None:
        """Look up a batch of listing entries (at most a few hundred) in one query, for the
        ``lookup`` calls that follow; replaces the previous batch."""
        self._read()
        batch: dict[str, tuple[str, str | None] | None] = dict.fromkeys(keys)
        query = (
            "SELECT f.key, f.sha256, x.facts FROM files f LEFT JOIN facts x USING (sha256) "
            f"WHERE f.key IN ({','.join('?' * len(keys))})"
        )
        for key, sha, text in self.db.execute(query, keys) if keys else ():
            batch[key] = (sha, text)
        self._batch = batch

    def lookup(self, key: str) -> tuple[str, dict[str, Any] | None] | None:
        """(sha256, facts) of a listing entry in one query (none when it was prefetched);
        facts None when stale."""
        sha = self._files.get(key)
        if sha is not None:
            return sha, self.get(sha)
        if key in self._batch:
            hit = self._batch[key]
            if hit is None:
                return None
            return hit[0], self._parse(self._facts.get(hit[0], hit[1]))
        self._read()
        row = self.db.execute(
            "SELECT f.sha256, x.facts FROM files f LEFT JOIN facts x USING (sha256) WHERE f.key = ?", (key,)
        ).fetchone()
        if not row:
            return None
        return row[0], self._parse(self._facts.get(row[0], row[1]))

    def get(self, sha256: str) -> dict[str, Any] | None:
        text = self._facts.get(sha256)
        if text is None:
            self._read()
            row = self.db.execute("SELECT facts FROM facts WHERE sha256 = ?", (sha256,)).fetchone()
            text = row[0] if row else None
        return self._parse(text)

    def _parse(self, text: str | None) -> dict[str, Any] | None:
        """The facts in ``text`` (a fresh dict), or None when stale. Images of one
        camera share their facts word for word, so the parsed dicts are remembered."""
        if not text:
            return None
        facts = self._parsed.get(text)
        if facts is None:
            facts = json.loads(text)
            if len(self._parsed) >= 256:
                self._parsed.clear()
            self._parsed[text] = facts
        return dict(facts) if facts.get("v") == self.VERSION else None

    def put(self, sha256: str, facts: dict[str, Any], file_key: str | None = None) -> None:
        self._facts[sha256] = json.dumps({**facts, "v": self.VERSION})
        if file_key:
            self._files[file_key] = sha256
        if self.pending >= self.BATCH:
            self.commit()

    def flush(self) -> None:
        """Write the buffered rows (not yet committed). A prefetched batch is dropped: it
        may predate facts that were buffered until now."""
        self._batch = {}
        if self._facts:
            self.db.executemany("INSERT OR REPLACE INTO facts VALUES (?, ?)", self._facts.items())
            self._facts.clear()
        if self._files:
            self.db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?)", self._files.items())
            self._files.clear()

    def commit(self) -> None:
        self.flush()
        self.db.commit()

    def close(self) -> None:
        self.commit()
        self.db.close()
