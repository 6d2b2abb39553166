"""Ed25519 signature verification (RFC 8032, section 5.1.7) in pure Python.

The edge runtime verifies a handful of signatures per model release, so a few
milliseconds of big-integer arithmetic are cheaper than one more native dependency on
the device. Only verification lives here; signing happens on the control plane with
the ``cryptography`` package. Public keys are accepted as raw 32 bytes, hex, base64,
or a PEM ``PUBLIC KEY`` block (the SubjectPublicKeyInfo that ``cryptography`` and
``openssl pkey -pubout`` write).
"""

from __future__ import annotations

import base64
import binascii
import hashlib

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)
_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")  # DER header of an Ed25519 public key

Point = tuple[int, int, int, int]  # extended homogeneous coordinates (X, Y, Z, T)


def _add(p: Point, q: Point) -> Point:
    a = (p[1] - p[0]) * (q[1] - q[0]) % _P
    b = (p[1] + p[0]) * (q[1] + q[0]) % _P
    c = 2 * p[3] * q[3] * _D % _P
    d = 2 * p[2] * q[2] % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _mul(s: int, p: Point) -> Point:
    q: Point = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            q = _add(q, p)
        p = _add(p, p)
        s >>= 1
    return q


def _equal(p: Point, q: Point) -> bool:
    return (p[0] * q[2] - q[0] * p[2]) % _P == 0 and (p[1] * q[2] - q[1] * p[2]) % _P == 0


def _recover_x(y: int, sign: int) -> int | None:
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P != 0:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P != 0:
        return None
    if (x & 1) != sign:
        x = _P - x
    return x


def _decompress(data: bytes) -> Point | None:
    if len(data) != 32:
        return None
    y = int.from_bytes(data, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = _recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % _P)


_GY = 4 * pow(5, _P - 2, _P) % _P
_GX = _recover_x(_GY, 0)
assert _GX is not None
_G: Point = (_GX, _GY, 1, _GX * _GY % _P)


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True when ``signature`` is a valid Ed25519 signature of ``message`` by the
    holder of ``public_key`` (32 raw bytes). Never raises on malformed input."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    a = _decompress(public_key)
    r = _decompress(signature[:32])
    if a is None or r is None:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= _L:
        return False
    h = int.from_bytes(hashlib.sha512(signature[:32] + public_key + message).digest(), "little") % _L
    return _equal(_mul(s, _G), _add(r, _mul(h, a)))


class KeyFormatError(ValueError):
    pass


def load_public_key(text: str | bytes) -> bytes:
    """The 32 raw bytes of an Ed25519 public key given as PEM, hex, base64 or raw."""
    if isinstance(text, bytes):
        if len(text) == 32:
            return text
        text = text.decode("ascii", errors="replace")
    text = text.strip()
    if text.startswith("-----BEGIN"):
        lines = [ln for ln in text.splitlines() if ln and not ln.startswith("-----")]
        try:
            der = base64.b64decode("".join(lines), validate=True)
        except binascii.Error as exc:
            raise KeyFormatError(f"public key PEM is not valid base64: {exc}") from exc
        if len(der) != 44 or not der.startswith(_SPKI_PREFIX):
            raise KeyFormatError("public key PEM is not an Ed25519 public key (SubjectPublicKeyInfo)")
        return der[12:]
    for decode in (bytes.fromhex, lambda t: base64.b64decode(t, validate=True)):
        try:
            raw = decode(text)
        except ValueError:
            continue
        if len(raw) == 32:
            return raw
    raise KeyFormatError("public key must be PEM, or 32 bytes as hex or base64")


def key_id(public_key: bytes) -> str:
    """A short fingerprint of a public key: the first 16 hex digits of its sha256."""
    return hashlib.sha256(public_key).hexdigest()[:16]
