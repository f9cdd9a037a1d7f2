"""meta-mender-community's layout and contribution rules, written once as data.

new-board renders from these; board check enforces them.
"""
from __future__ import annotations

from dataclasses import dataclass

COMMUNITY_URL = "https://github.com/mendersoftware/meta-mender-community.git"

# Yocto LTS series a board contribution may target first (see docs/boards.md).
LTS_SERIES = ("kirkstone", "scarthgap", "wrynose")
DEFAULT_SERIES = "scarthgap"

# The baselines a board file includes (UBI boards use the UBI variant).
BASELINE = "kas/include/mender-full.yml"
BASELINE_UBI = "kas/include/mender-full-ubi.yml"
BASELINE_PREFIX = "kas/include/mender-full"

KAS_DIR = "kas"
INCLUDE_DIR = "kas/include"
CI_WORKFLOW = ".github/workflows/build.yml"
LAYER_PREFIX = "meta-mender-"
# Layers of the community repository that are not per-BSP integration layers.
NON_BSP_LAYERS = ("meta-mender-client-only", "meta-mender-update-modules", "meta-mender-validation",
                  "meta-mender-qemu-community")

# kas project-file format the generated files declare: 14 introduced `commit:`/`branch:`.
KAS_FORMAT = 14


@dataclass(frozen=True)
class Deprecated:
    key: str  # dotted path; "*" matches any repo id
    since: int  # kas format version that replaced it
    instead: str


DEPRECATED_KAS_KEYS = (
    Deprecated("repos.*.refspec", 14, "use commit: (and branch: or tag:)"),
    Deprecated("defaults.repos.refspec", 14, "use defaults.repos.branch"),
)


@dataclass(frozen=True)
class CoreRepo:
    name: str
    url: str
    layers: tuple[str, ...]


# What mender-base.yml brings (poky's layers from their split repositories): the layers every
# board's MACHINE conf may include from, so the probe reads them too.
CORE_STACK = (
    CoreRepo("openembedded-core", "https://git.openembedded.org/openembedded-core", ("meta",)),
    CoreRepo("meta-yocto", "https://git.yoctoproject.org/meta-yocto", ("meta-poky", "meta-yocto-bsp")),
    CoreRepo("meta-mender", "https://github.com/mendersoftware/meta-mender.git", ("meta-mender-core",)),
)


def on_lts_branch(branch: str, series: str) -> bool:
    """`scarthgap`, `scarthgap/u-boot`, `scarthgap-l4t-r36` follow the scarthgap series."""
    if branch == series:
        return True
    return any(branch.startswith(series + sep) for sep in "/-_.")


def lts_of(branch: str) -> str | None:
    for s in LTS_SERIES:
        if on_lts_branch(branch, s):
            return s
    return None
