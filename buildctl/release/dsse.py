"""DSSE envelopes (Dead Simple Signing Envelope, v1.0): sign and verify.

The signature covers PAE(payloadType, payload) =
``"DSSEv1" SP len(type) SP type SP len(body) SP body`` (lengths as ASCII decimals of the byte
counts). ECDSA P-256 signatures are DER with SHA-256 (deterministic, RFC 6979, when the
library can: same bundle, same envelope), RSA is PKCS#1 v1.5 with SHA-256. The key id is the
SHA-256 of the public key's DER SubjectPublicKeyInfo.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from buildctl.ota.mender.keys import PrivateKey, PublicKey


def pae(payload_type: str, payload: bytes) -> bytes:
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def key_id(public_key) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def _sign(key: PrivateKey, message: bytes) -> bytes:
    if isinstance(key.key, rsa.RSAPrivateKey):
        return key.key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    try:
        return key.key.sign(message, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    except (TypeError, UnsupportedAlgorithm):  # older cryptography/OpenSSL
        return key.key.sign(message, ec.ECDSA(hashes.SHA256()))


def sign_envelope(payload: bytes, payload_type: str, key: PrivateKey | None) -> dict:
    env = {"payloadType": payload_type, "payload": base64.b64encode(payload).decode(),
           "signatures": []}
    if key is not None:
        sig = _sign(key, pae(payload_type, payload))
        env["signatures"].append({"keyid": key_id(key.key.public_key()),
                                  "sig": base64.b64encode(sig).decode()})
    return env


class EnvelopeError(Exception):
    pass


def open_envelope(env: dict) -> tuple[str, bytes]:
    try:
        return env["payloadType"], base64.b64decode(env["payload"], validate=True)
    except (KeyError, TypeError, binascii.Error, ValueError):
        raise EnvelopeError("not a DSSE envelope (payloadType/payload)") from None


def verify_envelope(env: dict, key: PublicKey) -> bytes:
    """The payload when one signature verifies with key; EnvelopeError otherwise."""
    ptype, payload = open_envelope(env)
    message = pae(ptype, payload)
    sigs = env.get("signatures") or []
    if not sigs:
        raise EnvelopeError("the envelope carries no signature")
    for s in sigs:
        try:
            raw = base64.b64decode(s.get("sig", ""), validate=True)
            if isinstance(key.key, rsa.RSAPublicKey):
                key.key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
            else:
                key.key.verify(raw, message, ec.ECDSA(hashes.SHA256()))
            return payload
        except (InvalidSignature, binascii.Error, ValueError):
            continue
    raise EnvelopeError(f"no signature verifies with key {key.label}")


def dumps(env: dict) -> str:
    return json.dumps(env, indent=2, sort_keys=True) + "\n"
