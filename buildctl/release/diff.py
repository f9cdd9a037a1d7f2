"""Compare two bundles: per board the files that changed, packages added/removed/upgraded
and licence changes (from our CycloneDX SBOMs), CVEs newly unpatched, and a
reproducibility report (same inputs: were the outputs bit-for-bit identical?)."""
from __future__ import annotations

import json
from pathlib import Path

from buildctl.errors import UserError
from buildctl.release import bundle as B

# files whose bytes depend on more than the build's inputs (the SBOM of another series...)
_INPUT_KEYS = ("lock", "manifests", "source_date_epoch", "series")


def _load(root: Path) -> dict:
    try:
        return json.loads((Path(root) / B.RELEASE_JSON).read_bytes())
    except FileNotFoundError:
        raise UserError(f"{root}: not a release bundle (no {B.RELEASE_JSON})") from None
    except ValueError as exc:
        raise UserError(f"{root}/{B.RELEASE_JSON}: not JSON ({exc})") from None


def _packages(root: Path, board_dir: str) -> dict[str, dict]:
    p = Path(root) / board_dir / "sbom.cdx.json"
    if not p.is_file():
        return {}
    bom = json.loads(p.read_bytes())
    out = {}
    for c in bom.get("components", []):
        if c.get("type") != "library":
            continue
        lic = ";".join(x.get("expression") or (x.get("license") or {}).get("id", "")
                       for x in c.get("licenses", []))
        out[c["name"]] = {"version": c.get("version", ""), "license": lic}
    return out


def _unpatched(root: Path, board_dir: str) -> set[str]:
    p = Path(root) / board_dir / "cves.json"
    if not p.is_file():
        return set()
    data = json.loads(p.read_bytes())
    return {f"{pkg}:{cve}" for pkg, ids in data.get("unpatched", {}).items() for cve in ids}


def diff_bundles(a: Path, b: Path) -> dict:
    ra, rb = _load(a), _load(b)
    fa = {f["path"]: f for f in ra.get("files", [])}
    fb = {f["path"]: f for f in rb.get("files", [])}
    boards = sorted({x["dir"] for x in ra.get("boards", [])} | {x["dir"] for x in rb.get("boards", [])})
    out_boards = []
    for bd in boards:
        pa = {p.split("/", 1)[1]: f for p, f in fa.items() if p.startswith(bd + "/")}
        pb = {p.split("/", 1)[1]: f for p, f in fb.items() if p.startswith(bd + "/")}
        changed = sorted(n for n in pa.keys() & pb.keys() if pa[n]["sha256"] != pb[n]["sha256"])
        ka, kb = _packages(a, bd), _packages(b, bd)
        upgraded = sorted(({"name": n, "from": ka[n]["version"], "to": kb[n]["version"]}
                           for n in ka.keys() & kb.keys() if ka[n]["version"] != kb[n]["version"]),
                          key=lambda x: x["name"])
        licences = sorted(({"name": n, "from": ka[n]["license"], "to": kb[n]["license"]}
                           for n in ka.keys() & kb.keys() if ka[n]["license"] != kb[n]["license"]),
                          key=lambda x: x["name"])
        new_cves = sorted(_unpatched(b, bd) - _unpatched(a, bd))
        out_boards.append({
            "board": bd,
            "files": {"changed": changed, "added": sorted(pb.keys() - pa.keys()),
                      "removed": sorted(pa.keys() - pb.keys())},
            "packages": {"added": sorted(kb.keys() - ka.keys()),
                         "removed": sorted(ka.keys() - kb.keys()),
                         "upgraded": upgraded, "licence_changed": licences},
            "new_unpatched_cves": new_cves,
        })
    same_inputs = all(ra.get(k) == rb.get(k) for k in _INPUT_KEYS) and \
        (ra.get("builder") or {}).get("digest") == (rb.get("builder") or {}).get("digest")
    differing = sorted(p for p in fa.keys() & fb.keys() if fa[p]["sha256"] != fb[p]["sha256"])
    only = sorted(fa.keys() ^ fb.keys())
    return {
        "a": str(a), "b": str(b),
        "versions": [ra.get("version"), rb.get("version")],
        "boards": out_boards,
        "reproducibility": {
            "same_inputs": same_inputs,
            "identical": not differing and not only,
            "differing_files": differing, "files_in_one_only": only,
            "verdict": ("reproducible" if same_inputs and not differing and not only else
                        "not reproducible" if same_inputs else "inputs differ"),
        },
    }
