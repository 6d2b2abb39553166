"""The model channel, as a device reads it: a folder or S3 prefix of immutable version
folders and one small signed pointer per stage.

Layout::

    models/<model>/<version>/model.onnx        the float model
    models/<model>/<version>/model.int8.onnx   optional INT8 variant
    models/<model>/<version>/samples/...       self-test images
    models/<model>/<version>/manifest.json     files (sha256, size), classes, input size,
                                               thresholds, created-at, data set version,
                                               self-test expectations
    models/<model>/<version>/manifest.sig      Ed25519 signature over manifest.json's bytes
    models/<model>/<stage>.json                pointer: version, manifest sha256, sequence,
                                               expiry, signature
    keys/keys.json                             the root-signed key document (trust.py)

The control plane writes a version folder completely, reads it back and verifies it,
and only then replaces a stage pointer (one atomic object write). A device trusts
nothing it has not verified against its public key: the pointer's signature, the
manifest's sha256 and signature, every file's size and sha256, and every path named by
a manifest (model files, INT8 file, self-test samples, bundle members: each must be a
relative path inside the version folder and listed in ``files`` with its size and
sha256). Pointers and manifests are refused above a small size cap before they are
parsed; every file is streamed into a temporary file, hashed as it streams and aborted
past the size its manifest gives or past the download's overall deadline.

Pointer format 2 (format 1 had no ``format``, ``expires_at`` or ``signing_key_id``; a
device still reads it, as a pointer that never expires)::

    {"format": 2, "model", "stage", "version", "manifest_sha256", "sequence": 7,
     "updated_at", "expires_at": "2026-12-11T10:00:00+00:00", "previous_version",
     "reason", "signing_key_id", "signature"}

A device keeps the highest ``sequence`` it has accepted and refuses any pointer at or
below it (the same pointer again is not news, and is fine); a pointer past its
``expires_at`` installs nothing and makes the device report ``channel: stale``.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge_runtime.storage import ObjectRefused, StorageError, Store, check_key
from edge_runtime.trust import (
    KEYS_DOCUMENT,
    MAX_KEYS_BYTES,
    Keyring,
    VerificationError,
    canonical_json,
    parse_json,
    unsigned_body,
)

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
SCHEMA = 1
POINTER_FORMAT = 2
STAGES = ("staging", "production")
MAX_POINTER_BYTES = 16 * 1024
MAX_MANIFEST_BYTES = 1024 * 1024
MAX_SIGNATURE_BYTES = 8 * 1024
DOWNLOAD_TIMEOUT_S = 600.0

Trust = Keyring | bytes


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def version_prefix(model: str, version: str) -> str:
    return f"models/{check_key(model)}/{check_key(version)}"


def pointer_key(model: str, stage: str) -> str:
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
    return f"models/{check_key(model)}/{stage}.json"


def safe_member(name: str) -> str:
    """A file name from a manifest, refused unless it stays inside the version folder."""
    try:
        return check_key(str(name))
    except ValueError as exc:
        raise VerificationError(f"manifest names a path outside its version folder: {exc}") from exc


def member_path(folder: Path, name: str) -> Path:
    """``folder/name`` for a name a manifest gives, refused unless inside ``folder``."""
    return Path(folder) / safe_member(name)


def sign_pointer_body(body: dict[str, Any]) -> bytes:
    """The bytes a pointer's signature covers: the pointer without its signature."""
    return unsigned_body(body)


