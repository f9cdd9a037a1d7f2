"""The typed inputs of new-board: every value carries where it came from."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Sourced:
    """A value and its origin: "flag --machine", "answers board.yml:4", "probe: file:line ...",
    "rule: ...", "default: ...", "asked"."""

    value: Any
    origin: str


@dataclass(frozen=True)
class BspRepo:
    """A BSP repository of the board: pinned commit on an LTS branch, the layers used."""

    name: str  # kas repo id, e.g. meta-raspberrypi
    url: str
    branch: str
    commit: str
    layers: tuple[str, ...] = (".",)  # layer dirs inside the repository ("." = the root)


@dataclass(frozen=True)
class BoardSpec:
    """Everything the outputs are rendered from (the resolved answers)."""

    board: str
    machine: str
    description: str
    vendor: str
    series: str
    bsp: tuple[BspRepo, ...]
    bootloader: str  # u-boot | grub-efi | tegra | none
    ubi: bool
    image_type: str  # sdimg | uefiimg | ubimg | tegraflash
    device: str | None
    total_mb: int
    boot_mb: int
    data_mb: int
    fstypes_remove: tuple[str, ...] = ()
    serial_console: str = ""
    kernel_imagetype: str = ""
    integration_layers: tuple[str, ...] = ()  # meta-mender-<suffix> layers this board uses
    integration_depends: dict[str, tuple[str, ...]] = field(default_factory=dict)  # layer -> LAYERDEPENDS
    mtdids: str = ""  # UBI boards: MENDER_MTDIDS
    bsp_layer: str = ""  # the layer that defines the MACHINE (display name, e.g. meta-freescale-3rdparty)
    origins: dict[str, str] = field(default_factory=dict)  # field -> where its value came from
