"""BitBake settings generated from the typed manifest fields, grouped in named sections.

Each section becomes one kas ``local_conf_header`` entry. Cache *paths* (DL_DIR, SSTATE_DIR)
are deliberately absent: the build runtime owns them (one source of truth).
"""
from __future__ import annotations

from dataclasses import dataclass

from buildctl.manifest.model import Board, Product, Variant

# mender.image_types -> meta-mender feature
IMAGE_FEATURES = {"sdimg": "mender-image-sd", "uefiimg": "mender-image-uefi",
                  "biosimg": "mender-image-bios", "gptimg": "mender-image-gpt",
                  "ubimg": "mender-image-ubi"}
# mender.bootloader -> (features to enable, features to disable)
BOOTLOADER_FEATURES = {
    "u-boot": (["mender-uboot"], ["mender-grub"]),
    "grub-efi": (["mender-grub"], ["mender-uboot"]),
    "grub-bios": (["mender-grub", "mender-bios"], ["mender-uboot"]),
    "tegra": ([], ["mender-grub", "mender-uboot"]),
    "none": ([], ["mender-grub", "mender-uboot"]),
}
ALL_DISK_FEATURES = sorted(IMAGE_FEATURES.values())


@dataclass(frozen=True)
class Assignment:
    """One generated ``VAR op "value"`` line, remembering which manifest field it came from."""

    var: str
    value: str
    op: str = "="
    origin: str = ""  # "file:line (field)" for findings

    def render(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.var} {self.op} "{escaped}"'


def _origin(obj, *keypath) -> str:
    path = getattr(obj, "path", None)
    line = obj.line(*keypath) if hasattr(obj, "line") else None
    return f"{path}:{line}" if line else str(path or "")


def mender_section(product: Product, board: Board, variant: Variant) -> list[Assignment]:
    m = board.mender
    out: list[Assignment] = []
    o = lambda *k: _origin(board, "mender", *k)  # noqa: E731
    if m.device_types:
        out.append(Assignment("MENDER_DEVICE_TYPE", m.device_types[0], origin=o("device_types")))
        out.append(Assignment("MENDER_DEVICE_TYPES_COMPATIBLE", " ".join(m.device_types),
                              origin=o("device_types")))
    s = m.storage
    for var, value, key in (("MENDER_STORAGE_DEVICE", s.device, "device"),
                            ("MENDER_STORAGE_TOTAL_SIZE_MB", s.total_mb, "total_mb"),
                            ("MENDER_BOOT_PART_SIZE_MB", s.boot_mb, "boot_mb"),
                            ("MENDER_DATA_PART_SIZE_MB", s.data_mb, "data_mb")):
        if value is not None:
            out.append(Assignment(var, str(value), origin=o("storage", key)))
    if s.alignment_kb:
        out.append(Assignment("MENDER_PARTITION_ALIGNMENT", str(s.alignment_kb * 1024),
                              origin=o("storage", "alignment_kb")))
    enable: list[str] = []
    disable: list[str] = []
    if m.bootloader:
        on, off = BOOTLOADER_FEATURES[m.bootloader]
        enable += on
        disable += off
    disk = [IMAGE_FEATURES[t] for t in m.image_types if t in IMAGE_FEATURES]
    if disk:
        enable += disk
        disable += [f for f in ALL_DISK_FEATURES if f not in disk]
    if enable:
        out.append(Assignment("MENDER_FEATURES_ENABLE:append", " " + " ".join(enable),
                              origin=o("bootloader")))
    if disable:
        out.append(Assignment("MENDER_FEATURES_DISABLE:append", " " + " ".join(disable),
                              origin=o("image_types")))
    out.append(Assignment("MENDER_ARTIFACT_NAME", product.artifact_name(board.name, variant.name),
                          origin=_origin(product, "release", "artifact_name")))
    pm = product.mender
    if pm.server_url:
        out.append(Assignment("MENDER_SERVER_URL", pm.server_url,
                              origin=_origin(product, "mender", "server_url")))
    if pm.update_poll_interval_s:
        out.append(Assignment("MENDER_UPDATE_POLL_INTERVAL_SECONDS", str(pm.update_poll_interval_s),
                              origin=_origin(product, "mender", "update_poll_interval_s")))
    if pm.inventory_poll_interval_s:
        out.append(Assignment("MENDER_INVENTORY_POLL_INTERVAL_SECONDS",
                              str(pm.inventory_poll_interval_s),
                              origin=_origin(product, "mender", "inventory_poll_interval_s")))
    # Signing happens outside the build container (buildctl artifact sign): no private key here.
    return out


