"""What pre-flight checks report: one Finding per problem, naming board, file and line."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True, order=True)
class Finding:
    board: str  # board name, or "*" for product-wide findings
    code: str  # stable id, e.g. "series-compat", "layer-depends", "machine-missing"
    message: str  # one line, says what is wrong and (where possible) what to do
    file: str = ""  # manifest or layer file the problem is in (repo-relative for layers)
    line: int | None = None
    severity: str = "error"  # "error" | "warning"

    def location(self) -> str:
        if not self.file:
            return ""
        return f"{self.file}:{self.line}" if self.line else self.file

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        loc = self.location()
        return f"[{self.board}] {loc + ': ' if loc else ''}{self.message} ({self.code})"
