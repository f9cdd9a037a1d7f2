"""Which manifest field sets which BitBake variable: the one table everything else reads.

Derived from it: the variables ``local_conf`` may not set (the loader), the generated
local.conf sections and kas ``env`` entries (compose), the reverse mapping of import-kas, and
the field reference in docs/manifests.md (checked by tests/manifest/test_bitbake_vars.py).

Each row is one variable. ``render`` gets a :class:`Context` and returns the value to write,
or None to write nothing (the field is unset). ``reverse`` tells import-kas which field an
assignment of that variable becomes, and from which operators.
"""
from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Callable

from buildctl.manifest.model import Board, Product, Variant

# mender.image_types -> meta-mender feature
IMAGE_FEATURES = {"sdimg": "mender-image-sd", "uefiimg": "mender-image-uefi",
                  "biosimg": "mender-image-bios", "gptimg": "mender-image-gpt",
                  "ubimg": "mender-image-ubi"}
# mender.bootloader -> (features to enable, features to disable)
BOOTLOADER_FEATURES = {
    "u-boot": (("mender-uboot",), ("mender-grub",)),
    "grub-efi": (("mender-grub",), ("mender-uboot",)),
    "grub-bios": (("mender-grub", "mender-bios"), ("mender-uboot",)),
    "tegra": ((), ("mender-grub", "mender-uboot")),
    "none": ((), ("mender-grub", "mender-uboot")),
}
ALL_DISK_FEATURES = tuple(sorted(IMAGE_FEATURES.values()))

# Where a variable is set
LOCAL_CONF = "local.conf"  # a compose section (kas local_conf_header)
KAS_ENV = "kas env"  # a kas `env:` default (BitBake reads it from the environment first)
KAS_ENV_SECRET = "kas env, value at build time"  # name only; the build resolves the reference
KAS_KEY = "kas"  # a top-level kas key (machine, distro)
BUILD = "buildctl build"  # set per run by the build runtime, never by compose
OUTSIDE = "outside the build"  # consumed by buildctl itself (e.g. signing), never given to BitBake


@dataclass(frozen=True)
class Context:
    """What a renderer sees: one board of one variant, and files compose prepared."""

    product: Product
    board: Board
    variant: Variant
    verify_key_path: str | None = None  # where compose wrote the public verification key


@dataclass(frozen=True)
class Reverse:
    """How import-kas turns an assignment back into a manifest field.

    kind: scalar (a string, or an int when all digits) | words (appended to a list) |
    first (first element of a list) | rest (the list after its first element) | secret (an
    env: reference, never the value) | pairs (whitespace list read two by two) | inherit (true
    when the value names the class) | artifact-name (the release template, product-wide only).
    """

    scope: str  # "board" | "product": the manifest the field belongs to
    path: tuple[str, ...]
    kind: str = "scalar"
    ops: tuple[str, ...] = ("=",)  # operators accepted with the row's variable
    forms: tuple[tuple[str, str], ...] = ()  # other (variable spelling, operator) pairs accepted


@dataclass(frozen=True)
class Binding:
    field: str  # the manifest field, as docs/manifests.md names it
    var: str  # the BitBake variable (with an :append when written that way)
    where: str
    section: str = ""  # compose section (local.conf rows)
    op: str = "="
    render: Callable[[Context], str | None] | None = None
    reverse: Reverse | None = None
    user_may_set: bool = False  # may local_conf assign it too (True: adds to what the field sets)
    scope: str = "product"  # the manifest holding the field: "board" | "product"

    @property
    def base(self) -> str:
        return self.var.split(":", 1)[0]

    @property
    def keypath(self) -> tuple[str, ...]:
        """The (first) field's key path, for file:line origins."""
        return tuple(self.field.split(",")[0].split(" ")[0].split("."))


def _storage(key: str):
    return lambda c: _str(getattr(c.board.mender.storage, key))


def _str(value) -> str | None:
    return None if value is None else str(value)


def mender_features(c: Context) -> tuple[list[str], list[str]]:
    """(meta-mender features to enable, to disable) for the board's bootloader and image types."""
    m = c.board.mender
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
    return enable, disable


def _words(items) -> str | None:
    return " " + " ".join(items) if items else None


def _packages(c: Context) -> str | None:
    pkgs: list[str] = []
    for p in (*c.product.packages, *c.board.packages, *c.variant.packages):
        if p not in pkgs:
            pkgs.append(p)
    return _words(pkgs)


def _image_features(c: Context) -> str | None:  # written with += (which adds the space)
    p = c.product.image_features
    return " ".join(list(p) + [f for f in c.variant.image_features if f not in p]) or None


def _signature_handler(c: Context) -> str | None:
    h = c.product.cache.hashserve
    return None if h is None else ("OEBasicHash" if h == "none" else "OEEquivHash")