def parse_time(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise VerificationError(f"not an ISO 8601 time: {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Pointer:
    model: str
    stage: str
    version: str
    manifest_sha256: str
    updated_at: str
    sequence: int
    raw: dict[str, Any]
    expires_at: str | None = None
    signing_key_id: str | None = None

    def expired(self, now: datetime | None = None) -> bool:
        expiry = parse_time(self.expires_at)
        return expiry is not None and (now or datetime.now(UTC)) >= expiry


def verify_pointer(data: bytes, trust: Trust, model: str, stage: str) -> Pointer:
    what = f"pointer {pointer_key(model, stage)}"
    if len(data) > MAX_POINTER_BYTES:
        raise VerificationError(
            f"{what}: {len(data)} bytes, over the {MAX_POINTER_BYTES} allowed; not parsed"
        )
    doc = parse_json(what, data)
    key_id = doc.get("signing_key_id")
    signer = Keyring.of(trust).verify(
        what, sign_pointer_body(doc), str(doc.get("signature", "")), str(key_id) if key_id else None
    )
    if doc.get("model") != model or doc.get("stage") != stage:
        raise VerificationError(f"{what}: names {doc.get('model')}/{doc.get('stage')}, not {model}/{stage}")
    version = str(doc.get("version", ""))
    safe_member(version)
    sequence = doc.get("sequence", 0)
    if not isinstance(sequence, int) or isinstance(sequence, bool) or not 0 <= sequence < 2**63:
        raise VerificationError(f"{what}: sequence {sequence!r} is not a non-negative integer")
    try:
        parse_time(doc.get("expires_at"))
    except VerificationError as exc:
        raise VerificationError(f"{what}: expires_at {exc}") from exc
    return Pointer(
        model=model,
        stage=stage,
        version=version,
        manifest_sha256=str(doc.get("manifest_sha256", "")),
        updated_at=str(doc.get("updated_at", "")),
        sequence=sequence,
        raw=doc,
        expires_at=str(doc["expires_at"]) if doc.get("expires_at") else None,
        signing_key_id=signer,
    )


def named_paths(manifest: dict[str, Any]) -> list[tuple[str, Any]]:
    """Every path a manifest names, with what names it: model files, the INT8 file,
    self-test samples (and the model files their expectations are for), bundle members."""
    out: list[tuple[str, Any]] = [("model_file", manifest.get("model_file"))]
    if manifest.get("int8_file") is not None:
        out.append(("int8_file", manifest["int8_file"]))
    self_test = manifest.get("self_test") or {}
    expected = self_test.get("expected") if isinstance(self_test, dict) else None
    if isinstance(expected, dict):
        for target, samples in expected.items():
            if target != "bundle":
                out.append(("self-test model", target))
            if isinstance(samples, dict):
                out += [("self-test sample", name) for name in samples]
    hierarchy = manifest.get("hierarchy")
    if isinstance(hierarchy, dict):
        nodes = [hierarchy.get("parent")] + list((hierarchy.get("children") or {}).values())
        out += [("bundle member", n.get("file")) for n in nodes if isinstance(n, dict)]
    return out


def verify_manifest(
    manifest_bytes: bytes, signature_bytes: bytes, trust: Trust, model: str, version: str
) -> dict[str, Any]:
    """Check the manifest's signature and shape; return it as a dict."""
    what = f"manifest of {model} version {version}"
    if len(manifest_bytes) > MAX_MANIFEST_BYTES or len(signature_bytes) > MAX_SIGNATURE_BYTES:
        raise VerificationError(
            f"{what}: manifest {len(manifest_bytes)} / signature {len(signature_bytes)} bytes, over the "
            f"{MAX_MANIFEST_BYTES} / {MAX_SIGNATURE_BYTES} allowed; not parsed"
        )
    sig = parse_json(f"signature of {model} version {version}", signature_bytes)
    if sig.get("algorithm") != "ed25519":
        raise VerificationError(f"{what}: unsupported signature algorithm {sig.get('algorithm')!r}")
    key_id = sig.get("key_id")
    Keyring.of(trust).verify(
        what, manifest_bytes, str(sig.get("signature", "")), str(key_id) if key_id else None
    )
    manifest = parse_json(what, manifest_bytes)
    if manifest.get("schema") != SCHEMA:
        raise VerificationError(f"{what}: schema {manifest.get('schema')!r}, this runtime reads {SCHEMA}")
    if manifest.get("model") != model or str(manifest.get("version")) != version:
        raise VerificationError(
            f"{what}: it describes {manifest.get('model')} version {manifest.get('version')}"
        )
    files = manifest.get("files")
    if not isinstance(files, dict) or manifest.get("model_file") not in files:
        raise VerificationError(f"{what}: no files, or its model_file is not among them")
    for name, entry in files.items():
        safe_member(name)
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("size"), int)
            or isinstance(entry.get("size"), bool)
            or entry["size"] < 0
            or not isinstance(entry.get("sha256"), str)
        ):
            raise VerificationError(f"{what}: entry {name!r} lacks a size or a sha256")
    for role, name in named_paths(manifest):
        if not isinstance(name, str):
            raise VerificationError(f"{what}: its {role} {name!r} is not a file name")
        safe_member(name)
        if name not in files:
            raise VerificationError(
                f"{what}: its {role} {name!r} is not among its files (every path must be listed "
                "with its size and sha256)"
            )
    return manifest


