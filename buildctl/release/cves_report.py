"""`release cves DIR`: the CVE summary of a bundle (every board's cves.json) or of a deploy
dir (its cve-check / sbom-cve-check JSON)."""
from __future__ import annotations

import json
from pathlib import Path

from buildctl.errors import UserError
from buildctl.release import bundle as B
from buildctl.release.cve import CveSummary, is_cve_check_json, read_cve_check


def cves_of(root: Path) -> dict:
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: not a directory")
    boards = []
    if (root / B.RELEASE_JSON).is_file():
        rel = json.loads((root / B.RELEASE_JSON).read_bytes())
        for b in rel.get("boards", []):
            p = root / b["dir"] / "cves.json"
            if p.is_file():
                s = CveSummary.from_dict(json.loads(p.read_bytes()))
                boards.append({"board": b["dir"], **s.to_dict()})
    else:
        for p in sorted(root.iterdir()):
            if p.is_symlink() or not p.is_file() or not p.name.endswith(".json"):
                continue
            if is_cve_check_json(p):
                src = "sbom-cve-check" if ".sbom-cve-check." in p.name else "cve-check"
                boards.append({"board": p.name, **read_cve_check(p, src).to_dict()})
    if not boards:
        raise UserError(f"{root}: no CVE report (cves.json in a bundle, or a cve-check / "
                        "sbom-cve-check JSON in a deploy dir)")
    return {"dir": str(root), "boards": boards}
