"""The key devices verify artifacts with (meta-mender's MENDER_ARTIFACT_VERIFY_KEY).

``mender.verify_key`` when given; with ``require_signed`` and no verify key, the public half of
``mender.signing_key``, derived here. Only a public key is ever written: the private key is
read on this host to derive it and never goes near the build.
"""
from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization

from buildctl.errors import UserError
from buildctl.fsutil import write_atomic
from buildctl.manifest.model import Product

KEY_DIR = "buildctl-keys"  # beside the kas files; a kas repo without layers, so builds mount it
KEY_FILE = "artifact-verify-key.pem"


def _absolute(product: Product, ref) -> str:
    """A file: reference relative to the product manifest's directory, made absolute."""
    if ref.kind == "file" and not Path(ref.target).expanduser().is_absolute() and product.path:
        return f"file:{(product.path.parent / ref.target).resolve()}"
    return str(ref)


def public_pem(product: Product) -> bytes | None:
    """PEM of the verification key devices get, or None when they get none."""
    from buildctl.ota.mender.keys import load_private_key, load_public_key

    m = product.mender
    where = f"{product.path}:{product.line('mender')}" if product.line("mender") else str(product.path)
    if m.verify_key:
        try:
            key = load_public_key(_absolute(product, m.verify_key), "mender.verify_key").key
        except UserError as exc:
            raise UserError(f"{where}: mender.verify_key: {exc}") from None
    elif m.require_signed and m.signing_key:
        try:
            key = load_private_key(_absolute(product, m.signing_key), "mender.signing_key").key.public_key()
        except UserError as exc:
            raise UserError(f"{where}: mender.signing_key: {exc} (devices get its public half, derived "
                            "when composing; artifacts are signed on this host after the build)") from None
    else:
        return None
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def write(pem: bytes, out_dir: Path) -> Path:
    """Write the verification key under out_dir; its absolute path."""
    path = (Path(out_dir) / KEY_DIR / KEY_FILE).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_bytes() != pem:
        write_atomic(path, pem.decode("ascii"))
    return path
