"""The yocto-kit beside the repository (real upstream layer repositories, offline) for board tests."""
from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path


from buildctl.layers.layerinfo import LayerRef
from tests.helpers import skips

ROOT = Path(__file__).resolve().parents[2]
KIT = ROOT.parent / "shared" / "yocto-kit"

OE_CORE = "git.openembedded.org.openembedded-core"
YOCTO = "git.yoctoproject.org.meta-yocto"
RPI = "github.com.agherzan.meta-raspberrypi.git"
FSL = "github.com.Freescale.meta-freescale.git"
FSL3 = "github.com.Freescale.meta-freescale-3rdparty.git"
TEGRA = "github.com.OE4T.meta-tegra.git"
MENDER = "github.com.mendersoftware.meta-mender.git"
COMMUNITY = "github.com.mendersoftware.meta-mender-community.git"


def need_kit() -> Path:
    """The kit (tests/helpers/skips decides: skip locally, fail in CI)."""
    skips.require((KIT / OE_CORE).is_dir(), f"yocto-kit missing at {KIT}")
    return KIT


def ref(repo: str, layer: str = "", name: str = "", rev: str = "scarthgap") -> LayerRef:
    return LayerRef(str(KIT / repo), rev, layer, name or repo.removeprefix("github.com.").split(".")[-2 if repo.endswith(".git") else -1])


def commit(repo: str, rev: str = "scarthgap") -> str:
    return subprocess.run(["git", f"--git-dir={KIT / repo}", "rev-parse", f"{rev}^{{commit}}"],
                          capture_output=True, text=True, check=True).stdout.strip()


def export_conf(repo: str, layer: str, dest: Path, rev: str = "scarthgap") -> Path:
    """Write the layer's conf/ directory (from git) under dest; returns the layer directory."""
    prefix = f"{layer}/conf" if layer else "conf"
    out = subprocess.run(["git", f"--git-dir={KIT / repo}", "archive", "--format=tar", rev, prefix],
                         capture_output=True, check=True).stdout
    target = dest / repo
    with tarfile.open(fileobj=io.BytesIO(out)) as tf:
        tf.extractall(target, filter="data")
    return target / layer if layer else target
