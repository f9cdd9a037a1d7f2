"""What a publish did, per target and file: the data behind both the text and --json output."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

# actions per file
SENT = "sent"  # bytes uploaded
LINKED = "linked"  # the server had the content (checksum deploy): no bytes sent
PRESENT = "present"  # already at its place with the right checksum: nothing sent
WOULD_SEND = "would-send"  # --dry-run


@dataclass
class FileResult:
    path: str  # in the bundle
    remote: str
    size: int
    action: str
    verified: bool = False


@dataclass
class TargetReport:
    name: str
    type: str
    url: str
    files: list[FileResult] = field(default_factory=list)
    bytes_sent: int = 0
    retries: int = 0
    promoted: str | None = None  # artifactory: the release repository, once promoted
    build_info: str | None = None  # artifactory: name/number
    ok: bool = False
    error: str | None = None
    events: list[str] = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)  # --dry-run: what would be sent

    def to_dict(self) -> dict:
        return asdict(self)
