"""Build reports: one JSON file per board and one per build, written atomically."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from buildctl.fsutil import write_atomic

REPORT_VERSION = 1


@dataclass
class PhaseResult:
    name: str  # checkout | fetch | build | dry-run | parse | collect
    status: str = "pending"  # pending | running | succeeded | failed | interrupted | skipped
    seconds: float = 0.0
    exit_code: int | None = None
    log: str = ""
    sstate: dict | None = None  # this phase's Sstate summary (a setscene-only fetch has one)


@dataclass
class BoardReport:
    board: str
    machine: str
    variant: str
    mode: str  # build | dry-run | parse-only
    status: str = "pending"  # pending | running | succeeded | failed | interrupted | skipped
    started: str = ""
    seconds: float = 0.0
    runtime: str = ""
    image: str | None = None
    image_digest: str | None = None
    cache_identity: str = ""
    source_date_epoch: int | None = None
    layers: dict[str, dict] = field(default_factory=dict)  # repo -> {url|path, commit}
    phases: list[PhaseResult] = field(default_factory=list)
    bitbake: dict = field(default_factory=dict)  # BitbakeLog.to_dict() of the main phase
    deploy: list[dict] = field(default_factory=list)  # {path, size}
    deploy_dir: str | None = None
    artifacts: list[dict] = field(default_factory=list)  # .mender files and gate problems
    log_dir: str = ""
    message: str = ""  # one line on why it failed / was skipped
    root_cause: str = ""  # the failing tool's first own error line (git, fetcher, compiler...)

    def phase(self, name: str) -> PhaseResult:
        for p in self.phases:
            if p.name == name:
                return p
        p = PhaseResult(name)
        self.phases.append(p)
        return p

    def to_dict(self) -> dict:
        d = asdict(self)
        d["report_version"] = REPORT_VERSION
        d["durations"] = {p.name: p.seconds for p in self.phases}
        return d


@dataclass
class BuildReport:
    product: str
    variant: str
    mode: str
    status: str = "running"  # succeeded | failed | interrupted
    started: str = ""
    seconds: float = 0.0
    runtime: str = ""
    image: str | None = None
    image_digest: str | None = None
    out_dir: str = ""
    jobs: int = 1
    threads_per_board: int = 1
    caches: dict = field(default_factory=dict)
    hashserve: dict = field(default_factory=dict)  # mode, address, database, upstream
    order: list[str] = field(default_factory=list)
    boards: list[BoardReport] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["report_version"] = REPORT_VERSION
        d["boards"] = [b.to_dict() for b in self.boards]
        d["summary"] = {s: sum(1 for b in self.boards if b.status == s)
                        for s in ("succeeded", "failed", "interrupted", "skipped")}
        return d


def write_json(path: Path, data: dict, owner: tuple[int, int] | None = None) -> None:
    """Never half a report: written beside ``path`` and renamed."""
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", owner=owner)