def _hashserve(c: Context) -> str | None:
    h = c.product.cache.hashserve
    return None if h is None else ("" if h == "none" else h)


MENDER, CACHE, SBOM, IMAGE = "10-buildctl-mender", "20-buildctl-cache", "30-buildctl-sbom", "40-buildctl-image"

BINDINGS: tuple[Binding, ...] = (
    Binding("machine", "MACHINE", KAS_KEY, render=lambda c: c.board.machine, scope="board"),
    Binding("distro", "DISTRO", KAS_KEY, render=lambda c: c.product.distro),
    Binding("mender.device_types", "MENDER_DEVICE_TYPE", LOCAL_CONF, MENDER,
            render=lambda c: c.board.mender.device_types[0] if c.board.mender.device_types else None,
            reverse=Reverse("board", ("mender", "device_types"), "first"), scope="board"),
    Binding("mender.device_types", "MENDER_DEVICE_TYPES_COMPATIBLE", LOCAL_CONF, MENDER,
            render=lambda c: " ".join(c.board.mender.device_types) or None,
            reverse=Reverse("board", ("mender", "device_types"), "rest"), scope="board"),
    Binding("mender.storage.device", "MENDER_STORAGE_DEVICE", LOCAL_CONF, MENDER,
            render=_storage("device"), reverse=Reverse("board", ("mender", "storage", "device")), scope="board"),
    Binding("mender.storage.total_mb", "MENDER_STORAGE_TOTAL_SIZE_MB", LOCAL_CONF, MENDER,
            render=_storage("total_mb"), reverse=Reverse("board", ("mender", "storage", "total_mb")), scope="board"),
    Binding("mender.storage.boot_mb", "MENDER_BOOT_PART_SIZE_MB", LOCAL_CONF, MENDER,
            render=_storage("boot_mb"), reverse=Reverse("board", ("mender", "storage", "boot_mb")), scope="board"),
    Binding("mender.storage.data_mb", "MENDER_DATA_PART_SIZE_MB", LOCAL_CONF, MENDER,
            render=_storage("data_mb"), reverse=Reverse("board", ("mender", "storage", "data_mb")), scope="board"),
    Binding("mender.storage.alignment_kb", "MENDER_PARTITION_ALIGNMENT", LOCAL_CONF, MENDER,
            render=lambda c: _str(c.board.mender.storage.alignment_kb and
                                  c.board.mender.storage.alignment_kb * 1024), scope="board"),
    Binding("mender.bootloader, mender.image_types", "MENDER_FEATURES_ENABLE:append", LOCAL_CONF,
            MENDER, render=lambda c: _words(mender_features(c)[0]), user_may_set=True, scope="board"),
    Binding("mender.bootloader, mender.image_types", "MENDER_FEATURES_DISABLE:append", LOCAL_CONF,
            MENDER, render=lambda c: _words(mender_features(c)[1]), user_may_set=True, scope="board"),
    Binding("release.artifact_name", "MENDER_ARTIFACT_NAME", LOCAL_CONF, MENDER,
            render=lambda c: c.product.artifact_name(c.board.name, c.variant.name),
            reverse=Reverse("product", ("release", "artifact_name"), "artifact-name")),
    Binding("mender.server_url", "MENDER_SERVER_URL", LOCAL_CONF, MENDER,
            render=lambda c: c.product.mender.server_url,
            reverse=Reverse("product", ("mender", "server_url"))),
    Binding("mender.update_poll_interval_s", "MENDER_UPDATE_POLL_INTERVAL_SECONDS", LOCAL_CONF,
            MENDER, render=lambda c: _str(c.product.mender.update_poll_interval_s),
            reverse=Reverse("product", ("mender", "update_poll_interval_s"))),
    Binding("mender.inventory_poll_interval_s", "MENDER_INVENTORY_POLL_INTERVAL_SECONDS", LOCAL_CONF,
            MENDER, render=lambda c: _str(c.product.mender.inventory_poll_interval_s),
            reverse=Reverse("product", ("mender", "inventory_poll_interval_s"))),
    Binding("mender.verify_key (or the public half of mender.signing_key)",
            "MENDER_ARTIFACT_VERIFY_KEY", LOCAL_CONF, MENDER, render=lambda c: c.verify_key_path),
    Binding("mender.tenant_token", "MENDER_TENANT_TOKEN", KAS_ENV_SECRET,
            render=lambda c: c.product.mender.tenant_token and c.product.mender.tenant_token.kind,
            reverse=Reverse("product", ("mender", "tenant_token"), "secret", ("=", "?=", "??="))),
    Binding("mender.signing_key", "MENDER_ARTIFACT_SIGNING_KEY", OUTSIDE),
    Binding("cache.hashserve", "BB_SIGNATURE_HANDLER", LOCAL_CONF, CACHE, render=_signature_handler),
    Binding("cache.hashserve", "BB_HASHSERVE", KAS_ENV, render=_hashserve,
            reverse=Reverse("product", ("cache", "hashserve"), ops=("=", "?="))),
    Binding("cache.hashserve_upstream", "BB_HASHSERVE_UPSTREAM", KAS_ENV,
            render=lambda c: c.product.cache.hashserve_upstream,
            reverse=Reverse("product", ("cache", "hashserve_upstream"), ops=("=", "?="))),
    Binding("cache.sstate_mirrors", "SSTATE_MIRRORS", KAS_ENV,
            render=lambda c: " ".join(c.product.cache.sstate_mirrors) or None,
            reverse=Reverse("product", ("cache", "sstate_mirrors"), "pairs", ("=", "?=", "+="))),
    Binding("cache.dl_dir", "DL_DIR", BUILD,
            reverse=Reverse("product", ("cache", "dl_dir"), ops=("=", "?="))),
    Binding("cache.sstate_dir", "SSTATE_DIR", BUILD,
            reverse=Reverse("product", ("cache", "sstate_dir"), ops=("=", "?="))),
    Binding("cache.hermetic", "BB_NO_NETWORK", BUILD),
    Binding("sbom.spdx", "INHERIT", LOCAL_CONF, SBOM, op="+=",
            render=lambda c: "create-spdx" if c.product.sbom.spdx else None,
            reverse=Reverse("product", ("sbom", "spdx"), "inherit", ("+=",)), user_may_set=True),
    Binding("sbom.include_sources", "SPDX_INCLUDE_SOURCES", LOCAL_CONF, SBOM,
            render=lambda c: "1" if c.product.sbom.spdx and c.product.sbom.include_sources else None),
    Binding("packages (product, board, variant)", "IMAGE_INSTALL:append", LOCAL_CONF, IMAGE,
            render=_packages,
            reverse=Reverse("board", ("packages",), "words", ("=", "+="),
                            forms=(("IMAGE_INSTALL", "+="),))),
    Binding("image_features (product, variant)", "EXTRA_IMAGE_FEATURES", LOCAL_CONF, IMAGE, op="+=",
            render=_image_features,
            reverse=Reverse("board", ("image_features",), "words", ("=", "+="),
                            forms=(("EXTRA_IMAGE_FEATURES:append", "+="),
                                   ("EXTRA_IMAGE_FEATURES:append", "=")))),
    Binding("the product repository's last commit", "SOURCE_DATE_EPOCH", BUILD),
)


