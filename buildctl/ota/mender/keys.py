"""Signing keys: load (file, env:, file: references), sign and verify a manifest.

mender-artifact signs the raw manifest bytes with SHA-256: RSA as PKCS#1 v1.5, ECDSA P-256 as
raw r||s (64 bytes), base64 with padding and no newline. Newer mender-artifact also accepts
70-72 byte DER ECDSA signatures (PKCS#11 signers); we accept those when verifying.
Key material is never put into a message, a log line or an exception. Keys held in a PKCS#11
token (``pkcs11:`` URIs, see pkcs11.py) sign through the same interface and give the same bytes.
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (decode_dss_signature,
                                                             encode_dss_signature)

from buildctl.ota.mender import pkcs11
from buildctl.ota.mender.errors import ArtifactError, SigningKeyError
from buildctl.secrets import SecretRef


def _key_bytes(source: str | bytes | Path, what: str) -> tuple[bytes, str]:
    """PEM bytes from a path, an env:/file: reference or the bytes themselves; and a label."""
    if isinstance(source, bytes):
        return source, what
    text = str(source)
    if SecretRef.is_ref(text):
        ref = SecretRef.parse(text)
        return ref.resolve_bytes(), str(ref)
    try:
        return Path(text).expanduser().read_bytes(), text
    except OSError as exc:
        raise SigningKeyError(f"{what} {text}: {exc.strerror}") from None


@dataclass(frozen=True)
class PrivateKey:
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    label: str

    def __repr__(self) -> str:  # never show key material
        return f"PrivateKey({self.label})"

    @property
    def algorithm(self) -> str:
        return "rsa" if isinstance(self.key, rsa.RSAPrivateKey) else "ecdsa-p256"

    def sign(self, message: bytes) -> bytes:
        """base64 of the signature over message, as stored in manifest.sig."""
        if isinstance(self.key, rsa.RSAPrivateKey):
            raw = self.key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        else:
            try:  # RFC 6979: same manifest, same signature (reproducible artifacts)
                algo = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
                der = self.key.sign(message, algo)
            except (TypeError, UnsupportedAlgorithm):  # older cryptography/OpenSSL
                der = self.key.sign(message, ec.ECDSA(hashes.SHA256()))
            r, s = decode_dss_signature(der)
            raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return base64.b64encode(raw)

    def public_pem(self) -> bytes:
        return self.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True)
class PublicKey:
    key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey
    label: str

    def verify(self, message: bytes, sig_b64: bytes) -> None:
        """Raise ArtifactError(member manifest.sig) unless sig_b64 signs message."""
        try:
            raw = base64.b64decode(b"".join(sig_b64.split()), validate=True)
        except (binascii.Error, ValueError):
            raise ArtifactError("signature is not valid base64", member="manifest.sig") from None
        try:
            if isinstance(self.key, rsa.RSAPublicKey):
                if len(raw) != self.key.key_size // 8 and len(raw) != (self.key.key_size + 7) // 8:
                    raise ArtifactError(
                        f"signature is {len(raw)} bytes, not an RSA-{self.key.key_size} signature "
                        f"(wrong key type?)", member="manifest.sig")
                self.key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
            else:
                if len(raw) == 64:
                    der = encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                               int.from_bytes(raw[32:], "big"))
                elif 70 <= len(raw) <= 72:
                    der = raw
                else:
                    raise ArtifactError(
                        f"signature is {len(raw)} bytes, not an ECDSA P-256 signature "
                        "(64 bytes r||s; wrong key type?)", member="manifest.sig")
                self.key.verify(der, message, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise ArtifactError(f"signature does not verify with key {self.label}",
                                member="manifest.sig") from None
        except ValueError:
            raise ArtifactError(f"signature is malformed for key {self.label}",
                                member="manifest.sig") from None


def _check_algorithm(key, label: str) -> None:
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        if key.key_size < 1024:
            raise SigningKeyError(f"key {label}: RSA keys below 1024 bits are not accepted")
        return
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        if key.curve.name != "secp256r1":
            raise SigningKeyError(f"key {label}: ECDSA keys must use curve P-256, not {key.curve.name}")
        return
    raise SigningKeyError(f"key {label}: only RSA and ECDSA P-256 keys can sign Mender artifacts")


def load_private_key(source: str | bytes | Path, label: str = "private key", *,
                     pkcs11_module: str | None = None) -> PrivateKey:
    """A PEM private key: PKCS#1 (RSA PRIVATE KEY), SEC1 (EC PRIVATE KEY) or PKCS#8; or a key
    in a PKCS#11 token named by a ``pkcs11:`` URI (``pkcs11_module``: the library to load
    when the URI has no module-path)."""
    if pkcs11.is_uri(source):
        key, shown = pkcs11.open_private_key(str(source), label, pkcs11_module)
        return PrivateKey(key, shown)
    data, label = _key_bytes(source, label)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise SigningKeyError(f"key {label}: encrypted private keys are not supported") from None
    except (ValueError, UnsupportedAlgorithm):
        raise SigningKeyError(f"key {label}: not a PEM private key (RSA, or ECDSA P-256)") from None
    _check_algorithm(key, label)
    return PrivateKey(key, label)


def load_public_key(source: str | bytes | Path, label: str = "public key") -> PublicKey:
    """A PEM public key (PUBLIC KEY, i.e. PKIX, as mender-artifact wants; RSA PUBLIC KEY too)."""
    if isinstance(source, str) and pkcs11.is_uri(source):  # not a file named "pkcs11:..."
        raise SigningKeyError(f"key {source.split('?', 1)[0][:80]}: a pkcs11: URI names a "
                              "signing key; verification needs the public key as a PEM file "
                              "(export it from the token)")
    data, label = _key_bytes(source, label)
    if b"PRIVATE KEY" in data:
        raise SigningKeyError(f"key {label}: is a private key; verification needs the public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise SigningKeyError(f"key {label}: not a PEM public key") from None
    _check_algorithm(key, label)
    return PublicKey(key, label)