def verify_file(path: Path, name: str, entry: dict[str, Any]) -> None:
    size = path.stat().st_size
    if size != entry["size"]:
        raise VerificationError(f"{name}: {size} bytes, the manifest says {entry['size']} (truncated?)")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != entry["sha256"]:
        raise VerificationError(f"{name}: sha256 {digest.hexdigest()[:12]}… does not match the manifest")


@dataclass(frozen=True)
class VerifiedVersion:
    """A version folder on local disk whose every file was verified."""

    model: str
    version: str
    path: Path
    manifest: dict[str, Any]
    manifest_sha256: str

    def file(self, name: str) -> Path:
        if name not in self.manifest.get("files", {}):
            raise VerificationError(f"{self.model} version {self.version}: {name!r} is not among its files")
        return member_path(self.path, name)

    @property
    def model_path(self) -> Path:
        return self.file(self.manifest["model_file"])

    @property
    def int8_path(self) -> Path | None:
        name = self.manifest.get("int8_file")
        return self.file(name) if name else None


def verify_folder(folder: Path, trust: Trust, model: str, version: str) -> VerifiedVersion:
    """Verify a version folder already on disk (e.g. after a restart)."""
    try:
        with open(folder / MANIFEST, "rb") as f:
            manifest_bytes = f.read(MAX_MANIFEST_BYTES + 1)
        with open(folder / SIGNATURE, "rb") as f:
            signature_bytes = f.read(MAX_SIGNATURE_BYTES + 1)
    except OSError as exc:
        raise VerificationError(f"{folder}: no manifest or signature ({exc})") from exc
    manifest = verify_manifest(manifest_bytes, signature_bytes, trust, model, version)
    for name, entry in manifest["files"].items():
        path = member_path(folder, name)
        if path.is_symlink() or not path.is_file():
            raise VerificationError(f"{folder}: {name} is missing")
        verify_file(path, name, entry)
    return VerifiedVersion(model, version, folder, manifest, sha256_hex(manifest_bytes))


