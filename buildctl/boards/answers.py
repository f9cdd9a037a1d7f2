"""new-board's inputs from an answers file and from flags, each remembering where it came from.

Answers file (YAML; every key optional except what the BSP cannot tell):

    board: colibri-imx7-nand          # file names, device type (default: the MACHINE)
    machine: colibri-imx7-nand        # BitBake MACHINE (required)
    description: Toradex Colibri iMX7D 512MB (raw NAND)
    vendor: toradex                   # kas/include/<vendor>.yml
    series: scarthgap                 # Yocto LTS series
    bsp:                              # BSP repositories, in layer order
      - url: https://github.com/Freescale/meta-freescale.git
        branch: scarthgap             # default: the series
        commit: 4143744b...           # default: the branch head
        layers: [.]                   # default: the repository root
    bootloader: u-boot                # u-boot | grub-efi | tegra | none (default: probed)
    ubi: true                         # default: probed
    storage: {device: /dev/mmcblk0, total_mb: 4096, boot_mb: 64, data_mb: 512}
    integration_layer: meta-mender-toradex-nxp   # default: meta-mender-<BSP suffix>
    mtdids: nand0=gpmi-nand           # UBI boards: MENDER_MTDIDS
    fstypes_remove: [wic.bmap, wic.gz]  # BSP images to drop (default: probed disk images)

Flags override the file; `--bsp URL[,branch=B][,commit=C][,layers=a+b][,name=N]`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from buildctl.boards.model import Sourced
from buildctl.errors import UserError
from buildctl.manifest.yamlsrc import load

BOOTLOADERS = ("u-boot", "grub-efi", "tegra", "none")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_SHA = re.compile(r"^[0-9a-f]{40}$")
_STORAGE = ("device", "total_mb", "boot_mb", "data_mb")
TOP_KEYS = ("board", "machine", "description", "vendor", "series", "bsp", "bootloader", "ubi",
            "storage", "integration_layer", "mtdids", "fstypes_remove")
BSP_KEYS = ("name", "url", "branch", "commit", "layers")


@dataclass(frozen=True)
class BspAnswer:
    url: str
    name: str = ""
    branch: str = ""
    commit: str = ""
    layers: tuple[str, ...] = ()
    origin: str = ""


@dataclass
class Answers:
    """What the user said (file or flags); proposals and prompts fill in the rest."""

    values: dict[str, Sourced] = field(default_factory=dict)  # board, machine, ..., device, total_mb
    bsp: list[BspAnswer] = field(default_factory=list)
    bsp_origin: str = ""

    def get(self, key: str) -> Any:
        s = self.values.get(key)
        return s.value if s else None


def _check(key: str, value: Any, where: str) -> Any:
    def bad(msg: str):
        raise UserError(f"{where}: {key}: {msg}")

    if key in ("board", "machine", "vendor", "integration_layer"):
        if not isinstance(value, str) or not _NAME.match(value):
            bad(f"{value!r} is not a valid name (letters, digits, . _ + -)")
    elif key == "series":
        if not isinstance(value, str) or not re.match(r"^[a-z][a-z0-9]*$", value):
            bad(f"{value!r} is not a release series name")
    elif key == "bootloader":
        if value not in BOOTLOADERS:
            bad(f"{value!r} is not one of {', '.join(BOOTLOADERS)}")
    elif key == "ubi":
        if not isinstance(value, bool):
            bad("must be true or false")
    elif key == "device":
        if value is not None and (not isinstance(value, str) or not re.match(r"^/dev/[A-Za-z0-9/_.-]+$", value)):
            bad(f"{value!r} is not a /dev path")
    elif key in ("total_mb", "data_mb"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            bad("must be a positive whole number of MiB")
    elif key == "boot_mb":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            bad("must be a whole number of MiB (0 = no boot partition)")
    elif key == "fstypes_remove":
        if isinstance(value, str):
            value = value.split()
        if not isinstance(value, list) or not all(isinstance(t, str) and re.match(r"^[a-z0-9.+-]+$", t)
                                                  for t in value):
            bad("a list of image types (e.g. [wic, wic.bmap]; [] keeps every BSP image)")
        value = tuple(value)
    elif key in ("description", "mtdids"):
        if not isinstance(value, str) or "\n" in value:
            bad("must be one line of text")
        if key == "mtdids" and not re.match(r"^[A-Za-z0-9_.,=:@-]+$", value):
            bad(f"{value!r} is not an mtdids list (e.g. nand0=gpmi-nand)")
    if key == "integration_layer" and not value.startswith("meta-mender-"):
        bad(f"{value!r}: integration layers are named meta-mender-<BSP suffix>")
    return value


def _bsp(item: Any, where: str) -> BspAnswer:
    if not isinstance(item, dict):
        raise UserError(f"{where}: bsp entries are mappings with url, branch, commit, layers")
    unknown = sorted(set(item) - set(BSP_KEYS))
    if unknown:
        raise UserError(f"{where}: bsp: unknown key {unknown[0]!r} (known: {', '.join(BSP_KEYS)})")
    url = item.get("url")
    if not isinstance(url, str) or not url:
        raise UserError(f"{where}: bsp.url: missing")
    commit = str(item.get("commit") or "")
    if commit and not _SHA.match(commit):
        raise UserError(f"{where}: bsp.commit: {commit!r} is not a full 40-hex commit id")
    layers = item.get("layers") or []
    if isinstance(layers, str):
        layers = layers.split("+")
    if not isinstance(layers, list) or not all(isinstance(x, str) and x for x in layers):
        raise UserError(f"{where}: bsp.layers: a list of layer directories")
    name = str(item.get("name") or "")
    if name and not _NAME.match(name):
        raise UserError(f"{where}: bsp.name: {name!r} is not a valid name")
    return BspAnswer(url=url, name=name, branch=str(item.get("branch") or ""), commit=commit,
                     layers=tuple(layers), origin=where)


def from_file(path: Path) -> Answers:
    data, smap = load(path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: the answers file must be a mapping")
    out = Answers()
    for key, value in data.items():
        where = f"{path}:{smap.line((key,))}"
        if key not in TOP_KEYS:
            raise UserError(f"{where}: unknown key {key!r} (known: {', '.join(TOP_KEYS)})")
        if key == "bsp":
            if not isinstance(value, list):
                raise UserError(f"{where}: bsp: a list of repositories")
            out.bsp = [_bsp(item, f"{path}:{smap.line(('bsp', i))}") for i, item in enumerate(value)]
            out.bsp_origin = f"answers {where}"
        elif key == "storage":
            if not isinstance(value, dict):
                raise UserError(f"{where}: storage: a mapping with {', '.join(_STORAGE)}")
            for k, v in value.items():
                w = f"{path}:{smap.line(('storage', k))}"
                if k not in _STORAGE:
                    raise UserError(f"{w}: storage: unknown key {k!r} (known: {', '.join(_STORAGE)})")
                out.values[k] = Sourced(_check(k, v, w), f"answers {w}")
        else:
            out.values[key] = Sourced(_check(key, value, where), f"answers {where}")
    return out


def parse_bsp_flag(spec: str) -> BspAnswer:
    """`URL[,branch=B][,commit=C][,layers=a+b][,name=N]` -> BspAnswer."""
    url, *rest = spec.split(",")
    item: dict[str, Any] = {"url": url}
    for part in rest:
        k, sep, v = part.partition("=")
        if not sep:
            raise UserError(f"--bsp {spec}: {part!r} is not key=value")
        item[k] = v
    return _bsp(item, f"--bsp {spec}")


# flag attribute -> answer key
FLAG_KEYS = {"board": "board", "machine": "machine", "description": "description", "vendor": "vendor",
             "series": "series", "bootloader": "bootloader", "ubi": "ubi", "device": "device",
             "total_mb": "total_mb", "boot_mb": "boot_mb", "data_mb": "data_mb",
             "integration_layer": "integration_layer", "mtdids": "mtdids",
             "fstypes_remove": "fstypes_remove"}


def merge_flags(answers: Answers, args) -> Answers:
    """Flags given on the command line override the answers file."""
    for attr, key in FLAG_KEYS.items():
        value = getattr(args, attr, None)
        if value is not None:
            flag = "--" + attr.replace("_", "-")
            answers.values[key] = Sourced(_check(key, value, flag), f"flag {flag}")
    if getattr(args, "bsp", None):
        answers.bsp = [parse_bsp_flag(s) for s in args.bsp]
        answers.bsp_origin = "flag --bsp"
    return answers
