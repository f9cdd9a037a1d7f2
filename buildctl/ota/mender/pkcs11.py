"""Private keys that stay in a PKCS#11 token (HSM, smart card, SoftHSM).

A key is named by an RFC 7512 URI::

    pkcs11:token=release;object=mender-key?pin-source=env:HSM_PIN&module-path=/usr/lib/...so

Path attributes select the token (``token``, ``serial``, ``manufacturer``, ``model``) and the
key (``object`` = CKA_LABEL, ``id`` = CKA_ID, percent-encoded); ``type`` may only be
``private``. Query attributes: ``pin-value`` (the PIN itself), ``pin-source`` (``env:NAME``,
``file:PATH`` or a ``file:`` URI holding the PIN) and ``module-path`` (the PKCS#11 library;
otherwise the module given by the caller, e.g. the BUILDCTL_PKCS11_MODULE setting; otherwise
p11-kit's proxy, which loads every module registered system-wide, as Debian's softhsm2,
opensc and ykcs11 packages do).

The token hashes nothing: SHA-256 is computed here and the token signs the digest
(CKM_RSA_PKCS over a DigestInfo, i.e. PKCS#1 v1.5; CKM_ECDSA, which returns raw r||s). The
key object implements cryptography's private-key interface (``sign``, ``public_key``,
``key_size``, ``curve``), so everything that signs with a file key (manifest.sig, DSSE) signs
with a token key unchanged and produces the same byte format. A PIN never appears in a message,
a label or a repr.
"""
from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from buildctl.ota.mender.errors import SigningKeyError
from buildctl.secrets import SecretRef

SCHEME = "pkcs11:"
_PATH_ATTRS = {"token", "object", "id", "serial", "manufacturer", "model", "type",
               "library-manufacturer", "library-description", "library-version", "slot-id",
               "slot-description", "slot-manufacturer"}
_QUERY_ATTRS = {"pin-value", "pin-source", "module-path", "module-name"}
# DER DigestInfo prefix for SHA-256 (RFC 8017, section 9.2, note 1)
_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")
_P256_OID_DER = bytes.fromhex("06082a8648ce3d030107")  # CKA_EC_PARAMS of prime256v1


def is_uri(text: object) -> bool:
    return isinstance(text, str) and text.startswith(SCHEME)


@dataclass(frozen=True)
class Pkcs11Uri:
    path: dict[str, bytes]
    query: dict[str, str] = field(repr=False)
    text: str = field(repr=False)

    @property
    def label(self) -> str:
        """The URI as it may be shown: path attributes only (never the PIN or its source)."""
        parts = ";".join(f"{k}={v.decode('utf-8', 'replace')}" if k != "id" else f"id={v.hex()}"
                         for k, v in self.path.items())
        return f"pkcs11:{parts}"

    @property
    def module_path(self) -> str | None:
        return self.query.get("module-path")


def parse_uri(text: str, what: str = "key") -> Pkcs11Uri:
    """RFC 7512 URI; SigningKeyError (naming the attribute, never a value) when malformed."""
    if not is_uri(text):
        raise SigningKeyError(f"{what}: not a pkcs11: URI")
    body = text[len(SCHEME):]
    path_part, _, query_part = body.partition("?")
    path: dict[str, bytes] = {}
    query: dict[str, str] = {}
    for chunk in filter(None, path_part.split(";")):
        name, eq, value = chunk.partition("=")
        if not eq or name not in _PATH_ATTRS:
            raise SigningKeyError(f"{what}: pkcs11 URI: unknown or empty path attribute "
                                  f"{name[:40]!r}")
        if name in path:
            raise SigningKeyError(f"{what}: pkcs11 URI: attribute {name!r} given twice")
        path[name] = unquote_to_bytes(value)
    for chunk in filter(None, query_part.split("&")):
        name, eq, value = chunk.partition("=")
        if not eq or name not in _QUERY_ATTRS:
            raise SigningKeyError(f"{what}: pkcs11 URI: unknown or empty query attribute "
                                  f"{name[:40]!r}")
        if name in query:
            raise SigningKeyError(f"{what}: pkcs11 URI: attribute {name!r} given twice")
        query[name] = unquote_to_bytes(value).decode("utf-8", "replace")
    if "type" in path and path["type"] != b"private":
        raise SigningKeyError(f"{what}: pkcs11 URI: type must be 'private' for a signing key")
    if "object" not in path and "id" not in path:
        raise SigningKeyError(f"{what}: pkcs11 URI names no key: give object=LABEL or id=%XX")
    if "pin-value" in query and "pin-source" in query:
        raise SigningKeyError(f"{what}: pkcs11 URI: give pin-value or pin-source, not both")
    if "module-name" in query and "module-path" not in query:
        raise SigningKeyError(f"{what}: pkcs11 URI: module-name is not supported; give "
                              "module-path=/path/to/module.so")
    return Pkcs11Uri(path, query, text)


