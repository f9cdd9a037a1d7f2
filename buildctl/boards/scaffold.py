"""Render new-board's outputs from the templates in buildctl/boards/templates/.

Everything is a pure function of the BoardSpec and the community checkout it is added to,
so the same answers render the same bytes. Files are returned, not written (see write.py).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable
from pathlib import Path

import jinja2

from buildctl.boards import community
from buildctl.boards.base import CommunityBase
from buildctl.boards.model import BoardSpec

TEMPLATES = Path(__file__).parent / "templates"

# bootloader -> (features enabled, features disabled) on top of the mender-full baseline
FEATURES = {
    "u-boot": ("mender-uboot mender-image-sd", "mender-grub mender-image-uefi"),
    "grub-efi": ("", ""),
    "tegra": ("", "mender-uboot"),
    "none": ("mender-image-sd", "mender-grub mender-image-uefi"),
}


@dataclass(frozen=True)
class OutFile:
    path: str  # relative to the output root (posix)
    text: str
    old: str | None = None  # previous content in the base (None: a new file)
    # For a change to an existing file: the same change applied to any version of it (so a
    # checkout that moved on since the base still takes it); None for whole new files.
    edit: Callable[[str], str] | None = field(default=None, compare=False, repr=False)


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), trim_blocks=True,
                              lstrip_blocks=True, keep_trailing_newline=True,
                              undefined=jinja2.StrictUndefined, autoescape=False)


def render(name: str, **ctx) -> str:
    return _env().get_template(name).render(**ctx)


def baseline(spec: BoardSpec) -> str:
    return community.BASELINE_UBI if spec.ubi else community.BASELINE


def storage_text(spec: BoardSpec) -> str:
    where = "raw flash (UBI)" if spec.ubi else (spec.device or "")
    return (f"{where}, {spec.total_mb} MiB: boot {spec.boot_mb} MiB, data {spec.data_mb} MiB, "
            "rootfs A/B the rest")


def local_conf_lines(spec: BoardSpec) -> list[str]:
    """The board's block in local_conf_header (what makes it a Mender board)."""
    lines = []
    if not spec.ubi:
        on, off = FEATURES[spec.bootloader]
        if on:
            lines.append(f'MENDER_FEATURES_ENABLE:append = " {on}"')
        if off:
            lines.append(f'MENDER_FEATURES_DISABLE:append = " {off}"')
    if spec.device:
        lines.append(f'MENDER_STORAGE_DEVICE = "{spec.device}"')
    lines.append(f'MENDER_STORAGE_TOTAL_SIZE_MB = "{spec.total_mb}"')
    if not spec.ubi:
        lines.append(f'MENDER_BOOT_PART_SIZE_MB = "{spec.boot_mb}"')
    lines.append(f'MENDER_DATA_PART_SIZE_MB = "{spec.data_mb}"')
    if spec.mtdids:
        lines.append(f'MENDER_MTDIDS = "{spec.mtdids}"')
    if spec.fstypes_remove:
        lines.append(f'IMAGE_FSTYPES:remove = "{" ".join(spec.fstypes_remove)}"')
    return lines


def machine_manifest(spec: BoardSpec, base: CommunityBase, machine_conf: str,
                     core_layer: tuple[str, str] | None = None) -> str:
    """machines/<board>.yml. core_layer: (core repo id, layer) when the MACHINE lives in a core
    repository's layer other than OE-core's `meta` (e.g. meta-yocto/meta-yocto-bsp)."""
    existing = [l for l in spec.integration_layers if base.is_dir(l)]
    notes = []
    new = [l for l in spec.integration_layers if l not in existing]
    if new:
        notes.append(f"Add {', '.join(new)} (meta-mender-community) to repos once the "
                     "contribution is merged.")
    if spec.ubi and not spec.device:
        notes.append("UBI: storage.device is left to meta-mender's default (ubi0).")
    local_conf = []
    if spec.fstypes_remove:
        local_conf.append(("IMAGE_FSTYPES:remove", " ".join(spec.fstypes_remove)))
    if spec.mtdids:
        local_conf.append(("MENDER_MTDIDS", spec.mtdids))
    text = render("machine.yml.j2", spec=spec, machine_conf=machine_conf, notes=notes,
                  community_layers=existing, community_url=community.COMMUNITY_URL,
                  community_branch=base.branch, community_commit=base.commit,
                  local_conf=local_conf)
    if core_layer:
        repo, layer = core_layer
        text = text.replace("repos:\n  {}\n", "repos:\n")
        text = text.replace("repos:\n", f"repos:\n  {repo}: {{layers: [{layer}]}}\n", 1)
    return text


