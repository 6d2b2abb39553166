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
    models/<model>/<stage>.json                pointer: version, manifest sha256, signature

The control plane writes a version folder completely, reads it back and verifies it,
and only then replaces a stage pointer (one atomic object write). A device trusts
nothing it has not verified against its public key: the pointer's signature, the
manifest's sha256 and signature, every file's size and sha256, and every path named by
a manifest (a path outside the version folder is refused).
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_runtime import ed25519
from edge_runtime.storage import StorageError, Store, check_key

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
SCHEMA = 1
STAGES = ("staging", "production")


class VerificationError(ValueError):
    """A channel object failed verification; the message names the object and why."""


def canonical_json(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


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
        return check_key(name)
    except ValueError as exc:
        raise VerificationError(f"manifest names a path outside its version folder: {exc}") from exc


def verify_signature(what: str, message: bytes, signature_b64: str, public_key: bytes) -> None:
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (ValueError, TypeError) as exc:
        raise VerificationError(f"{what}: signature is not base64") from exc
    if not ed25519.verify(public_key, message, signature):
        raise VerificationError(
            f"{what}: bad signature (not signed by key {ed25519.key_id(public_key)}, or altered)"
        )


def parse_json(what: str, data: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VerificationError(f"{what}: not valid JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise VerificationError(f"{what}: expected a JSON object")
    return doc


@dataclass(frozen=True)
class Pointer:
    model: str
    stage: str
    version: str
    manifest_sha256: str
    updated_at: str
    sequence: int
    raw: dict[str, Any]


def sign_pointer_body(body: dict[str, Any]) -> bytes:
    """The bytes a pointer's signature covers: the pointer without its signature."""
    return canonical_json({k: v for k, v in body.items() if k != "signature"})


def verify_pointer(data: bytes, public_key: bytes, model: str, stage: str) -> Pointer:
    what = f"pointer {pointer_key(model, stage)}"
    doc = parse_json(what, data)
    verify_signature(what, sign_pointer_body(doc), str(doc.get("signature", "")), public_key)
    if doc.get("model") != model or doc.get("stage") != stage:
        raise VerificationError(f"{what}: names {doc.get('model')}/{doc.get('stage')}, not {model}/{stage}")
    version = str(doc.get("version", ""))
    safe_member(version)
    return Pointer(
        model=model,
        stage=stage,
        version=version,
        manifest_sha256=str(doc.get("manifest_sha256", "")),
        updated_at=str(doc.get("updated_at", "")),
        sequence=int(doc.get("sequence", 0)),
        raw=doc,
    )


def verify_manifest(
    manifest_bytes: bytes, signature_bytes: bytes, public_key: bytes, model: str, version: str
) -> dict[str, Any]:
    """Check the manifest's signature and shape; return it as a dict."""
    what = f"manifest of {model} version {version}"
    sig = parse_json(f"signature of {model} version {version}", signature_bytes)
    if sig.get("algorithm") != "ed25519":
        raise VerificationError(f"{what}: unsupported signature algorithm {sig.get('algorithm')!r}")
    verify_signature(what, manifest_bytes, str(sig.get("signature", "")), public_key)
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
        if not isinstance(entry, dict) or not isinstance(entry.get("size"), int) or "sha256" not in entry:
            raise VerificationError(f"{what}: entry {name!r} lacks a size or a sha256")
    for name in (manifest.get("int8_file"),):
        if name is not None and name not in files:
            raise VerificationError(f"{what}: int8_file {name!r} is not among its files")
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
        return self.path / safe_member(name)

    @property
    def model_path(self) -> Path:
        return self.file(self.manifest["model_file"])

    @property
    def int8_path(self) -> Path | None:
        name = self.manifest.get("int8_file")
        return self.file(name) if name else None


def verify_folder(folder: Path, public_key: bytes, model: str, version: str) -> VerifiedVersion:
    """Verify a version folder already on disk (e.g. after a restart)."""
    try:
        manifest_bytes = (folder / MANIFEST).read_bytes()
        signature_bytes = (folder / SIGNATURE).read_bytes()
    except OSError as exc:
        raise VerificationError(f"{folder}: no manifest or signature ({exc})") from exc
    manifest = verify_manifest(manifest_bytes, signature_bytes, public_key, model, version)
    for name, entry in manifest["files"].items():
        path = folder / safe_member(name)
        if not path.is_file():
            raise VerificationError(f"{folder}: {name} is missing")
        verify_file(path, name, entry)
    return VerifiedVersion(model, version, folder, manifest, sha256_hex(manifest_bytes))


class ChannelClient:
    """Reads and verifies what a channel store holds, for one public key."""

    def __init__(self, store: Store, public_key: bytes) -> None:
        self.store = store
        self.public_key = public_key

    def pointer(self, model: str, stage: str) -> Pointer | None:
        """The verified stage pointer, or None when the stage has never been set."""
        data = self.store.get(pointer_key(model, stage))
        if data is None:
            return None
        return verify_pointer(data, self.public_key, model, stage)

    def manifest(self, model: str, version: str) -> tuple[dict[str, Any], bytes]:
        prefix = version_prefix(model, version)
        manifest_bytes = self.store.get(f"{prefix}/{MANIFEST}")
        signature_bytes = self.store.get(f"{prefix}/{SIGNATURE}")
        if manifest_bytes is None or signature_bytes is None:
            raise VerificationError(
                f"{self.store.uri}/{prefix}: incomplete version (no manifest or signature)"
            )
        manifest = verify_manifest(manifest_bytes, signature_bytes, self.public_key, model, version)
        return manifest, manifest_bytes

    def fetch(
        self, model: str, version: str, dest: Path, expected_manifest_sha256: str | None = None
    ) -> VerifiedVersion:
        """Download a version into ``dest`` (which must not exist yet), verifying every
        file in a temporary folder beside it first; ``dest`` appears only complete."""
        dest = Path(dest)
        if dest.exists():
            raise FileExistsError(f"{dest} exists; verify it with verify_folder instead")
        manifest, manifest_bytes = self.manifest(model, version)
        digest = sha256_hex(manifest_bytes)
        if expected_manifest_sha256 and digest != expected_manifest_sha256:
            raise VerificationError(
                f"{model} version {version}: manifest sha256 {digest[:12]}… is not the one the pointer names"
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".partial"))
        try:
            prefix = version_prefix(model, version)
            for name, entry in manifest["files"].items():
                target = tmp / safe_member(name)
                target.parent.mkdir(parents=True, exist_ok=True)
                if not self.store.get_to_file(f"{prefix}/{name}", target):
                    raise VerificationError(f"{self.store.uri}/{prefix}/{name}: missing")
                verify_file(target, name, entry)
            (tmp / MANIFEST).write_bytes(manifest_bytes)
            signature = self.store.get(f"{prefix}/{SIGNATURE}")
            (tmp / SIGNATURE).write_bytes(signature or b"")
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
    "Pointer",
    "StorageError",
    "VerificationError",
    "VerifiedVersion",
    "verify_folder",
    "verify_manifest",
    "verify_pointer",
]
