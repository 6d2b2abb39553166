"""The channel's key document, as the operator writes it with the offline root key
(the format and how devices use it: ``edge_runtime/trust.py``).

``init`` writes version 1 naming the pipeline's signing key; ``rotate`` names a new
signing key and revokes the old one; ``revoke`` revokes a key (a leaked one) and can
name its successor at once. Each writes the next version with a conditional put, and
refuses to run with a root key other than the one that signed the document already in
the channel.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from edge_runtime import ed25519
from edge_runtime.storage import Store
from edge_runtime.trust import (
    KEYS_DOCUMENT,
    KEYS_FORMAT,
    KEYS_TYPE,
    MAX_KEYS_BYTES,
    KeyDocument,
    VerificationError,
    unsigned_body,
)
from visionloop.deploy.channel import now_iso
from visionloop.deploy.signing import SigningKey

ROOT_PUBLIC = "keys/root.pub.pem"


class KeyDocumentError(RuntimeError):
    """The key document could not be written; the message says why and what to do."""


def current(store: Store, root: SigningKey) -> tuple[KeyDocument | None, str | None]:
    """The channel's key document verified against ``root``, and its tag for ``put_if``."""
    data, tag = store.get_tagged(KEYS_DOCUMENT, MAX_KEYS_BYTES)
    if data is None:
        return None, None
    try:
        return KeyDocument.from_json(data, root.public_raw), tag
    except VerificationError as exc:
        raise KeyDocumentError(
            f"{store.uri}/{KEYS_DOCUMENT} does not verify with the root key {root.key_id}: {exc}. "
            "Use the root key that signed it (devices trust only that one)"
        ) from exc


def write(
    store: Store,
    root: SigningKey,
    add: list[bytes] | None = None,
    revoke: list[str] | None = None,
    reason: str = "",
) -> KeyDocument:
    """The next key document: the current signing keys plus ``add``, minus ``revoke``
    (which join the revoked list for good), signed by ``root``."""
    doc, tag = current(store, root)
    keys: dict[str, bytes] = dict(doc.signing_keys) if doc else {}
    revoked = set(doc.revoked) if doc else set()
    for public in add or []:
        kid = ed25519.key_id(public)
        if kid in revoked:
            raise KeyDocumentError(
                f"key {kid} was revoked; a revoked key never comes back: generate a new one"
            )
        keys[kid] = public
    for kid in revoke or []:
        if kid not in keys and kid not in revoked:
            raise KeyDocumentError(f"key {kid} is not in the key document (keys: {', '.join(sorted(keys))})")
        keys.pop(kid, None)
        revoked.add(kid)
    if not keys:
        raise KeyDocumentError("the key document would name no signing key: add one (--add-key-file)")
    body: dict[str, Any] = {
        "type": KEYS_TYPE,
        "format": KEYS_FORMAT,
        "version": (doc.version + 1) if doc else 1,
        "created_at": now_iso(),
        "reason": reason,
        "root_key_id": root.key_id,
        "signing_keys": {k: base64.b64encode(v).decode() for k, v in sorted(keys.items())},
        "revoked": sorted(revoked),
    }
    body["signature"] = root.sign(unsigned_body(body))
    data = json.dumps(body, indent=2, sort_keys=True).encode()
    if not store.put_if(KEYS_DOCUMENT, data, tag):
        raise KeyDocumentError(f"{store.uri}/{KEYS_DOCUMENT} changed while it was written; run it again")
    store.put(ROOT_PUBLIC, root.public_pem.encode())
    return KeyDocument.from_json(data, root.public_raw)