def _vendor_include(spec: BoardSpec) -> str:
    return f"{community.INCLUDE_DIR}/{spec.vendor}.yml"


def _include_repos(base: CommunityBase, path: str) -> set[str]:
    import yaml

    text = base.read(path)
    if text is None:
        return set()
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        return set()
    return set((data.get("repos") or {}).keys())


def floating_in_include(spec: BoardSpec, base: CommunityBase) -> list[tuple[str, str]]:
    """(repo id, branch) of repositories an existing vendor include leaves unpinned and the
    board does not pin itself: the board file pins them (see contribution(pins=...))."""
    import yaml

    if not (spec.bsp or spec.integration_layers):
        return []
    text = base.read(_vendor_include(spec))
    if text is None:
        return []
    try:
        repos = (yaml.safe_load(text) or {}).get("repos") or {}
    except yaml.YAMLError:
        return []
    mine = {r.name for r in spec.bsp}
    return [(rid, str(e.get("branch") or e.get("refspec") or spec.series)) for rid, e in repos.items()
            if isinstance(e, dict) and e.get("url") and not e.get("commit") and rid not in mine]


def contribution(spec: BoardSpec, base: CommunityBase,
                 pins: dict[str, str] | None = None) -> list[OutFile]:
    """The files a board contribution adds or changes in the community checkout. pins: commits
    for repositories the existing vendor include leaves floating (repo id -> commit)."""
    out: list[OutFile] = []
    includes: list[str] = []
    board_repos = []
    board_layers: list[str] = []  # integration layers the board file itself adds
    if spec.bsp or spec.integration_layers:
        inc = _vendor_include(spec)
        includes.append(inc)
        existing = base.read(inc)
        vendor_text = render("kas_vendor.yml.j2", spec=spec, kas_format=community.KAS_FORMAT)
        if existing is None or existing == vendor_text:  # new, or ours from an earlier run
            out.append(OutFile(inc, vendor_text, existing))
        else:
            # The include exists: the board file pins the BSP repositories it was probed with
            # (kas merges them into the include's entries) and adds a missing integration layer.
            board_repos = list(spec.bsp) or [None]
            board_layers = [l for l in spec.integration_layers
                            if not re.search(rf"^\s*{re.escape(l)}:", existing, re.M)]
    board_text = render("kas_board.yml.j2", spec=spec, kas_format=community.KAS_FORMAT,
                        baseline=baseline(spec), includes=includes, board_repos=board_repos,
                        board_layers=board_layers, conf_lines=local_conf_lines(spec),
                        pins=sorted((pins or {}).items()) if board_repos or board_layers else [])
    path = f"{community.KAS_DIR}/{spec.board}.yml"
    out.insert(0, OutFile(path, board_text, base.read(path)))
    for layer in spec.integration_layers:
        out += _integration_layer(spec, base, layer)
    ci = base.read(community.CI_WORKFLOW)
    if ci is not None:
        edit = lambda text, board=spec.board: add_ci_entry(text, board)  # noqa: E731
        new_ci = edit(ci)
        if new_ci != ci:
            out.append(OutFile(community.CI_WORKFLOW, new_ci, ci, edit))
    return sorted(out, key=lambda f: f.path)


