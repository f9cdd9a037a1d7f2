"""Sign every .mender of a board with the product's key, here on the host."""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from buildctl.ota.mender import load_private_key, sign_artifact


def sign_board(paths: Iterable[Path], key_ref: str, field: str = "mender.signing_key") -> bytes:
    """Sign each artifact in place (atomically) and return the public key (PEM) that verifies
    them. Raises UserError (SigningKeyError) when the key reference cannot be read."""
    key = load_private_key(key_ref, field)
    for p in paths:
        sign_artifact(p, key, force=True)
    return key.public_pem()