def _pin(uri: Pkcs11Uri, label: str) -> str | None:
    if "pin-value" in uri.query:
        return uri.query["pin-value"]
    source = uri.query.get("pin-source")
    if source is None:
        return None
    if source.startswith("file://"):
        source = "file:" + source[len("file://"):]
    if not SecretRef.is_ref(source):
        raise SigningKeyError(f"{label}: pin-source must be env:NAME or file:PATH")
    return SecretRef.parse(source).resolve_bytes().decode("utf-8", "replace").rstrip("\r\n")


_LIBS: dict[str, object] = {}
_LIBS_LOCK = threading.Lock()


def _is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"\x7fELF"
    except OSError:
        return False


def _library(path: str, label: str):
    try:
        import PyKCS11
    except ImportError:
        raise SigningKeyError(f"{label}: PKCS#11 support needs the PyKCS11 package "
                              "(pip install 'buildctl[pkcs11]')") from None
    with _LIBS_LOCK:
        if path in _LIBS:
            return _LIBS[path]
        if os.sep in path and not os.path.isfile(path):  # the C loader would print a line
            raise SigningKeyError(f"{label}: PKCS#11 module {path}: no such file")
        if os.sep in path and not _is_elf(path):  # ... and so it would for any other file
            raise SigningKeyError(f"{label}: PKCS#11 module {path}: not a shared library")
        lib = PyKCS11.PyKCS11Lib()
        try:
            lib.load(path)
        except PyKCS11.PyKCS11Error:
            raise SigningKeyError(f"{label}: cannot load the PKCS#11 module {path}") from None
        _LIBS[path] = lib
        return lib


def p11kit_proxy() -> str | None:
    """p11-kit's proxy module (the library itself serves as one), when installed."""
    import ctypes.util
    for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib"):
        if os.path.isfile(os.path.join(d, "p11-kit-proxy.so")):
            return os.path.join(d, "p11-kit-proxy.so")
    return ctypes.util.find_library("p11-kit")


def _matches(info, uri: Pkcs11Uri) -> bool:
    for attr, field_name in (("token", "label"), ("serial", "serialNumber"),
                             ("manufacturer", "manufacturerID"), ("model", "model")):
        if attr in uri.path:
            have = getattr(info, field_name, "")
            have = have.decode("utf-8", "replace") if isinstance(have, bytes) else str(have)
            if have.rstrip(" \x00") != uri.path[attr].decode("utf-8", "replace"):
                return False
    return True