def _integration_layer(spec: BoardSpec, base: CommunityBase, layer: str) -> list[OutFile]:
    storage = "UBI raw flash" if spec.ubi else (spec.device or "")
    row = render("board_row.md.j2", spec=spec, storage=storage).rstrip("\n")
    bsp_layer = spec.bsp_layer or "the BSP"
    readme_path = f"{layer}/README.md"
    collection = "mender-" + layer.removeprefix(community.LAYER_PREFIX)
    depends = spec.integration_depends.get(layer, ("mender",))
    conf_path = f"{layer}/conf/layer.conf"
    conf = render("layer.conf.j2", spec=spec, collection=collection, depends=depends, bsp_layer=bsp_layer)
    if not base.is_dir(layer) or base.read(conf_path) == conf:  # new, or ours from an earlier run
        return [
            OutFile(conf_path, conf, base.read(conf_path)),
            OutFile(readme_path, render("layer_README.md.j2", spec=spec, layer=layer, bsp_layer=bsp_layer,
                                        board_row=row), base.read(readme_path)),
        ]
    readme = base.read(readme_path)
    if readme is None:
        return []
    edit = lambda text: add_readme_row(text, row, spec)  # noqa: E731
    new = edit(readme)
    return [OutFile(readme_path, new, readme, edit)] if new != readme else []


def add_readme_row(readme: str, row: str, spec: BoardSpec) -> str:
    """Add the board to an existing README: after the last row of its board table, or after the
    last item of its board list, else in a new section at the end (unchanged if it is there)."""
    if f"`{spec.machine}`" in readme:
        return readme
    lines = readme.split("\n")
    table = [i for i, l in enumerate(lines) if l.startswith("|") and spec.machine not in l]
    if len(table) >= 2:
        lines.insert(table[-1] + 1, row)
        return "\n".join(lines)
    items = [i for i, l in enumerate(lines) if re.match(r"^\s*- \[", l)]
    if items:
        indent = re.match(r"^(\s*)", lines[items[0]]).group(1)
        lines.insert(items[-1] + 1, f"{indent}- {spec.description} (`{spec.machine}`)")
        return "\n".join(lines)
    return readme.rstrip("\n") + f"\n\n## Supported boards\n\n- {spec.description} (`{spec.machine}`)\n"


_MATRIX_INCLUDE = re.compile(r"^(?P<ind>\s*)include:\s*$")


def add_ci_entry(workflow: str, board: str) -> str:
    """The CI workflow with `board` in the build matrix as experimental (unchanged if present)."""
    if re.search(rf"(^|[\s\[,])(board:\s*)?{re.escape(board)}\s*(,|\]|$)", workflow, re.M):
        return workflow
    lines = workflow.split("\n")
    for i, line in enumerate(lines):
        m = _MATRIX_INCLUDE.match(line)
        if not m:
            continue
        ind = len(m.group("ind"))
        end = i + 1
        item_ind = None
        while end < len(lines):
            l = lines[end]
            if l.strip() and len(l) - len(l.lstrip()) <= ind:
                break
            if item_ind is None and l.strip().startswith("- "):
                item_ind = len(l) - len(l.lstrip())
            end += 1
        while end > i + 1 and not lines[end - 1].strip():
            end -= 1
        pad = " " * (item_ind if item_ind is not None else ind + 2)
        lines[end:end] = [f"{pad}- board: {board}", f"{pad}  experimental: true"]
        return "\n".join(lines)
    raise ValueError("no `include:` list in the build matrix")


def hub_post(spec: BoardSpec, machine_conf: str, known_issues: list[str]) -> str:
    return render("hub_post.md.j2", spec=spec, machine_conf=machine_conf, baseline=baseline(spec),
                  storage=storage_text(spec), known_issues=known_issues)


def commit_message(spec: BoardSpec, base: CommunityBase) -> str:
    inc = _vendor_include(spec) if spec.vendor and (spec.bsp or spec.integration_layers) else ""
    return render("commit_message.txt.j2", spec=spec, baseline_name=baseline(spec),
                  vendor_include=inc)


def known_issues(spec: BoardSpec) -> list[str]:
    out = []
    if spec.ubi and not spec.mtdids:
        out.append("MENDER_MTDIDS is not set: give the board's MTD ids (answers `mtdids:`) before "
                   "the first build")
    if spec.bootloader == "u-boot":
        out.append("U-Boot auto-patching (MENDER_UBOOT_AUTO_CONFIGURE) is untested on this board; "
                   "if it fails, ship a U-Boot patch in the integration layer")
    if spec.bootloader == "none":
        out.append("No Mender bootloader integration: A/B switching and rollback must be provided "
                   "by the board's own boot flow")
    return out
