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
    """SQLite-backed; ``FactsCache(None)`` is an in-memory cache for one run."""

    VERSION = 1

    def __init__(self, path: str | Path | None) -> None:
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path) if path else ":memory:", check_same_thread=False)
        self.db.executescript(SCHEMA)
        self.pending = 0

    def lookup(self, key: str) -> tuple[str, dict[str, Any] | None] | None:
        """(sha256, facts) of a listing entry in one query; facts None when stale."""
        row = self.db.execute(
            "SELECT f.sha256, x.facts FROM files f LEFT JOIN facts x USING (sha256) WHERE f.key = ?", (key,)
        ).fetchone()
        if not row:
            return None
        facts = json.loads(row[1]) if row[1] else None
        return row[0], (facts if facts and facts.get("v") == self.VERSION else None)

    def get(self, sha256: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT facts FROM facts WHERE sha256 = ?", (sha256,)).fetchone()
        if not row:
            return None
        facts: dict[str, Any] = json.loads(row[0])
        return facts if facts.get("v") == self.VERSION else None

    def put(self, sha256: str, facts: dict[str, Any], file_key: str | None = None) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO facts VALUES (?, ?)",
            (sha256, json.dumps({**facts, "v": self.VERSION})),
        )
        if file_key:
            self.db.execute("INSERT OR REPLACE INTO files VALUES (?, ?)", (file_key, sha256))
        self.pending += 1
        if self.pending >= 500:
            self.commit()

    def commit(self) -> None:
        self.db.commit()
        self.pending = 0

    def close(self) -> None:
        self.commit()
        self.db.close()
