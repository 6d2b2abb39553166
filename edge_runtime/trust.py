"""Who may sign what a device installs: TUF's roles, simplified to two.

* The **root** key is kept offline. It signs only the channel's key document
  (``keys/keys.json``): the signing keys in service and the revoked ones.
* The **signing** key is online (the pipeline's). It signs pointers and manifests.

A device is configured out of band with the root's public key (``--root-key``) and/or a
signing key it trusts from the start (``--public-key``, the only option before key
documents existed). The key document is read from the channel on every check; a
device accepts it only when the root's signature holds and its ``version`` is above the
one it has (equal: it must be the same document), and persists it
(``<state>/trust.json``), so a restart, or a channel that serves an older document,
cannot bring back a revoked key. Anything signed by a revoked key is refused, whatever
else trusted it.

Key document (``keys/keys.json``)::

    {"type": "keys", "format": 1, "version": 2, "created_at": "...", "reason": "...",
     "root_key_id": "<16 hex>", "signing_keys": {"<key id>": "<base64 raw public key>"},
     "revoked": ["<key id>", ...], "signature": "<base64 Ed25519 by root over the rest>"}
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_runtime import ed25519
from edge_runtime.storage import atomic_write

log = logging.getLogger(__name__)

KEYS_DOCUMENT = "keys/keys.json"
KEYS_TYPE = "keys"
KEYS_FORMAT = 1
MAX_KEYS_BYTES = 64 * 1024


class VerificationError(ValueError):
    """A channel object failed verification; the message names the object and why."""


def canonical_json(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def unsigned_body(doc: dict[str, Any]) -> bytes:
    """The bytes a document's signature covers: the document without its signature."""
    return canonical_json({k: v for k, v in doc.items() if k != "signature"})


