"""Publishing to the model channel (the layout is in ``edge_runtime/channel.py``).

Order of writes, so that a crash at any point leaves every stage pointer naming a
complete, verifiable version: the version's files, then ``manifest.json``, then
``manifest.sig``; then everything is read back through the edge runtime's own
verification; only then is the stage pointer replaced, in one atomic object write.
A version folder is immutable once complete: publishing the same files again is a
no-op, publishing other files under the same version is refused.

A pointer carries a sequence above both the one it replaces and the current Unix time
in milliseconds (so a stored pointer replayed by someone with write access to the store
cannot pull the next sequence below what devices already accepted; publishers' clocks
must be kept in sync, NTP, for that part), and an expiry
``ttl_hours`` ahead (pointer format 2, ``edge_runtime/channel.py``). It is written with
a conditional put (S3 ``If-Match``/``If-None-Match``, an ``flock`` on a folder): when
two publishers race, one wins, the other reads the winner's pointer and writes the
next sequence, so sequences never repeat. A store that has no conditional writes is
written plainly (``S3Store.conditional`` turns False): two publishers racing there can
write the same sequence, and devices refuse the second (``docs/deploy.md``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from edge_runtime.channel import (
    MANIFEST,
    MAX_POINTER_BYTES,
    MAX_SIGNATURE_BYTES,
    POINTER_FORMAT,
    SCHEMA,
    SIGNATURE,
    STAGES,
    ChannelClient,
    Pointer,
    VerificationError,
    pointer_key,
    safe_member,
    sha256_hex,
    sign_pointer_body,
    version_prefix,
)
from edge_runtime.storage import Store
from visionloop.deploy.signing import SigningKey

DEFAULT_TTL_HOURS = 168.0
RACE_ATTEMPTS = 20


class ImmutableVersionError(RuntimeError):
    """A complete version folder exists with other files than the ones published."""


class PointerRaceError(RuntimeError):
    """Other publishers kept replacing the pointer while this one tried to."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def raw_sequence(data: bytes | None) -> int:
    """The sequence a stored pointer claims, signed by whichever key (0 when none or
    unreadable): a new pointer must go above it, or devices that accepted it refuse."""
    if data is None:
        return 0
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        return 0
    value = doc.get("sequence") if isinstance(doc, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**62 else 0


@dataclass
class Release:
    """One model version as it goes into the channel. ``files`` maps names inside the
    version folder (``model.onnx``, ``samples/a.jpg``) to bytes; ``fields`` go into
    the manifest as they are (classes, input size, thresholds, data set version...)."""

    model: str
    version: str
    files: dict[str, bytes]
    model_file: str = "model.onnx"
    int8_file: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    def manifest(self, key: SigningKey, created_at: str | None = None) -> dict[str, Any]:
        for name in self.files:
            safe_member(name)
        return {
            **self.fields,
            "schema": SCHEMA,
            "model": self.model,
            "version": self.version,
            "created_at": created_at or now_iso(),
            "model_file": self.model_file,
            "int8_file": self.int8_file,
            "files": {n: {"sha256": sha256_hex(b), "size": len(b)} for n, b in sorted(self.files.items())},
            "signing_key_id": key.key_id,
        }


@dataclass(frozen=True)
class Published:
    model: str
    version: str
    manifest_sha256: str
    uri: str
    reused: bool


class ChannelPublisher:
    def __init__(self, store: Store, key: SigningKey, ttl_hours: float = DEFAULT_TTL_HOURS) -> None:
        if ttl_hours <= 0:
            raise ValueError(f"pointer ttl_hours must be positive, got {ttl_hours}")
        self.store = store
        self.key = key
        self.ttl_hours = ttl_hours
        self.client = ChannelClient(store, key.public_raw)

    def _existing(self, model: str, version: str) -> tuple[dict[str, Any], bytes] | None:
        """The verified manifest of a complete version folder; None if there is none
        (or only the debris of an interrupted publication, which is overwritten)."""
        try:
            return self.client.manifest(model, version)
        except VerificationError:
            return None

    def verify_version(self, model: str, version: str) -> str:
        """Read a version back from the store and verify manifest, signature and every
        file; return the manifest's sha256. Raises VerificationError."""
        manifest, manifest_bytes = self.client.manifest(model, version)
        prefix = version_prefix(model, version)
        for name, entry in manifest["files"].items():
            data = self.store.get(f"{prefix}/{name}")
            if data is None:
                raise VerificationError(f"{self.store.uri}/{prefix}/{name}: missing")
            if len(data) != entry["size"] or sha256_hex(data) != entry["sha256"]:
                raise VerificationError(f"{self.store.uri}/{prefix}/{name}: does not match the manifest")
        return sha256_hex(manifest_bytes)

    def publish(self, release: Release) -> Published:
        prefix = version_prefix(release.model, release.version)
        manifest = release.manifest(self.key)
        existing = self._existing(release.model, release.version)
        if existing is not None:
            if existing[0]["files"] != manifest["files"]:
                raise ImmutableVersionError(
                    f"{self.store.uri}/{prefix} is already published with other files; "
                    "a published version never changes: register a new model version"
                )
            return Published(
                release.model,
                release.version,
                self.verify_version(release.model, release.version),
                f"{self.store.uri}/{prefix}",
                reused=True,
            )
        self.store.delete(f"{prefix}/{SIGNATURE}")  # debris of an interrupted publication
        for name, data in sorted(release.files.items()):
            self.store.put(f"{prefix}/{name}", data)
        manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode()
        self.store.put(f"{prefix}/{MANIFEST}", manifest_bytes)
        signature = {
            "algorithm": "ed25519",
            "key_id": self.key.key_id,
            "signature": self.key.sign(manifest_bytes),
        }
        self.store.put(f"{prefix}/{SIGNATURE}", json.dumps(signature, indent=2).encode())
        digest = self.verify_version(release.model, release.version)
        return Published(release.model, release.version, digest, f"{self.store.uri}/{prefix}", reused=False)

    def pointer(self, model: str, stage: str) -> Pointer | None:
        try:
            return self.client.pointer(model, stage)
        except VerificationError:
            return None

    def set_pointer(self, model: str, stage: str, version: str, reason: str = "") -> Pointer:
        """Point ``stage`` at ``version`` after verifying the version in the store, with
        the next sequence and a fresh expiry, by a conditional write (module docstring)."""
        digest = self.verify_version(model, version)
        key = pointer_key(model, stage)
        for _ in range(RACE_ATTEMPTS):
            raw, tag = self.store.get_tagged(key, MAX_POINTER_BYTES)
            previous = self.pointer(model, stage) if raw is not None else None
            now = datetime.now(UTC)
            body: dict[str, Any] = {
                "format": POINTER_FORMAT,
                "model": model,
                "stage": stage,
                "version": version,
                "manifest_sha256": digest,
                "updated_at": now.isoformat(timespec="seconds"),
                "expires_at": (now + timedelta(hours=self.ttl_hours)).isoformat(timespec="seconds"),
                "sequence": max(raw_sequence(raw) + 1, int(now.timestamp() * 1000)),
                "previous_version": previous.version if previous else None,
                "reason": reason,
                "signing_key_id": self.key.key_id,
            }
            body["signature"] = self.key.sign(sign_pointer_body(body))
            data = json.dumps(body, indent=2, sort_keys=True).encode()
            if self.store.put_if(key, data, tag):
                pointer = self.client.pointer(model, stage)
                if pointer is not None and pointer.sequence == body["sequence"]:
                    return pointer
                # a store without conditional writes let another publisher in: go again
        raise PointerRaceError(
            f"{self.store.uri}/{key}: other publishers replaced it {RACE_ATTEMPTS} times in a row; try again"
        )

    def refresh(self, model: str | None = None, resign: bool = False) -> list[Pointer]:
        """Re-sign every stage pointer (of ``model``, or of every model in the channel)
        with the next sequence and a fresh expiry, naming the same version. A pointer
        or manifest signed by another key (after a rotation) is refused unless
        ``resign``: then the manifest's signature is replaced by this key's (its bytes,
        and so the sha256 the pointer names, stay the same)."""
        models = [model] if model else sorted({k.split("/")[1] for k in self.store.list("models")})
        refreshed: list[Pointer] = []
        for name in models:
            for stage in STAGES:
                raw = self.store.get(pointer_key(name, stage), MAX_POINTER_BYTES)
                if raw is None:
                    continue
                try:
                    doc = json.loads(raw)
                    version = str(doc["version"])
                except (ValueError, KeyError, TypeError) as exc:
                    raise VerificationError(f"{pointer_key(name, stage)}: unreadable ({exc})") from exc
                if self.pointer(name, stage) is None and not resign:
                    raise VerificationError(
                        f"{pointer_key(name, stage)} (version {version}) is not signed by the current "
                        f"signing key {self.key.key_id}; check that version, then refresh with --resign"
                    )
                if resign:
                    self.resign_manifest(name, version)
                refreshed.append(self.set_pointer(name, stage, version, reason="refresh"))
        return refreshed

    def resign_manifest(self, model: str, version: str) -> str:
        """Sign an existing version's manifest with this key (after a rotation)."""
        prefix = version_prefix(model, version)
        manifest_bytes = self.store.get(f"{prefix}/{MANIFEST}", 1024 * 1024)
        if manifest_bytes is None:
            raise VerificationError(f"{self.store.uri}/{prefix}: no manifest to re-sign")
        current = self.store.get(f"{prefix}/{SIGNATURE}", MAX_SIGNATURE_BYTES)
        signature = {
            "algorithm": "ed25519",
            "key_id": self.key.key_id,
            "signature": self.key.sign(manifest_bytes),
        }
        if current != json.dumps(signature, indent=2).encode():
            self.store.put(f"{prefix}/{SIGNATURE}", json.dumps(signature, indent=2).encode())
        return self.verify_version(model, version)

    def public_key_file(self) -> str:
        """Write the public key beside the models (for operators to hand to devices;
        a device is configured with it out of band and never reads it from here)."""
        name = f"keys/{self.key.key_id}.pub.pem"
        self.store.put(name, self.key.public_pem.encode())
        return f"{self.store.uri}/{name}"
