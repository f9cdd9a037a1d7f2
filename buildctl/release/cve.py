"""CVE summary of a board: counts per status and the unpatched CVEs per package.

Reads the cve-check "version 1" JSON that scarthgap's cve-check writes as
``<IMAGE_NAME>.json`` and that wrynose's sbom-cve-check exports as
``<IMAGE_NAME>.sbom-cve-check.yocto.json``:
``{"version": "1", "package": [{"name", "layer", "version", "issue": [{"id", "status",
"scorev3", ...}]}]}`` with status Patched | Unpatched | Ignored. A product policy fails the
release on unpatched CVEs above a CVSS score, except those on its allowlist.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from buildctl.release.errors import ReleaseError

STATUSES = ("Patched", "Unpatched", "Ignored")


@dataclass(frozen=True)
class CveIssue:
    id: str
    package: str  # recipe name as cve-check reports it
    version: str
    status: str
    score: float | None  # CVSS v3 base score (v4, then v2, when v3 is missing)
    detail: str = ""
    link: str = ""


@dataclass
class CveSummary:
    source: str  # cve-check | sbom-cve-check
    counts: dict[str, int] = field(default_factory=dict)
    unpatched: dict[str, list[str]] = field(default_factory=dict)  # package -> CVE ids
    issues: list[CveIssue] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"source": self.source, "counts": dict(self.counts),
                "unpatched": {k: list(v) for k, v in self.unpatched.items()},
                "issues": [asdict(i) for i in self.issues]}

    @classmethod
    def from_dict(cls, d: dict) -> "CveSummary":
        return cls(d.get("source", ""), dict(d.get("counts", {})),
                   {k: list(v) for k, v in d.get("unpatched", {}).items()},
                   [CveIssue(**i) for i in d.get("issues", [])])


def is_cve_check_json(path: Path) -> bool:
    try:
        data = json.loads(Path(path).read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("version") == "1" and "package" in data


def _score(issue: dict) -> float | None:
    for key in ("scorev3", "scorev4", "scorev2"):
        try:
            v = float(issue.get(key) or 0)
        except (TypeError, ValueError):
            continue
        if v > 0:
            return v
    return None


def read_cve_check(path: Path, source: str = "cve-check") -> CveSummary:
    try:
        data = json.loads(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise ReleaseError(f"{path}: not a cve-check JSON file ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("package"), list):
        raise ReleaseError(f"{path}: not a cve-check JSON file (no package list)")
    s = CveSummary(source=source, counts={k: 0 for k in STATUSES})
    seen = set()
    for pkg in data["package"]:
        name = pkg.get("name", "?")
        for issue in pkg.get("issue", []) or []:
            status = issue.get("status", "Unknown")
            key = (name, issue.get("id"))
            if key in seen:
                continue
            seen.add(key)
            s.counts[status] = s.counts.get(status, 0) + 1
            s.issues.append(CveIssue(id=issue.get("id", "?"), package=name,
                                     version=pkg.get("version", ""), status=status,
                                     score=_score(issue), detail=issue.get("detail", ""),
                                     link=issue.get("link", "")))
            if status == "Unpatched":
                s.unpatched.setdefault(name, []).append(issue.get("id", "?"))
    for ids in s.unpatched.values():
        ids.sort()
    s.issues.sort(key=lambda i: (i.package, i.id))
    s.unpatched = dict(sorted(s.unpatched.items()))
    return s


@dataclass(frozen=True)
class CvePolicy:
    max_cvss: float | None = None  # fail on unpatched CVEs scoring above this
    allow: tuple[str, ...] = ()  # CVE ids accepted anyway


def policy_violations(summary: CveSummary, policy: CvePolicy) -> list[CveIssue]:
    if policy.max_cvss is None:
        return []
    return [i for i in summary.issues
            if i.status == "Unpatched" and i.id not in policy.allow
            and (i.score is None or i.score > policy.max_cvss)]