def parse_json(what: str, data: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise VerificationError(f"{what}: not valid JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise VerificationError(f"{what}: expected a JSON object")
    return doc


def signature_holds(message: bytes, signature_b64: str, public_key: bytes) -> bool:
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (ValueError, TypeError):
        return False
    return ed25519.verify(public_key, message, signature)


@dataclass(frozen=True)
class KeyDocument:
    version: int
    root_key_id: str
    signing_keys: dict[str, bytes]
    revoked: frozenset[str]
    created_at: str
    reason: str
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, data: bytes, root_public: bytes) -> KeyDocument:
        """Parse and verify a key document against the root's public key."""
        what = f"key document {KEYS_DOCUMENT}"
        if len(data) > MAX_KEYS_BYTES:
            raise VerificationError(f"{what}: {len(data)} bytes, over the {MAX_KEYS_BYTES} allowed")
        doc = parse_json(what, data)
        if not signature_holds(unsigned_body(doc), str(doc.get("signature", "")), root_public):
            raise VerificationError(
                f"{what}: bad signature (not signed by the root key {ed25519.key_id(root_public)}, or altered)"
            )
        if doc.get("type") != KEYS_TYPE or doc.get("format") != KEYS_FORMAT:
            raise VerificationError(f"{what}: type/format {doc.get('type')!r}/{doc.get('format')!r} unknown")
        version = doc.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise VerificationError(f"{what}: version {version!r} is not a positive integer")
        keys = doc.get("signing_keys")
        revoked = doc.get("revoked", [])
        if not isinstance(keys, dict) or not isinstance(revoked, list):
            raise VerificationError(f"{what}: signing_keys must be an object and revoked a list")
        signing: dict[str, bytes] = {}
        for key_id, b64 in keys.items():
            try:
                raw = base64.b64decode(str(b64), validate=True)
            except ValueError as exc:
                raise VerificationError(f"{what}: key {key_id} is not base64") from exc
            if len(raw) != 32 or ed25519.key_id(raw) != key_id:
                raise VerificationError(f"{what}: key {key_id} is not a 32-byte key with that id")
            signing[key_id] = raw
        return cls(
            version=version,
            root_key_id=str(doc.get("root_key_id", "")),
            signing_keys=signing,
            revoked=frozenset(str(k) for k in revoked),
            created_at=str(doc.get("created_at", "")),
            reason=str(doc.get("reason", "")),
            raw=doc,
        )


class Keyring:
    """The keys one device trusts (see the module docstring). Thread-safe: the agents of
    both stages share one."""

    def __init__(
        self, keys: list[bytes] | tuple[bytes, ...] = (), root: bytes | None = None, path: Path | None = None
    ) -> None:
        self.pinned = {ed25519.key_id(k): k for k in keys}
        self.root = root
        self.path = Path(path) if path is not None else None
        self.document: KeyDocument | None = None
        self.last_error: str | None = None
        self._lock = threading.Lock()
        if root is None and not keys:
            raise ValueError("a keyring needs a root key or at least one signing key")
        if root is not None and self.path is not None and self.path.is_file():
            try:
                self.document = KeyDocument.from_json(self.path.read_bytes(), root)
            except (OSError, VerificationError) as exc:  # damaged local copy: the channel's is read again
                log.error("%s: cannot use the saved key document (%s); reading the channel's", self.path, exc)

    @classmethod
    def of(cls, trust: Keyring | bytes) -> Keyring:
        return trust if isinstance(trust, Keyring) else cls([trust])

    def revoked(self) -> frozenset[str]:
        return self.document.revoked if self.document else frozenset()

    def active(self) -> dict[str, bytes]:
        keys = dict(self.pinned)
        if self.document is not None:
            keys.update(self.document.signing_keys)
        revoked = self.revoked()
        return {k: v for k, v in keys.items() if k not in revoked}

    @property
    def primary(self) -> bytes:
        """A trusted signing key (for messages and the older single-key interfaces)."""
        active = self.active()
        return next(iter(active.values())) if active else next(iter(self.pinned.values()), b"")

    def verify(self, what: str, message: bytes, signature_b64: str, key_id: str | None) -> str:
        """Check a signature by a trusted, unrevoked key; return the key id that signed."""
        if key_id is not None and key_id in self.revoked():
            raise VerificationError(f"{what}: signed by the revoked key {key_id}; refused")
        active = self.active()
        candidates = {key_id: active[key_id]} if key_id in active else ({} if key_id else active)
        if key_id is not None and not candidates:
            raise VerificationError(
                f"{what}: signed by key {key_id}, which this device does not trust "
                f"(trusted: {', '.join(sorted(active)) or 'none'}); bad signature"
            )
        for kid, public in candidates.items():
            if signature_holds(message, signature_b64, public):
                return kid
        raise VerificationError(
            f"{what}: bad signature (not signed by key {', '.join(sorted(candidates)) or 'none'}, or altered)"
        )

    def update(self, data: bytes | None) -> str | None:
        """Take the channel's key document (None: the channel has none). Returns a note
        when a new one was accepted; raises VerificationError when it is refused."""
        if self.root is None or data is None:
            return None
        doc = KeyDocument.from_json(data, self.root)
        with self._lock:
            current = self.document
            if current is not None:
                if doc.version < current.version:
                    raise VerificationError(
                        f"key document version {doc.version} is older than the accepted version "
                        f"{current.version} (rollback of the keys?); refused"
                    )
                if doc.version == current.version:
                    if unsigned_body(doc.raw) != unsigned_body(current.raw):
                        raise VerificationError(
                            f"key document version {doc.version} differs from the accepted one of the "
                            "same version; refused"
                        )
                    return None
            if self.path is not None:
                atomic_write(self.path, data)
            self.document = doc
        note = (
            f"accepted key document version {doc.version}: signing keys {', '.join(sorted(doc.signing_keys))}"
            + (f", revoked {', '.join(sorted(doc.revoked))}" if doc.revoked else "")
        )
        log.warning("%s", note)
        return note

    def describe(self) -> dict[str, Any]:
        return {
            "root_key_id": ed25519.key_id(self.root) if self.root else None,
            "keys_version": self.document.version if self.document else None,
            "signing_keys": sorted(self.active()),
            "revoked": sorted(self.revoked()),
            "last_error": self.last_error,
        }
