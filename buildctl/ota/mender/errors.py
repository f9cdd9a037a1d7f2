"""Errors raised while reading, verifying, writing or signing a Mender artifact."""
from __future__ import annotations

from buildctl.errors import UserError


def _clean(text: str, limit: int) -> str:
    """Names from hostile archives: escape control characters, cap the length (one line)."""
    out = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
    return out if len(out) <= limit else out[:limit] + "..."


class ArtifactError(UserError):
    """An artifact that is malformed, tampered, unsigned when it must be, or unusable.

    The message always names the file and, where known, the member inside it.
    """

    def __init__(self, message: str, *, path: str = "", member: str = ""):
        message, member = _clean(message, 400), _clean(member, 120)
        self.path = path
        self.member = member
        self.reason = message
        where = ": ".join(p for p in (path, member) if p)
        super().__init__(f"{where}: {message}" if where else message)

    def located(self, path: str) -> "ArtifactError":
        """The same error, naming the artifact file too."""
        if self.path:
            return self
        return ArtifactError(self.reason, path=path, member=self.member)


class SigningKeyError(UserError):
    """A signing or verification key that cannot be used. Never carries key material."""