class ChannelClient:
    """Reads and verifies what a channel store holds, for one keyring (or one public
    key). Downloads of one version must finish within ``download_timeout_s``."""

    def __init__(self, store: Store, trust: Trust, download_timeout_s: float = DOWNLOAD_TIMEOUT_S) -> None:
        self.store = store
        self.keyring = Keyring.of(trust)
        self.download_timeout_s = download_timeout_s

    @property
    def public_key(self) -> Keyring:
        """What verification takes (kept under its old name)."""
        return self.keyring

    def _get(self, key: str, max_bytes: int) -> bytes | None:
        try:
            return self.store.get(key, max_bytes)
        except ObjectRefused as exc:
            raise VerificationError(str(exc)) from exc

    def refresh_keys(self) -> str | None:
        """Read the channel's key document when the keyring has a root (see trust.py)."""
        if self.keyring.root is None:
            return None
        try:
            note = self.keyring.update(self._get(KEYS_DOCUMENT, MAX_KEYS_BYTES))
        except VerificationError as exc:
            self.keyring.last_error = str(exc)
            raise
        self.keyring.last_error = None
        return note

    def pointer(self, model: str, stage: str) -> Pointer | None:
        """The verified stage pointer, or None when the stage has never been set."""
        data = self._get(pointer_key(model, stage), MAX_POINTER_BYTES)
        if data is None:
            return None
        return verify_pointer(data, self.keyring, model, stage)

    def manifest(self, model: str, version: str) -> tuple[dict[str, Any], bytes]:
        manifest_bytes, signature_bytes = self._manifest_bytes(model, version)
        manifest = verify_manifest(manifest_bytes, signature_bytes, self.keyring, model, version)
        return manifest, manifest_bytes

    def _manifest_bytes(self, model: str, version: str) -> tuple[bytes, bytes]:
        prefix = version_prefix(model, version)
        manifest_bytes = self._get(f"{prefix}/{MANIFEST}", MAX_MANIFEST_BYTES)
        signature_bytes = self._get(f"{prefix}/{SIGNATURE}", MAX_SIGNATURE_BYTES)
        if manifest_bytes is None or signature_bytes is None:
            raise VerificationError(
                f"{self.store.uri}/{prefix}: incomplete version (no manifest or signature)"
            )
        return manifest_bytes, signature_bytes

    def fetch(
        self, model: str, version: str, dest: Path, expected_manifest_sha256: str | None = None
    ) -> VerifiedVersion:
        """Download a version into ``dest`` (which must not exist yet), verifying every
        file in a temporary folder beside it first; ``dest`` appears only complete."""
        dest = Path(dest)
        if dest.exists():
            raise FileExistsError(f"{dest} exists; verify it with verify_folder instead")
        manifest_bytes, signature_bytes = self._manifest_bytes(model, version)
        manifest = verify_manifest(manifest_bytes, signature_bytes, self.keyring, model, version)
        digest = sha256_hex(manifest_bytes)
        if expected_manifest_sha256 and digest != expected_manifest_sha256:
            raise VerificationError(
                f"{model} version {version}: manifest sha256 {digest[:12]}… is not the one the pointer names"
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".partial"))
        deadline = time.monotonic() + self.download_timeout_s
        try:
            prefix = version_prefix(model, version)
            for name, entry in manifest["files"].items():
                target = member_path(tmp, name)
                target.parent.mkdir(parents=True, exist_ok=True)
                key = f"{prefix}/{name}"
                try:
                    got = self.store.get_to_file(key, target, max_bytes=entry["size"], deadline=deadline)
                except ObjectRefused as exc:
                    raise VerificationError(
                        f"{exc} (the manifest gives {name} {entry['size']} bytes)"
                    ) from exc
                if got is None:
                    raise VerificationError(f"{self.store.uri}/{key}: missing")
                size = target.stat().st_size
                if size != entry["size"]:
                    raise VerificationError(
                        f"{name}: {size} bytes, the manifest says {entry['size']} (truncated?)"
                    )
                if got != entry["sha256"]:
                    raise VerificationError(f"{name}: sha256 {got[:12]}… does not match the manifest")
            (tmp / MANIFEST).write_bytes(manifest_bytes)
            (tmp / SIGNATURE).write_bytes(signature_bytes)
            tmp.rename(dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return VerifiedVersion(model, version, dest, manifest, digest)

    def fetch_stage(self, model: str, stage: str, dest_root: Path) -> VerifiedVersion | None:
        """The version a stage pointer names, fetched (or found verified) under
        ``dest_root/<version>``; None when the stage is unset."""
        pointer = self.pointer(model, stage)
        if pointer is None:
            return None
        dest = Path(dest_root) / pointer.version
        if dest.exists():
            verified = verify_folder(dest, self.public_key, model, pointer.version)
            if verified.manifest_sha256 == pointer.manifest_sha256:
                return verified
            raise VerificationError(f"{dest}: holds another manifest than the pointer names")
        return self.fetch(model, pointer.version, dest, pointer.manifest_sha256)


__all__ = [
    "ChannelClient",
    "Keyring",
    "canonical_json",
    "Pointer",
    "StorageError",
    "VerificationError",
    "VerifiedVersion",
    "verify_folder",
    "verify_manifest",
    "verify_pointer",
]
