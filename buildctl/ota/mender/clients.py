"""Which Mender readers can read which compression: knowledge written once, as data.

Sources (checked against the upstream sources and Debian's mender-artifact 3.9):
- zstd came to the Go library in mender-artifact 3.10.0; the Go Mender client vendors that
  library from its 3.5.0 release (3.4.x cannot read .zst members);
- the C++ client (4.x, 5.x) reads through libarchive with zstd enabled by default;
- gzip, xz and uncompressed members are read by every client.
"""
from __future__ import annotations

import re

# compression kind -> the first Mender client version that reads it (None: every version)
CLIENT_READS_FROM: dict[str, tuple[int, int] | None] = {
    "none": None, "gzip": None, "lzma": None, "zstd": (3, 5),
}
# the same for the mender-artifact tool (a reader too: CI, servers, scripts)
TOOL_READS_FROM: dict[str, tuple[int, int] | None] = {
    "none": None, "gzip": None, "lzma": None, "zstd": (3, 10),
}

_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.\d+)?(?:[-+~.].*)?")


def parse_version(text: str) -> tuple[int, int]:
    """``3.4``, ``3.4.1`` or ``5.0.0+git`` as (major, minor); ValueError otherwise."""
    m = _VERSION.fullmatch(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a Mender client version (like 3.4 or 5.0.1)")
    return int(m.group(1)), int(m.group(2))


def client_problem(kind: str, client_version: str) -> str | None:
    """Why a Mender client of that version cannot read an artifact compressed with kind."""
    need = CLIENT_READS_FROM.get(kind)
    if need is None or parse_version(client_version) >= need:
        return None
    return (f"Mender client {client_version} cannot read {kind} artifacts (it needs client "
            f"{need[0]}.{need[1]} or later); write gzip for these devices")


def unknown_client_warning(kind: str) -> str | None:
    """What to say when the devices' client version is not known."""
    need, tool = CLIENT_READS_FROM.get(kind), TOOL_READS_FROM.get(kind)
    if need is None:
        return None
    return (f"{kind} artifacts need Mender client {need[0]}.{need[1]} or later (3.4 cannot read "
            f"them) and mender-artifact {tool[0]}.{tool[1]} or later (Debian's 3.9 cannot); "
            "give --mender-client VERSION to check the devices' client")
