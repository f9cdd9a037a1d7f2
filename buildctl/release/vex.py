"""CycloneDX 1.6 VEX for a board's CVE summary, referring to the components of its BOM.

cve-check status -> CycloneDX analysis state: Patched -> resolved, Ignored -> not_affected,
Unpatched -> exploitable (OE does not know more than "affected").
"""
from __future__ import annotations

from buildctl.release.cve import CveSummary
from buildctl.release.sbom.model import ImageSbom, SbomContext
from buildctl.release.sbom.write_cyclonedx import SPEC, bom_ref, serial

STATE = {"Patched": "resolved", "Ignored": "not_affected", "Unpatched": "exploitable"}


def build_vex(summary: CveSummary, sb: ImageSbom | None, ctx: SbomContext) -> dict:
    bom = serial(ctx, "bom")
    by_recipe: dict[str, list[str]] = {}
    if sb is not None:
        for c in sb.components.values():
            by_recipe.setdefault(c.recipe or c.name, []).append(c.name)
    vulns: dict[str, dict] = {}
    for i in summary.issues:
        v = vulns.get(i.id)
        if v is None:
            v = vulns[i.id] = {"bom-ref": f"vuln-{i.id}", "id": i.id,
                               "source": {"name": "NVD",
                                          "url": i.link or f"https://nvd.nist.gov/vuln/detail/{i.id}"},
                               "analysis": {"state": STATE.get(i.status, "in_triage")},
                               "affects": []}
            if i.detail:
                v["analysis"]["detail"] = i.detail
            if i.score is not None:
                v["ratings"] = [{"score": i.score, "method": "CVSSv31", "source": {"name": "NVD"}}]
        names = by_recipe.get(i.package) or [i.package]
        for n in sorted(names):
            ref = {"ref": f"{bom}/1#{bom_ref(n)}"}
            if ref not in v["affects"]:
                v["affects"].append(ref)
    return {"bomFormat": "CycloneDX", "specVersion": SPEC, "serialNumber": serial(ctx, "vex"),
            "version": 1, "metadata": {"timestamp": ctx.created},
            "vulnerabilities": [vulns[k] for k in sorted(vulns)]}
