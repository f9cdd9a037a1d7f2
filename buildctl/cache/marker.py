"""Which hash-equivalence server filled an sstate mirror: a marker object on the mirror.

Objects in a mirror are named by unihashes, and a unihash is only meaningful to the server
(and database) that handed it out: a mirror filled under one server and read under another
gives builds objects whose equivalences the second server never saw. `cache push --hashserv`
records the server on the mirror's first push (``<URL>/.buildctl/hashserv.json``) and refuses
later pushes under another one, unless forced (which records the new server).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from buildctl.errors import UserError

MARKER = ".buildctl/hashserv.json"
FORMAT = 1


def normalize_address(address: str) -> str:
    """BB_HASHSERVE spellings of one server compare equal: `ws://h:p`, `h:p`; `unix://` kept."""
    a = address.strip()
    if a.startswith("unix://"):
        return a
    a = re.sub(r"^wss?://", "", a).rstrip("/").lower()
    return a


def database_identity(database: str | None) -> str | None:
    """A database as recorded: a URL without its password, or a file path as given."""
    if not database:
        return None
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1@", database.strip())


@dataclass(frozen=True)
class HashServIdentity:
    address: str
    database: str | None = None

    @classmethod
    def of(cls, address: str, database: str | None = None) -> "HashServIdentity":
        if not address.strip():
            raise UserError("--hashserv: empty address")
        return cls(normalize_address(address), database_identity(database))

    def to_bytes(self) -> bytes:
        return (json.dumps({"format": FORMAT, "hashserv": self.address,
                            "database": self.database}, sort_keys=True) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> "HashServIdentity":
        try:
            doc = json.loads(data)
            return cls(str(doc["hashserv"]), doc.get("database"))
        except (ValueError, KeyError, TypeError):
            raise UserError(f"{where}: not a buildctl hash-server marker "
                            "(remove it or push with --force)") from None

    def describe(self) -> str:
        return self.address + (f" (database {self.database})" if self.database else "")

    def differs(self, other: "HashServIdentity") -> bool:
        """Another server, or the same address on a database named differently. A marker or a
        push that names no database only compares addresses."""
        if self.address != other.address:
            return True
        return bool(self.database and other.database and self.database != other.database)


def check_mirror(mirror, ident: HashServIdentity, *, force: bool, dry_run: bool) -> str:
    """Compare the mirror's marker with ident; record ident when there is none (or forced).
    Returns what happened: "recorded", "matches", "forced" (or "would record" in a dry run)."""
    where = f"{mirror.url}/{MARKER}"
    status, data = mirror.fetch(MARKER)
    if status == 200:
        try:
            recorded = HashServIdentity.from_bytes(data, where)
        except UserError:
            if not force:
                raise
            recorded = None  # forced: an unreadable marker is replaced
        if recorded is not None and not recorded.differs(ident):
            return "matches"
        if not force:
            raise UserError(f"{mirror.url}: sstate mirror filled under hash server "
                            f"{recorded.describe()}, this push uses {ident.describe()} "
                            f"(its objects would not match this server's unihashes; "
                            f"--force to push anyway and record the new server)")
    elif status != 404:
        raise UserError(f"GET {where}: HTTP {status}")
    if dry_run:
        return "would record"
    mirror.put_bytes(MARKER, ident.to_bytes())
    return "forced" if status == 200 else "recorded"


def mirror_base(entry: str) -> str | None:
    """The base URL of an http(s) SSTATE_MIRRORS entry (``regex URL/PATH;...`` or a bare URL)."""
    url = entry.split()[-1].split(";", 1)[0]
    if not url.startswith(("http://", "https://")):
        return None
    return url[: -len("/PATH")] if url.endswith("/PATH") else url.rstrip("/")


def build_identity(hashserve: str, upstream: str | None) -> HashServIdentity | None:
    """The server whose unihashes a build's sstate lookups use: cache.hashserve when it names
    one; with `auto`, the upstream it pulls from; `none` is no server at all."""
    if hashserve == "none":
        return HashServIdentity("none")
    if hashserve == "auto":
        return HashServIdentity.of(upstream) if upstream else None
    return HashServIdentity.of(hashserve)


def check_build_mirrors(mirrors, hashserve: str, upstream: str | None, *, force: bool = False,
                        timeout: float = 5) -> list[str]:
    """Before a build: refuse an http(s) mirror whose marker names another hash server.
    A mirror that cannot be asked now is left to BitBake (which reads it softly). Returns the
    mirrors whose marker matched."""
    from buildctl.cache.push import Mirror

    ident = build_identity(hashserve, upstream)
    if ident is None or force:
        return []
    matched = []
    for entry in mirrors:
        base = mirror_base(entry)
        if base is None:
            continue
        try:
            status, data = Mirror(base, timeout=timeout).fetch(MARKER)
        except Exception:  # noqa: BLE001 - unreachable now: BitBake's business
            continue
        if status != 200:
            continue
        recorded = HashServIdentity.from_bytes(data, f"{base}/{MARKER}")
        if recorded.differs(ident):
            used = "no hash server" if ident.address == "none" else f"hash server {ident.describe()}"
            raise UserError(f"cache.sstate_mirrors: {base} was filled under hash server "
                            f"{recorded.describe()}, this build uses {used} (its objects would "
                            "not match; --force-mirror to build anyway)")
        matched.append(base)
    return matched