def quote(value: str) -> str | None:
    """``value`` quoted so that BitBake's configuration parser reads it back unchanged.

    BitBake takes everything between the first quote after the operator and the same quote at
    the end of the line, verbatim (no escapes), but refuses a value holding exactly one of the
    quote characters it is enclosed in. None when no quoting works (exactly one ``"`` and
    exactly one ``'``): the loader refuses such values. The caller ensures one printable line.
    """
    for q in ('"', "'"):
        if value.count(q) != 1:
            return f"{q}{value}{q}"
    return None


def owned_variables() -> dict[str, str]:
    """Variables local_conf may not set, with the field that sets them."""
    out: dict[str, str] = {}
    for b in BINDINGS:
        if not b.user_may_set:
            out.setdefault(b.base, b.field)
    return out


def local_conf_rows() -> list[Binding]:
    return [b for b in BINDINGS if b.where == LOCAL_CONF]


def env_rows() -> list[Binding]:
    return [b for b in BINDINGS if b.where in (KAS_ENV, KAS_ENV_SECRET)]


def secret_variables() -> tuple[str, ...]:
    """Variables whose value is a secret the build resolves at run time (never printed)."""
    return tuple(b.var for b in BINDINGS if b.where == KAS_ENV_SECRET)


def reverse_rules() -> dict[tuple[str, str], Binding]:
    """(variable as written, operator) -> the row whose field it becomes."""
    out: dict[tuple[str, str], Binding] = {}
    for b in BINDINGS:
        if b.reverse is None:
            continue
        for form in ((b.var, op) for op in b.reverse.ops):
            out.setdefault(form, b)
        for form in b.reverse.forms:
            out.setdefault(form, b)
    return out


def reference_table() -> str:
    """The Markdown table docs/manifests.md carries (a test keeps them equal)."""
    lines = ["| Manifest field | BitBake variable | Written to | Operator | In `local_conf` |",
             "|---|---|---|---|---|"]
    for b in BINDINGS:
        may = "adds to it" if b.user_may_set else "refused"
        lines.append(f"| {b.field} | `{b.var}` | {b.where} | `{b.op}` | {may} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # regenerate the table in docs/manifests.md
    print(reference_table(), end="")