def open_private_key(text: str, label: str = "private key", module: str | None = None):
    """A token-backed key (rsa.RSAPrivateKey or ec.EllipticCurvePrivateKey interface) and the
    label to show for it. ``module``: the PKCS#11 library when the URI names none."""
    uri = parse_uri(text, label)
    shown = f"{label} {uri.label}" if label else uri.label  # PIN and module left out
    module_path = uri.module_path or module or p11kit_proxy()
    if not module_path:
        raise SigningKeyError(f"{shown}: no PKCS#11 module: add module-path=/path/to/module.so "
                              "to the URI, set BUILDCTL_PKCS11_MODULE or install p11-kit")
    import PyKCS11  # noqa: F401  (after _library has explained a missing package)
    lib = _library(module_path, shown)
    from PyKCS11 import LowLevel as LL
    from PyKCS11 import PyKCS11Error
    try:
        slots = [s for s in lib.getSlotList(tokenPresent=True) if _matches(lib.getTokenInfo(s), uri)]
    except PyKCS11Error as exc:
        raise SigningKeyError(f"{shown}: the PKCS#11 module failed to list tokens "
                              f"({_ck(exc)})") from None
    if not slots:
        raise SigningKeyError(f"{shown}: no such token")
    if len(slots) > 1:
        raise SigningKeyError(f"{shown}: {len(slots)} tokens match; add serial= to the URI")
    pin = _pin(uri, shown)
    try:
        session = lib.openSession(slots[0])
    except PyKCS11Error as exc:
        raise SigningKeyError(f"{shown}: cannot open a session ({_ck(exc)})") from None
    if pin is not None:
        _login(session, pin, shown)
    template = [(LL.CKA_CLASS, LL.CKO_PRIVATE_KEY)]
    if "object" in uri.path:
        template.append((LL.CKA_LABEL, uri.path["object"].decode("utf-8", "replace")))
    if "id" in uri.path:
        template.append((LL.CKA_ID, tuple(uri.path["id"])))
    objs = session.findObjects(template)
    if not objs:
        hint = "" if pin is not None else " (no PIN given: add pin-value= or pin-source=)"
        raise SigningKeyError(f"{shown}: no such private key on the token{hint}")
    if len(objs) > 1:
        raise SigningKeyError(f"{shown}: {len(objs)} private keys match; add id= to the URI")
    priv = objs[0]
    key_type, key_id = session.getAttributeValue(priv, [LL.CKA_KEY_TYPE, LL.CKA_ID])
    public = _public_key(session, LL, priv, key_type, key_id, shown)
    if key_type == LL.CKK_RSA:
        return Pkcs11RsaKey(session, priv, public, shown), uri.label
    return Pkcs11EcKey(session, priv, public, shown), uri.label


def _login(session, pin: str, shown: str) -> None:
    """Log in with pin. A token is logged in per process: when an earlier key of this process
    already did, log out and in again, so that this key's PIN is checked too."""
    from PyKCS11 import LowLevel as LL
    from PyKCS11 import PyKCS11Error
    for attempt in (1, 2):
        try:
            session.login(pin)
            return
        except PyKCS11Error as exc:
            if exc.value == LL.CKR_PIN_INCORRECT:
                raise SigningKeyError(f"{shown}: wrong PIN") from None
            if exc.value == LL.CKR_PIN_LOCKED:
                raise SigningKeyError(f"{shown}: the token's PIN is locked") from None
            if exc.value != LL.CKR_USER_ALREADY_LOGGED_IN or attempt == 2:
                raise SigningKeyError(f"{shown}: login failed ({_ck(exc)})") from None
        session.logout()


def _ck(exc) -> str:
    from PyKCS11 import CKR
    return str(CKR.get(exc.value, exc.value))


def _public_key(session, LL, priv, key_type, key_id, shown):
    if key_type == LL.CKK_RSA:
        n, e = session.getAttributeValue(priv, [LL.CKA_MODULUS, LL.CKA_PUBLIC_EXPONENT])
        pub = rsa.RSAPublicNumbers(int.from_bytes(bytes(e), "big"),
                                   int.from_bytes(bytes(n), "big")).public_key()
        if pub.key_size < 1024:
            raise SigningKeyError(f"{shown}: RSA keys below 1024 bits are not accepted")
        return pub
    if key_type != LL.CKK_EC:
        raise SigningKeyError(f"{shown}: only RSA and ECDSA P-256 keys can sign")
    (params,) = session.getAttributeValue(priv, [LL.CKA_EC_PARAMS])
    if bytes(params) != _P256_OID_DER:
        raise SigningKeyError(f"{shown}: ECDSA keys must use curve P-256")
    template = [(LL.CKA_CLASS, LL.CKO_PUBLIC_KEY), (LL.CKA_KEY_TYPE, LL.CKK_EC)]
    if key_id:
        template.append((LL.CKA_ID, tuple(key_id)))
    pubs = session.findObjects(template)
    if len(pubs) != 1:
        raise SigningKeyError(f"{shown}: the token holds no single public key with the "
                              "private key's id (CKA_ID); ECDSA needs it to verify signatures")
    (point,) = session.getAttributeValue(pubs[0], [LL.CKA_EC_POINT])
    point = bytes(point)
    if point[:1] == b"\x04" and len(point) == 67 and point[2:3] == b"\x04":  # DER OCTET STRING
        point = point[2:]
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        raise SigningKeyError(f"{shown}: the token's public key point is malformed") from None