def cache_section(product: Product) -> list[Assignment]:
    """The signature handler that goes with the hash-equivalence choice.

    Server addresses and mirrors are environment settings (see ``cache_env``): BitBake reads
    them from the environment before local.conf, so a local.conf value would override the
    shared server and mirrors the build runtime chooses for each phase.
    """
    if product.cache.hashserve is None:
        return []  # the distro's choice
    handler = "OEBasicHash" if product.cache.hashserve == "none" else "OEEquivHash"
    return [Assignment("BB_SIGNATURE_HANDLER", handler, origin=_origin(product, "cache", "hashserve"))]


def cache_env(product: Product) -> dict[str, str]:
    """kas ``env`` defaults from the manifest's cache settings (the process environment wins,
    which is how ``buildctl build`` passes the per-run values). No cache paths: the runtime
    owns DL_DIR and SSTATE_DIR."""
    c = product.cache
    env = {}
    if c.hashserve is not None:
        env["BB_HASHSERVE"] = "" if c.hashserve == "none" else c.hashserve
    if c.hashserve_upstream:
        env["BB_HASHSERVE_UPSTREAM"] = c.hashserve_upstream
    if c.sstate_mirrors:
        env["SSTATE_MIRRORS"] = " ".join(c.sstate_mirrors)
    return env


def sbom_section(product: Product) -> list[Assignment]:
    out: list[Assignment] = []
    o = lambda k: _origin(product, "sbom", k)  # noqa: E731
    if product.sbom.spdx:
        out.append(Assignment("INHERIT", " create-spdx", op="+=", origin=o("spdx")))
        if product.sbom.include_sources:
            out.append(Assignment("SPDX_INCLUDE_SOURCES", "1", origin=o("include_sources")))
    return out


def image_section(product: Product, board: Board, variant: Variant) -> list[Assignment]:
    out: list[Assignment] = []
    pkgs: list[str] = []
    for p in (*product.packages, *board.packages, *variant.packages):
        if p not in pkgs:
            pkgs.append(p)
    if pkgs:
        out.append(Assignment("IMAGE_INSTALL:append", " " + " ".join(pkgs),
                              origin=_origin(product, "packages")))
    feats = list(product.image_features) + [f for f in variant.image_features
                                            if f not in product.image_features]
    if feats:
        out.append(Assignment("EXTRA_IMAGE_FEATURES", " " + " ".join(feats), op="+=",
                              origin=_origin(product, "image_features")))
    return out


def _free(obj, mapping: dict[str, str], *keypath) -> list[Assignment]:
    return [Assignment(var, str(value), op=getattr(value, "op", "="),
                       origin=_origin(obj, *keypath, var))
            for var, value in mapping.items()]


def sections(product: Product, board: Board, variant: Variant) -> dict[str, list[Assignment]]:
    """The named local.conf sections for one board and variant, in the order kas applies them."""
    secs = {
        "10-buildctl-mender": mender_section(product, board, variant),
        "20-buildctl-cache": cache_section(product),
        "30-buildctl-sbom": sbom_section(product),
        "40-buildctl-image": image_section(product, board, variant),
        "50-board": _free(board, board.local_conf, "local_conf"),
        "60-product": _free(product, product.local_conf, "local_conf"),
        f"70-variant-{variant.name}": _free(product, variant.local_conf, "variants", variant.name,
                                             "local_conf"),
    }
    return {k: v for k, v in secs.items() if v}


def render(assignments: list[Assignment]) -> str:
    return "".join(a.render() + "\n" for a in assignments)
