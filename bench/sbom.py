"""SBOM step at image scale: N packages, M runtime relationships over per-recipe documents.

Generates an OE-shaped deploy dir (scarthgap: SPDX 2.2 tarball with image, package, runtime
and recipe documents; or wrynose: one SPDX 3.0.1 JSON-LD), then, each in a fresh process so
peak RSS means something:
  produce   buildctl reads OE's output and writes SPDX 2.3, SPDX 3.0.1 and CycloneDX 1.6
  spdx-tools          parse + validate the SPDX 2.3 document     (the reference validators,
  spdx-python-model   load + link the SPDX 3.0.1 document         side by side)
  cyclonedx-python-lib  strict JSON-schema validation of the CycloneDX document
Prints wall time and peak RSS per line. Target for `produce`: < 10 s and < 500 MB.

  python bench/sbom.py [--packages 5000] [--relationships 20000] [--series scarthgap|wrynose]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def generate(deploy: Path, n_packages: int, n_rels: int, series: str) -> None:
    from tests.helpers.oe_deploy_fixture import DeployFixture, Pkg, write_deploy

    per_recipe = 5
    names = [f"pkg{i:05d}" for i in range(n_packages)]
    deps_each, extra = divmod(n_rels, n_packages)
    pkgs = []
    for i, name in enumerate(names):
        k = deps_each + (1 if i < extra else 0)
        deps = tuple(names[(i + 1 + j * 7) % n_packages] for j in range(k))
        pkgs.append(Pkg(name, f"1.{i % 97}", recipe=f"recipe{i // per_recipe:04d}",
                        license="MIT" if i % 3 else "GPL-2.0-only & BSD-3-Clause",
                        rdepends=deps))
    write_deploy(deploy, DeployFixture(series=series, packages=pkgs, cve=False,
                                       image_types=("ext4",)))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def produce(deploy: Path, out: Path, series: str) -> dict:
    from buildctl.release.sbom.model import Input, SbomContext
    from buildctl.release.sbom.read_spdx3 import read_spdx3
    from buildctl.release.sbom.read_spdx22 import read_spdx22
    from buildctl.release.sbom.write_cyclonedx import build_cyclonedx
    from buildctl.release.sbom.write_spdx3 import build_spdx3
    from buildctl.release.sbom.write_spdx23 import build_spdx23

    t0 = time.perf_counter()
    link = "core-image-minimal-qemux86-64.rootfs"
    sb = (read_spdx22(deploy / f"{link}.spdx.tar.zst") if series == "scarthgap"
          else read_spdx3(deploy / f"{link}.spdx.json"))
    t_read = time.perf_counter() - t0
    ctx = SbomContext("bench", "1.0", "qemux86-64", "release", "2024-01-01T00:00:00Z",
                      [Input("layer-repo", "openembedded-core", "0" * 40,
                             "https://git.openembedded.org/openembedded-core"),
                       Input("tool", "buildctl", "bench")], "bench")
    for name, build in (("sbom.spdx.json", build_spdx23), ("sbom.spdx3.json", build_spdx3),
                        ("sbom.cdx.json", build_cyclonedx)):
        (out / name).write_text(json.dumps(build(sb, ctx), indent=2, sort_keys=True))
    return {"seconds": time.perf_counter() - t0, "read_seconds": t_read, "rss_mb": _rss_mb(),
            "components": len(sb.components),
            "relationships": sum(len(c.depends) for c in sb.components.values())}


def validate(kind: str, path: Path) -> dict:
    from buildctl.release.sbom.validate import validate_cyclonedx, validate_spdx2, validate_spdx3

    t0 = time.perf_counter()
    problems = {"spdx-tools": validate_spdx2, "spdx-python-model": validate_spdx3,
                "cyclonedx-python-lib": validate_cyclonedx}[kind](path)
    return {"seconds": time.perf_counter() - t0, "rss_mb": _rss_mb(), "problems": len(problems)}


def _child(*args: str, timeout: float | None = None) -> dict | None:
    """Run one measurement in a fresh process; None when it did not finish within timeout."""
    try:
        r = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    if r.returncode != 0:
        raise SystemExit(r.stderr)
    return json.loads(r.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packages", type=int, default=5000)
    ap.add_argument("--relationships", type=int, default=20000)
    ap.add_argument("--series", choices=("scarthgap", "wrynose"), default="scarthgap")
    ap.add_argument("--validator-timeout", type=float, default=300, metavar="S",
                    help="give up on a validator after S seconds (default 300)")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        what, p1, p2 = a.child
        data = (produce(Path(p1), Path(p2), a.series) if what == "produce"
                else validate(what, Path(p1)))
        print(json.dumps(data))
        return
    with tempfile.TemporaryDirectory() as tmp:
        deploy, out = Path(tmp) / "deploy", Path(tmp) / "out"
        out.mkdir()
        t0 = time.perf_counter()
        generate(deploy, a.packages, a.relationships, a.series)
        print(f"generated {a.series} input: {a.packages} packages, {a.relationships} runtime "
              f"relationships in {time.perf_counter() - t0:.1f} s "
              f"({sum(f.stat().st_size for f in deploy.iterdir() if f.is_file()) / 1e6:.1f} MB)",
              flush=True)
        p = _child("--series", a.series, "--child", "produce", str(deploy), str(out))
        print(f"{'produce SPDX 2.3 + SPDX 3.0.1 + CycloneDX 1.6':48} {p['seconds']:7.2f} s "
              f"{p['rss_mb']:7.0f} MB   (reading OE's output: {p['read_seconds']:.2f} s; "
              f"{p['components']} components, {p['relationships']} dependencies)", flush=True)
        for kind, name in (("spdx-tools", "sbom.spdx.json"),
                           ("spdx-python-model", "sbom.spdx3.json"),
                           ("cyclonedx-python-lib", "sbom.cdx.json")):
            v = _child("--child", kind, str(out / name), "-", timeout=a.validator_timeout)
            size = (out / name).stat().st_size / 1e6
            label = f"validate {name} ({kind})"
            if v is None:
                print(f"{label:48} > {a.validator_timeout:.0f} s (stopped)   ({size:.1f} MB)",
                      flush=True)
                continue
            print(f"{label:48} {v['seconds']:7.2f} s {v['rss_mb']:7.0f} MB   "
                  f"({size:.1f} MB, {v['problems']} problems)", flush=True)
        ok = p["seconds"] < 10 and p["rss_mb"] < 500
        print(f"target produce < 10 s and < 500 MB: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