class _TokenKey:
    """What both key types share: a logged-in session, the key handle, the public half."""

    def __init__(self, session, handle, public, label: str):
        self._session, self._handle, self._public, self._label = session, handle, public, label
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._label})"

    def public_key(self):
        return self._public

    def _raw_sign(self, mechanism_type: int, data: bytes) -> bytes:
        import PyKCS11
        with self._lock:
            try:
                sig = self._session.sign(self._handle, data, PyKCS11.Mechanism(mechanism_type, None))
            except PyKCS11.PyKCS11Error as exc:
                raise SigningKeyError(f"{self._label}: the token refused to sign "
                                      f"({_ck(exc)})") from None
        return bytes(sig)

    @staticmethod
    def _digest(data: bytes, algorithm) -> bytes:
        if isinstance(algorithm, utils.Prehashed):
            if not isinstance(algorithm._algorithm, hashes.SHA256):
                raise SigningKeyError("PKCS#11 keys sign SHA-256 digests only")
            return data
        if not isinstance(algorithm, hashes.SHA256):
            raise SigningKeyError("PKCS#11 keys sign SHA-256 digests only")
        return hashlib.sha256(data).digest()

    def _unsupported(self, *args, **kwargs):
        raise SigningKeyError(f"{self._label}: a PKCS#11 key only signs; its private part "
                              "never leaves the token")

    private_numbers = private_bytes = decrypt = exchange = _unsupported

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


class Pkcs11RsaKey(_TokenKey, rsa.RSAPrivateKey):
    @property
    def key_size(self) -> int:
        return self._public.key_size

    def sign(self, data: bytes, pad, algorithm) -> bytes:
        if not isinstance(pad, padding.PKCS1v15):
            raise SigningKeyError(f"{self._label}: only PKCS#1 v1.5 signatures are supported")
        from PyKCS11 import LowLevel as LL
        digest = self._digest(data, algorithm)
        sig = self._raw_sign(LL.CKM_RSA_PKCS, _SHA256_DIGEST_INFO + digest)
        try:  # a token that signs wrongly must not produce an artifact that never verifies
            self._public.verify(sig, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
        except InvalidSignature:
            raise SigningKeyError(f"{self._label}: the token's signature does not verify "
                                  "with its public key") from None
        return sig


class Pkcs11EcKey(_TokenKey, ec.EllipticCurvePrivateKey):
    @property
    def key_size(self) -> int:
        return 256

    @property
    def curve(self):
        return ec.SECP256R1()

    def sign(self, data: bytes, signature_algorithm) -> bytes:
        """DER (as cryptography returns it); the token's raw r||s converted. Not deterministic:
        tokens sign with a random nonce, so two signatures over the same data differ."""
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise SigningKeyError(f"{self._label}: only ECDSA signatures are supported")
        from PyKCS11 import LowLevel as LL
        digest = self._digest(data, signature_algorithm.algorithm)
        raw = self._raw_sign(LL.CKM_ECDSA, digest)
        if len(raw) != 64:
            raise SigningKeyError(f"{self._label}: the token returned a {len(raw)}-byte "
                                  "ECDSA signature, not 64 bytes r||s")
        der = utils.encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                         int.from_bytes(raw[32:], "big"))
        try:
            self._public.verify(der, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        except InvalidSignature:
            raise SigningKeyError(f"{self._label}: the token's signature does not verify "
                                  "with its public key") from None
        return der


def public_pem(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def with_module(ref: str | None, module: str | None) -> str | None:
    """ref, with ``module-path=module`` added when it is a pkcs11: URI that names no module
    (the BUILDCTL_PKCS11_MODULE setting, applied once where a command starts)."""
    if not module or not is_uri(ref) or "module-path=" in ref:
        return ref
    from urllib.parse import quote
    return f"{ref}{'&' if '?' in ref else '?'}module-path={quote(module, safe='/')}"
