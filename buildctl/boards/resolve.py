"""From answers (file, flags, prompts) and the probed BSP to the BoardSpec the outputs render.

Order: series, BSP repositories (pinned: branch head when no commit is given; a given commit
must be on the branch, the branch on the series), the MACHINE (must be defined by the stack),
then every Mender setting: the user's answer if there is one, else the proposal from the
probe, which an interactive user can accept or change. Each value keeps its origin.
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol
from urllib.parse import urlparse

from buildctl.boards import community
from buildctl.boards.answers import BOOTLOADERS, Answers, BspAnswer, parse_bsp_flag
from buildctl.boards.model import BoardSpec, BspRepo, Sourced
from buildctl.boards.probe import MachineProbe, probe_machine, read_stack
from buildctl.boards.propose import BOOT_MB, IMAGE_FOR_BOOTLOADER, Proposal, propose
from buildctl.errors import UserError
from buildctl.layers.layerinfo import LayerInfo, LayerRef
from buildctl.manifest.model import Repo
from buildctl.repos import RepoAccessError, RepoCache


class Prompter(Protocol):
    interactive: bool

    def ask(self, key: str, question: str, why: str, default: Any, *,
            choices: tuple[str, ...] | None = None, kind: type = str) -> Any: ...


class NoPrompts:
    """Non-interactive: every unanswered question takes its default."""

    interactive = False

    def ask(self, key, question, why, default, *, choices=None, kind=str):
        return default


@dataclass
class Resolved:
    spec: BoardSpec
    probe: MachineProbe
    proposal: Proposal
    stack: list[LayerInfo]
    transcript: list[tuple[str, str, str]] = field(default_factory=list)  # (field, value, origin)


def repo_name(url: str) -> str:
    return posixpath.basename(urlparse(url).path.rstrip("/")).removesuffix(".git")


def _suffix(layer_name: str) -> str:
    base = posixpath.basename(layer_name.rstrip("/"))
    return base.removeprefix("meta-") if base.startswith("meta-") else base


def _pin(cache: RepoCache, a: BspAnswer, series: str) -> tuple[BspRepo, list[tuple[str, str, str]]]:
    name = a.name or repo_name(a.url)
    repo = Repo(name, a.url, None, {}, a.layers or (".",))
    notes = []
    branch = a.branch or series
    b_origin = a.origin if a.branch else "default: the series"
    if not community.on_lts_branch(branch, series):
        raise UserError(f"{a.origin}: bsp {name}: branch {branch!r} does not follow the LTS series "
                        f"{series} (community boards target an LTS branch first)")
    try:
        if a.commit:
            if not cache.has_commit(repo, a.commit):
                raise UserError(f"{a.origin}: bsp {name}: commit {a.commit} not found in {a.url}")
            on = cache.branch_contains(repo, branch, a.commit)
            if on is False:
                raise UserError(f"{a.origin}: bsp {name}: commit {a.commit[:12]} is not on branch {branch}")
            commit, c_origin = a.commit, a.origin
        else:
            commit = cache.branch_head(repo, branch)
            c_origin = f"branch head of {branch}"
    except RepoAccessError as e:
        raise UserError(f"{a.origin}: {e}") from None
    notes.append((f"bsp {name}", f"{a.url} {branch} {commit[:12]}", f"{a.origin}; commit: {c_origin}; branch: {b_origin}"))
    return BspRepo(name, a.url, branch, commit, a.layers or (".",)), notes


def core_refs(cache: RepoCache, series: str) -> list[LayerRef]:
    refs = []
    for c in community.CORE_STACK:
        repo = Repo(c.name, c.url, None, {}, c.layers)
        try:
            head = cache.branch_head(repo, series)
        except RepoAccessError as e:
            raise UserError(f"core layers for probing: {e}") from None
        refs += [LayerRef(str(cache.git_dir(repo)), head, layer, c.name) for layer in c.layers]
    return refs


def resolve(answers: Answers, cache: RepoCache, prompter: Prompter | None = None,
            probe_fn: Callable = probe_machine) -> Resolved:
    ask = prompter or NoPrompts()
    transcript: list[tuple[str, str, str]] = []
    chosen: dict[str, Sourced] = {}

    def pick(key: str, question: str, why: str, proposal: Sourced, *, choices=None, kind=str) -> Any:
        given = answers.values.get(key)
        if given is not None:
            chosen[key] = given
        else:
            value = ask.ask(key, question, why, proposal.value, choices=choices, kind=kind)
            if ask.interactive and value != proposal.value:
                chosen[key] = Sourced(value, "asked")
            elif ask.interactive:
                chosen[key] = Sourced(value, f"{proposal.origin} (confirmed)")
            else:
                chosen[key] = proposal
        transcript.append((key, _show(chosen[key].value), chosen[key].origin))
        return chosen[key].value

    series = pick("series", "Yocto LTS series", "the release branch every layer must follow",
                  Sourced(community.DEFAULT_SERIES, "default: current LTS"))
    if series not in community.LTS_SERIES:
        raise UserError(f"{chosen['series'].origin}: series {series!r} is not an LTS series "
                        f"({', '.join(community.LTS_SERIES)}): community boards target an LTS first")
    machine = answers.get("machine")
    if machine is None:
        if not ask.interactive:
            raise UserError("machine: required (--machine or `machine:` in the answers file)")
        machine = pick("machine", "MACHINE", "the BitBake machine name the BSP defines",
                       Sourced(None, "asked"))
        if not machine:
            raise UserError("machine: required")
    else:
        pick("machine", "", "", Sourced(machine, ""))

    bsp_answers = list(answers.bsp)
    if not bsp_answers and ask.interactive:
        while True:
            url = ask.ask("bsp", "BSP repository URL (empty: no more)",
                          "a layer repository the MACHINE needs; branch defaults to the series, "
                          "commit to its head", "")
            if not url:
                break
            bsp_answers.append(parse_bsp_flag(url))
    bsp: list[BspRepo] = []
    for a in bsp_answers:
        pinned, notes = _pin(cache, a, series)
        bsp.append(pinned)
        transcript += notes

    refs = core_refs(cache, series)
    for r in bsp:
        g = str(cache.git_dir(Repo(r.name, r.url, None, {}, r.layers)))
        refs += [LayerRef(g, r.commit, "" if layer == "." else layer, r.name) for layer in r.layers]
    stack = read_stack(refs)
    probe = probe_fn(stack, machine)
    transcript.append(("machine conf", probe.conf_file, f"probe: defined by {probe.layer.name}"))
    prop = propose(probe)

    core_names = {c.name for c in community.CORE_STACK}
    from_core = probe.layer.repo in core_names
    machine_layer = probe.layer
    board = pick("board", "board name", "names kas/<board>.yml, machines/<board>.yml and the device type",
                 Sourced(machine, "default: the MACHINE"))
    vendor_default = Sourced(None if from_core else _suffix(machine_layer.repo),
                             "default: no BSP repository, no vendor include" if from_core
                             else f"default: BSP repository {machine_layer.repo}")
    vendor = pick("vendor", "vendor" if (bsp or not from_core) else "",
                  "names the shared include kas/include/<vendor>.yml", vendor_default)
    if vendor is None and bsp:
        raise UserError("vendor: required when the board has BSP repositories (--vendor)")
    bootloader = pick("bootloader", "bootloader integration",
                      "how Mender switches A/B: U-Boot env, GRUB on UEFI, NVIDIA slots, or your own",
                      prop.bootloader, choices=BOOTLOADERS)
    ubi = pick("ubi", "UBI on raw flash?", "raw NAND/NOR with UBI volumes instead of a block device",
               prop.ubi, kind=bool)
    if ubi:
        image = Sourced("ubimg", "rule: UBI storage")
    elif "bootloader" in answers.values:
        image = Sourced(IMAGE_FOR_BOOTLOADER[bootloader], f"rule: bootloader {bootloader}")
    else:
        image = prop.image_type
    chosen["image_type"] = image
    transcript.append(("image_type", image.value, image.origin))
    if ubi:
        device = pick("device", "", "", Sourced(None, "rule: UBI uses meta-mender's ubi0"))
    else:
        dev_prop = prop.device if prop.device.value else Sourced("/dev/mmcblk0", "default: first MMC device")
        device = pick("device", "storage device", "the Linux device holding the A/B partitions "
                      "(MENDER_STORAGE_DEVICE)", dev_prop)
    boot_prop = prop.boot_mb
    if "bootloader" in answers.values or "ubi" in answers.values:
        boot_prop = Sourced(0 if ubi else BOOT_MB[bootloader], f"rule: boot partition for {bootloader}")
    total = pick("total_mb", "storage size (MiB)", "the medium's size: rootfs A/B get what boot "
                 "and data leave", prop.total_mb, kind=int)
    boot = pick("boot_mb", "boot partition (MiB)", "vfat boot partition; 0 = none", boot_prop, kind=int)
    data = pick("data_mb", "data partition (MiB)", "persistent /data kept across updates", prop.data_mb, kind=int)
    description = pick("description", "one-line description", "for the hub post and the README table",
                       Sourced(f"{machine} ({bootloader}, {'UBI raw flash' if ubi else image.value})",
                               "default: machine, bootloader, image"))
    integ: tuple[str, ...] = ()
    depends: dict[str, tuple[str, ...]] = {}
    if not from_core:
        default_layer = community.LAYER_PREFIX + _suffix(machine_layer.name)
        layer = pick("integration_layer", "integration layer",
                     "meta-mender-<BSP suffix>: one per BSP layer, shared by its boards",
                     Sourced(default_layer, f"rule: meta-mender-<suffix of {machine_layer.name}>"))
        integ = (layer,)
        depends[layer] = ("mender",) + tuple(machine_layer.collection_names)
    mtdids = answers.get("mtdids") or ""
    if mtdids:
        transcript.append(("mtdids", mtdids, answers.values["mtdids"].origin))
    drop = answers.values.get("fstypes_remove") or prop.fstypes_remove
    for k, s in (("fstypes_remove", drop), ("serial_console", prop.serial_console),
                 ("kernel_imagetype", prop.kernel_imagetype)):
        transcript.append((k, _show(s.value), s.origin))
        chosen[k] = s
    spec = BoardSpec(
        board=board, machine=machine, description=description, vendor=vendor or "", series=series,
        bsp=tuple(bsp), bootloader=bootloader, ubi=bool(ubi), image_type=image.value,
        device=device, total_mb=int(total), boot_mb=int(boot), data_mb=int(data),
        fstypes_remove=tuple(dict.fromkeys(drop.value)), serial_console=prop.serial_console.value,
        kernel_imagetype=prop.kernel_imagetype.value, integration_layers=integ,
        integration_depends=depends, mtdids=mtdids, bsp_layer=machine_layer.name,
        origins={k: v.origin for k, v in chosen.items()},
    )
    return Resolved(spec, probe, prop, stack, transcript)


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value)) or "(none)"
    return str(value)
