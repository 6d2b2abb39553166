"""The device's pure-Python Ed25519 verifier against RFC 8032's vectors and against the
``cryptography`` signer the control plane uses."""

from __future__ import annotations

import base64
import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_runtime import ed25519

# RFC 8032, section 7.1, TEST 1 and TEST 2: (public key, message, signature)
RFC_VECTORS = [
    (
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
]


@pytest.mark.parametrize(("public", "message", "signature"), RFC_VECTORS)
def test_rfc8032_vectors(public: str, message: str, signature: str) -> None:
    pub, msg, sig = bytes.fromhex(public), bytes.fromhex(message), bytes.fromhex(signature)
    assert ed25519.verify(pub, msg, sig)
    assert not ed25519.verify(pub, msg + b"\x00", sig)


def flip(data: bytes, bit: int) -> bytes:
    b = bytearray(data)
    b[bit // 8 % len(b)] ^= 1 << (bit % 8)
    return bytes(b)


@pytest.mark.parametrize("seed", range(12))
def test_agrees_with_cryptography(seed: int) -> None:
    rng = __import__("random").Random(seed)
    key = Ed25519PrivateKey.from_private_bytes(rng.randbytes(32))
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    message = rng.randbytes(rng.randrange(0, 300))
    sig = key.sign(message)
    assert ed25519.verify(pub, message, sig)
    bit = rng.randrange(512)
    assert not ed25519.verify(pub, message, flip(sig, bit)), "a flipped signature bit must fail"
    if message:
        assert not ed25519.verify(pub, flip(message, rng.randrange(len(message) * 8)), sig)
    other = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    assert not ed25519.verify(other, message, sig)


@pytest.mark.parametrize(
    ("pub", "sig"),
    [(b"", b""), (b"\x00" * 31, b"\x00" * 64), (b"\xff" * 32, b"\x00" * 64), (b"\x01" * 32, b"\xff" * 64)],
)
def test_malformed_input_is_false_not_an_exception(pub: bytes, sig: bytes) -> None:
    assert ed25519.verify(pub, b"message", sig) is False


def test_public_key_formats() -> None:
    key = Ed25519PrivateKey.generate().public_key()
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert ed25519.load_public_key(pem) == raw
    assert ed25519.load_public_key(pem.decode()) == raw
    assert ed25519.load_public_key(raw.hex()) == raw
    assert ed25519.load_public_key(base64.b64encode(raw).decode()) == raw
    rsa_like = (
        b"-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(os.urandom(60)) + b"\n-----END PUBLIC KEY-----\n"
    )
    with pytest.raises(ed25519.KeyFormatError, match="not an Ed25519"):
        ed25519.load_public_key(rsa_like)
    with pytest.raises(ed25519.KeyFormatError):
        ed25519.load_public_key("not a key")
