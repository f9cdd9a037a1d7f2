"""What an artifact says about itself: typed records shared by reader, writer and CLI."""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

FORMAT_VERSION = b'{"format":"mender","version":3}'

STATES = ("ArtifactInstall", "ArtifactReboot", "ArtifactCommit", "ArtifactRollback",
          "ArtifactRollbackReboot", "ArtifactFailure")
_SCRIPT = re.compile(r"^(?P<state>[A-Za-z]+)_(?P<when>Enter|Leave|Error)_(?P<order>[0-9]{2})(_\S+)?$")
DATA_NAME = re.compile(r"^[\w\-.,]+$", re.ASCII)


def script_name_problem(name: str) -> str | None:
    """Why a state-script name is invalid, or None. The exact form: State_Enter|Leave|Error_NN[_desc]."""
    m = _SCRIPT.match(name)
    if not m:
        return (f'invalid state script name "{name}": it must look like '
                "ArtifactInstall_Enter_05 or ArtifactInstall_Enter_05_description")
    if m.group("state") not in STATES:
        return f"unsupported script state {m.group('state')} in {name} (one of {', '.join(STATES)})"
    return None


def data_name_problem(name: str) -> str | None:
    if name in (".", ".."):
        return f"data file name {name!r} is not allowed"
    if not DATA_NAME.match(name):
        return (f"data file {name!r} contains forbidden characters; only letters, digits "
                'and characters in the set ".,_-" are allowed')
    return None


def go_json(obj: Any) -> bytes:
    """Compact JSON the way Go's encoding/json writes it (no spaces, HTML characters escaped)."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text.encode()


@dataclass
class DataFile:
    name: str
    size: int
    sha256: str
    mtime: int = 0


@dataclass
class Payload:
    """One update (payload) of an artifact: its type-info, meta-data and files."""

    index: int
    type: str | None  # None: the empty/bootstrap payload
    provides: dict[str, str] = field(default_factory=dict)
    depends: dict[str, Any] = field(default_factory=dict)
    clears_provides: list[str] = field(default_factory=list)
    meta_data: dict[str, Any] | None = None
    files: list[DataFile] = field(default_factory=list)


@dataclass
class Augment:
    """What an augmented header (unsigned) overrides: payload type, depends, provides, files."""

    type: str | None
    provides: dict[str, str] = field(default_factory=dict)
    depends: dict[str, Any] = field(default_factory=dict)
    files: list[DataFile] = field(default_factory=list)


@dataclass
class ArtifactInfo:
    """Everything `inspect` shows; the same data behind the rich and the --json output."""

    path: str
    name: str
    format: str = "mender"
    version: int = 3
    group: str = ""
    device_types: list[str] = field(default_factory=list)
    depends_artifact_names: list[str] = field(default_factory=list)
    depends_groups: list[str] = field(default_factory=list)
    signed: bool = False
    signature: str = "unsigned"  # unsigned | verified | not-verified
    compression: str = "gzip"
    scripts: list[str] = field(default_factory=list)
    payloads: list[Payload] = field(default_factory=list)
    augment: Augment | None = None
    members: list[str] = field(default_factory=list)
    # what manifest.sig does not cover (augmented artifacts: manifest-augment, the augment
    # header and its data files); empty for unaugmented artifacts
    unsigned_parts: list[str] = field(default_factory=list)

    @property
    def payload_types(self) -> list[str | None]:
        return [p.type for p in self.payloads]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
