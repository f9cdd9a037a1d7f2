"""The report of one device test run: JSON for tools, JUnit XML for CI front ends.

Each step (boot, login, every check) carries its status (passed, failed, skipped), what it
ran, the exit status and output, and an excerpt of the serial log while it ran. In JUnit XML
the run is one <testsuite>, each step one <testcase> whose <system-out> is the excerpt.
"""
from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Collection, Iterable

from buildctl.errors import ProblemsFound, UserError
from buildctl.fsutil import write_atomic

STATUSES = ("passed", "failed", "skipped")
REPORT_NAME = "devtest-report.json"  # beside a board's deploy directory: <out>/<board>-<variant>/


@dataclass
class Step:
    name: str
    status: str  # one of STATUSES
    seconds: float = 0.0
    message: str = ""
    command: str | None = None
    exit_code: int | None = None
    output: str | None = None
    serial: str = ""  # serial log excerpt while the step ran


@dataclass
class Run:
    product: str
    board: str
    runner: str  # "qemu" or "lava"
    target: dict  # what was booted
    steps: list[Step] = field(default_factory=list)
    facts: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def verdict(self) -> str:
        if any(s.status == "failed" for s in self.steps):
            return "failed"
        if not self.steps or all(s.status == "skipped" for s in self.steps):
            return "skipped"
        return "passed"

    def counts(self) -> dict[str, int]:
        return {st: sum(1 for s in self.steps if s.status == st) for st in STATUSES}

    def to_dict(self) -> dict:
        return {"product": self.product, "board": self.board, "runner": self.runner,
                "target": self.target, "verdict": self.verdict, "counts": self.counts(),
                "seconds": round(self.seconds, 3), "facts": self.facts,
                "steps": [asdict(s) for s in self.steps]}


def to_json(run: Run) -> str:
    return json.dumps(run.to_dict(), indent=2, sort_keys=True, default=str) + "\n"


def _xml_text(text: str) -> str:
    # XML 1.0 cannot carry most control characters; a serial log has them
    return "".join(ch if ch in "\t\n" or ord(ch) >= 0x20 else f"\\x{ord(ch):02x}" for ch in text)


def to_junit(run: Run) -> str:
    counts = run.counts()
    suite = ET.Element("testsuite", name=f"devtest.{run.product}.{run.board}",
                       tests=str(len(run.steps)), failures=str(counts["failed"]), errors="0",
                       skipped=str(counts["skipped"]), time=f"{run.seconds:.3f}")
    props = ET.SubElement(suite, "properties")
    for k, v in [("runner", run.runner), *sorted((f"target.{k}", str(v)) for k, v in run.target.items())]:
        ET.SubElement(props, "property", name=k, value=_xml_text(str(v)))
    for s in run.steps:
        case = ET.SubElement(suite, "testcase", classname=f"{run.product}.{run.board}",
                             name=s.name, time=f"{s.seconds:.3f}")
        if s.status == "failed":
            f = ET.SubElement(case, "failure", message=_xml_text(s.message or "failed"))
            f.text = _xml_text(s.output or "")
        elif s.status == "skipped":
            ET.SubElement(case, "skipped", message=_xml_text(s.message))
        if s.serial:
            ET.SubElement(case, "system-out").text = _xml_text(s.serial)
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def write(run: Run, *, json_path: Path | None = None, junit_path: Path | None = None) -> None:
    if json_path:
        write_atomic(Path(json_path), to_json(run))
    if junit_path:
        write_atomic(Path(junit_path), to_junit(run))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _image_sha256(data) -> str | None:
    facts = data.get("facts") if isinstance(data, dict) else None
    return facts.get("image_sha256") if isinstance(facts, dict) else None


def tested_verdict(board_dir: Path, images: Path | Iterable[Path]) -> str | None:
    """The verdict of the last device test of this very image (same sha256) in a board's
    output directory (or a board's directory in a release bundle): "passed" or "failed";
    None when it was not tested (or another image was). With several images (a board that
    deploys more than one disk image), the test of any one of them counts.

    This is what release, publish and rollout ask before they ship an image."""
    path = Path(board_dir) / REPORT_NAME
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    tested = _image_sha256(data)
    if not tested:
        return None
    images = [images] if isinstance(images, (str, Path)) else list(images)
    if not any(Path(i).is_file() and sha256_file(Path(i)) == tested for i in images):
        return None
    return data.get("verdict") if data.get("verdict") in ("passed", "failed") else None


@dataclass(frozen=True)
class BoardImages:
    """A board about to ship: where its test report lies and the disk images it ships."""

    board: str  # as the user reads it: <board>-<variant>
    dir: Path  # holds devtest-report.json (when it was tested)
    images: tuple[Path, ...]
    name: str = ""  # the board's name in the manifest


def require_tested(boards: list[BoardImages], *, untested: bool | Collection[str],
                   action: str) -> dict[str, str]:
    """The device test gate of release, publish and rollout: every board's shipped image
    passed `buildctl test`, else ProblemsFound (exit 1) naming each board whose test is
    missing or failed, in one line. untested=True (--untested) refuses nothing; a collection
    of board names (--untested-board B) lets only those boards through untested.
    Returns board -> "passed" | "failed" | "untested"."""
    excused = (lambda b: True) if untested is True else \
        (lambda b: bool(untested) and (b.name in untested or b.board in untested))
    verdicts = {b.board: tested_verdict(b.dir, b.images) or "untested" for b in boards}
    why = {"failed": "device test failed", "untested": "no device test of this image"}
    bad = [f"{b.board} ({why[verdicts[b.board]]})"
           for b in boards if verdicts[b.board] != "passed" and not excused(b)]
    if bad:
        raise ProblemsFound(f"{action} refused: not tested: {', '.join(bad)}; run `buildctl test` "
                            "on the board's image, or pass --untested to ship it anyway")
    return verdicts


def bundle_boards(bundle: Path) -> list[BoardImages]:
    """The boards of a release bundle (from its release.json) with their disk images."""
    try:
        rel = json.loads((Path(bundle) / "release.json").read_text())
        boards, files = rel["boards"], rel["files"]
        return [BoardImages(b["dir"], Path(bundle) / b["dir"],
                            tuple(Path(bundle) / f["path"] for f in files
                                  if f.get("kind") == "image" and f.get("board") == b["dir"]),
                            b.get("board", ""))
                for b in boards]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{bundle}/release.json: cannot read its boards and files ({exc})") from None
