"""The channel's Ed25519 signing key.

The private key never lives in the repository: it comes from the environment
(``VISIONLOOP_SIGNING_KEY``: PEM, or the 32-byte seed as hex or base64;
``VISIONLOOP_SIGNING_KEY_FILE``: a PEM file) or, in the pipelines, from a ZenML secret.
Devices are given only the public key.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_runtime import ed25519

ENV_KEY = "VISIONLOOP_SIGNING_KEY"
ENV_KEY_FILE = "VISIONLOOP_SIGNING_KEY_FILE"


class SigningKeyError(ValueError):
    pass


@dataclass(frozen=True)
class SigningKey:
    private: Ed25519PrivateKey
    source: str  # where it came from, for messages (never the key itself)

    @property
    def public_raw(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def public_pem(self) -> str:
        return (
            self.private.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    @property
    def key_id(self) -> str:
        return ed25519.key_id(self.public_raw)

    def sign(self, message: bytes) -> str:
        return base64.b64encode(self.private.sign(message)).decode()

    def private_pem(self) -> str:
        return self.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()


def generate(source: str = "generated") -> SigningKey:
    return SigningKey(Ed25519PrivateKey.generate(), source)


def parse_private_key(text: str, source: str) -> SigningKey:
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(text.encode(), password=None)
        except (ValueError, TypeError) as exc:
            raise SigningKeyError(f"{source}: not a readable unencrypted PEM private key ({exc})") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise SigningKeyError(f"{source}: the PEM key is not an Ed25519 key")
        return SigningKey(key, source)
    for decode in (bytes.fromhex, lambda t: base64.b64decode(t, validate=True)):
        try:
            seed = decode(text)
        except (ValueError, binascii.Error):
            continue
        if len(seed) == 32:
            return SigningKey(Ed25519PrivateKey.from_private_bytes(seed), source)
    raise SigningKeyError(f"{source}: expected a PEM Ed25519 private key, or a 32-byte seed as hex or base64")


def from_environment(environ: dict[str, str] | None = None) -> SigningKey | None:
    """The key named by the environment, or None when it names none."""
    env = os.environ if environ is None else environ
    if env.get(ENV_KEY):
        return parse_private_key(env[ENV_KEY], f"${ENV_KEY}")
    if env.get(ENV_KEY_FILE):
        path = Path(env[ENV_KEY_FILE]).expanduser()
        try:
            return parse_private_key(path.read_text(), str(path))
        except OSError as exc:
            raise SigningKeyError(f"${ENV_KEY_FILE}: cannot read {path}: {exc}") from exc
    return None
