"""The values a board's configuration gets from its layers, evaluated the way BitBake builds its
base configuration: every layer.conf, then OE-core's conf/bitbake.conf (which includes
local.conf, the machine and the distro configuration), then the INHERIT classes.

Pre-flight uses it to learn the defaults a manifest leaves to the layers (meta-mender's storage
device, sizes, image types, device type) at the pinned commits instead of hard-coding them.

Inline Python (`${@...}`) is evaluated by layers/inline.py (read from the syntax tree, never
executed); anything outside its subset stays verbatim, as an unknown value.
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable

from buildctl.layers import bbconf
from buildctl.layers.inline import inline_value, mender_features
from buildctl.layers.layerinfo import LayerInfo

__all__ = ["board_datastore", "MenderSettings", "mender_settings"]

# Where INHERIT'ed classes are looked up, in BitBake's order for global classes.
CLASS_DIRS = ("classes-global", "classes")


@lru_cache(maxsize=4096)
def _parse(text: str, filename: str) -> tuple[bbconf.Statement, ...]:
    """Parsed once per file content: every board of a product reads the same classes."""
    try:
        return tuple(bbconf.parse(text, filename))
    except bbconf.ConfSyntaxError:
        return ()  # reported by the layer checks


class _Reader:
    """Applies statements to a datastore, following include/require (first beside the including
    file, then along BBPATH) and inherit (classes along BBPATH), each class once."""

    def __init__(self, layers: list[LayerInfo], d: bbconf.Datastore,
                 files: dict[str, list[bbconf.Statement]]):
        self.layers = layers
        self.d = d
        self.files = files  # files served from elsewhere (conf/local.conf)
        self.inherited: set[str] = set()
        self.here: list[tuple[LayerInfo | None, str]] = [(None, "")]  # (layer, directory)

    def _read(self, layer: LayerInfo, rel: str) -> tuple[bbconf.Statement, ...] | None:
        text = layer.read_text(rel)
        if text is None:
            return None
        return _parse(text, layer.display_path(rel))

    def find(self, rel: str) -> tuple[list[bbconf.Statement], LayerInfo | None, str] | None:
        if rel in self.files:
            return self.files[rel], None, ""
        layer, directory = self.here[-1]
        if layer is not None and directory and not rel.startswith("/"):
            near = posixpath.normpath(posixpath.join(directory, rel))
            sts = self._read(layer, near)
            if sts is not None:
                return sts, layer, near
        for layer in self.layers:  # BBPATH: layers in bblayers order, first match wins
            sts = self._read(layer, rel)
            if sts is not None:
                return sts, layer, rel
        return None

    def run_file(self, rel: str) -> bool:
        found = self.find(rel)
        if found is None or len(self.here) > bbconf.MAX_INCLUDE_DEPTH:
            return False
        sts, layer, path = found
        self.here.append((layer, posixpath.dirname(path)))
        try:
            self.run(sts)
        finally:
            self.here.pop()
        return True

    def run(self, statements: Iterable[bbconf.Statement]) -> None:
        for st in statements:
            if st.kind in ("include", "require", "include_all"):
                for rel in self.d.expand(st.value).split():
                    if "${" not in rel:
                        self.run_file(rel)
            elif st.kind == "inherit":
                for cls in self.d.expand(st.value).split():
                    self.inherit(cls)
            else:
                self.d.apply(st)

    def inherit(self, cls: str) -> None:
        if "${" in cls or cls in self.inherited:
            return
        self.inherited.add(cls)
        for sub in CLASS_DIRS:
            if self.run_file(f"{sub}/{cls}.bbclass"):
                return


def board_datastore(layers: list[LayerInfo], *, machine: str, distro: str,
                    local_conf: Iterable[bbconf.Statement] = ()) -> bbconf.Datastore:
    """The base configuration BitBake would build for a board (no recipe context)."""
    d = bbconf.Datastore(inline=inline_value)
    local = [bbconf.Statement(kind="assign", var="MACHINE", op="??=", value=machine, filename="kas"),
             bbconf.Statement(kind="assign", var="DISTRO", op="??=", value=distro, filename="kas"),
             *local_conf]
    reader = _Reader(layers, d, {"conf/local.conf": local})
    for layer in layers:
        d.set("LAYERDIR", "/" + layer.name)
        reader.run(layer.statements)
    d.unset("LAYERDIR")
    if not reader.run_file("conf/bitbake.conf"):
        reader.run(local)  # no OE-core in the stack: local.conf is all there is
    for cls in (d.get("INHERIT") or "").split():
        reader.inherit(cls)
    return d


# --- meta-mender -----------------------------------------------------------------------------
# image types meta-mender builds (IMAGE_FSTYPES entries a manifest lists in mender.image_types)
MENDER_IMAGE_TYPES = ("sdimg", "uefiimg", "biosimg", "gptimg", "ubimg", "mender")


@dataclass(frozen=True)
class MenderSettings:
    """meta-mender settings as the board's configuration evaluates them (None: not known)."""

    features: tuple[str, ...]
    device: str | None
    total_mb: int | None
    boot_mb: int | None
    data_mb: int | None
    alignment_bytes: int | None
    device_types: tuple[str, ...]
    image_types: tuple[str, ...]
    bootloader: str | None


def _int(text: str | None) -> int | None:
    return int(text) if text and text.strip().isdigit() else None


def _known(text: str | None) -> str | None:
    return text if text and "${" not in text else None


def mender_settings(d: bbconf.Datastore) -> MenderSettings:
    features = tuple(f for f in (d.get("MENDER_FEATURES") or mender_features(d)).split()
                     if "${" not in f)
    fstypes = (d.get("IMAGE_FSTYPES") or "").split()
    if "mender-uboot" in features:
        bootloader = "u-boot"
    elif "mender-grub" in features:
        bootloader = "grub-bios" if "mender-bios" in features else "grub-efi"
    else:
        bootloader = None
    device_type = _known(d.get("MENDER_DEVICE_TYPE"))
    compatible = _known(d.get("MENDER_DEVICE_TYPES_COMPATIBLE")) or device_type or ""
    types = [device_type] if device_type else []
    types += [t for t in compatible.split() if t not in types]
    return MenderSettings(
        features=features,
        device=_known(d.get("MENDER_STORAGE_DEVICE")),
        total_mb=_int(d.get("MENDER_STORAGE_TOTAL_SIZE_MB")),
        boot_mb=_int(d.get("MENDER_BOOT_PART_SIZE_MB")),
        data_mb=_int(d.get("MENDER_DATA_PART_SIZE_MB")),
        alignment_bytes=_int(d.get("MENDER_PARTITION_ALIGNMENT")),
        device_types=tuple(types),
        image_types=tuple(t for t in MENDER_IMAGE_TYPES if t in fstypes),
        bootloader=bootloader,
    )
