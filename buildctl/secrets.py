"""Secret references: manifests hold ``env:NAME`` or ``file:PATH``, never the secret itself."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from buildctl.errors import UserError

_REF = re.compile(r"(env):([A-Za-z_][A-Za-z0-9_]*)|(file):(.+)")  # used with fullmatch


@dataclass(frozen=True)
class SecretRef:
    kind: str  # "env" | "file" | "pkcs11" (keys only: the URI after "pkcs11:")
    target: str  # variable name or path

    @classmethod
    def parse(cls, text: str) -> "SecretRef":
        m = _REF.fullmatch(text or "")
        if not m:
            raise ValueError(f"{text!r} is not a secret reference (use env:NAME or file:PATH)")
        return cls(m.group(1), m.group(2)) if m.group(1) else cls(m.group(3), m.group(4))

    @classmethod
    def parse_key(cls, text: str) -> "SecretRef":
        """A private key's reference: env:NAME, file:PATH, or a key that stays in a PKCS#11
        token (``pkcs11:...`` URI; its PIN by pin-source=env:/file:, never pin-value)."""
        if isinstance(text, str) and text.startswith("pkcs11:"):
            if "pin-value=" in text:
                raise ValueError("a pkcs11: key in a manifest names its PIN with "
                                 "pin-source=env:NAME or file:PATH, not pin-value")
            return cls("pkcs11", text[len("pkcs11:"):])
        return cls.parse(text)

    def pin_ref(self) -> "SecretRef | None":
        """pkcs11: the reference of the PIN (pin-source), the secret CI must provide."""
        if self.kind != "pkcs11":
            return None
        m = re.search(r"[?&]pin-source=(env:[A-Za-z_][A-Za-z0-9_]*|file:[^&]+)", self.target)
        return SecretRef.parse(m.group(1)) if m else None

    @staticmethod
    def is_ref(text: str) -> bool:
        return bool(_REF.fullmatch(text or ""))

    def resolve_bytes(self, base: Path | None = None) -> bytes:
        """The secret's value. Never log or print what this returns."""
        if self.kind == "pkcs11":
            raise UserError("a pkcs11: key stays in its token; it has no value to read")
        if self.kind == "env":
            value = os.environ.get(self.target)
            if value is None:
                raise UserError(f"secret reference env:{self.target}: variable is not set")
            return value.encode()
        path = Path(self.target).expanduser()
        if base is not None and not path.is_absolute():
            path = base / path
        try:
            return path.read_bytes()
        except OSError as exc:
            raise UserError(f"secret reference file:{self.target}: {exc.strerror}") from None

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}"
