"""Build real git repositories holding fixture Yocto layers, for any test that needs layers.

    from tests.helpers.fixture_layers import LayerSpec, make_layer_repo, make_core_repo

    core_path, core_commit = make_core_repo(tmp_path)                     # openembedded-core-like
    path, commit = make_layer_repo(tmp_path, "meta-foo", layers={
        "": LayerSpec(collection="foo", depends=["core"], compat=["scarthgap"],
                      machines=["foo-board"], recipes=["hello_1.0.bb"],
                      bbappends=["u-boot_%.bbappend"]),
    })

Keys of `layers` are layer directories inside the repository ("" = the repository root, as in
meta-raspberrypi; "meta-oe" as in meta-openembedded). Every file is written by `layer_conf_text`
and friends below, in the syntax real layers use, and committed with a fixed author and date so
commit ids are stable for identical content. `commit_files` adds later commits.
"""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Fixture",
    "GIT_AUTHOR_EMAIL": "fixture@example.invalid",
    "GIT_COMMITTER_NAME": "Fixture",
    "GIT_COMMITTER_EMAIL": "fixture@example.invalid",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00+00:00",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00+00:00",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}


@dataclass
class LayerSpec:
    """What a fixture layer declares. Lists hold names as they appear in layer.conf."""

    collection: str
    priority: int | None = 6
    depends: list[str] = field(default_factory=list)  # "core", "core (>= 12)"
    recommends: list[str] = field(default_factory=list)
    compat: list[str] | None = field(default_factory=lambda: ["scarthgap"])  # None: no line
    version: str | None = None  # LAYERVERSION_<collection>
    corenames: list[str] | None = None  # LAYERSERIES_CORENAMES (only OE-core sets it)
    # machine name -> extra lines of its conf (or a list of names: default conf)
    machines: list[str] | dict[str, str] = field(default_factory=list)
    distros: list[str] | dict[str, str] = field(default_factory=list)
    recipes: list[str] = field(default_factory=list)  # "hello_1.0.bb" or "recipes-x/hello/hello_1.0.bb"
    bbappends: list[str] = field(default_factory=list)  # "u-boot_%.bbappend" or a full path
    # collection -> bbappend/bb names, installed under dynamic-layers/<collection>/ via BBFILES_DYNAMIC
    dynamic: dict[str, list[str]] = field(default_factory=dict)
    extra_conf: str = ""  # appended verbatim to conf/layer.conf
    files: dict[str, str] = field(default_factory=dict)  # any other file, path inside the layer


def layer_conf_text(spec: LayerSpec) -> str:
    c = spec.collection
    lines = [
        "# Fixture layer written by tests/helpers/fixture_layers.py",
        'BBPATH .= ":${LAYERDIR}"',
        "",
        'BBFILES += "${LAYERDIR}/recipes-*/*/*.bb \\',
        '            ${LAYERDIR}/recipes-*/*/*.bbappend"',
        "",
        f'BBFILE_COLLECTIONS += "{c}"',
        f'BBFILE_PATTERN_{c} := "^${{LAYERDIR}}/"',
    ]
    if spec.priority is not None:
        lines.append(f'BBFILE_PRIORITY_{c} = "{spec.priority}"')
    if spec.corenames is not None:
        lines.append(f'LAYERSERIES_CORENAMES = "{" ".join(spec.corenames)}"')
    if spec.version is not None:
        lines.append(f'LAYERVERSION_{c} = "{spec.version}"')
    if spec.depends:
        lines.append(f'LAYERDEPENDS_{c} = "{" ".join(spec.depends)}"')
    if spec.recommends:
        lines.append(f'LAYERRECOMMENDS_{c} = "{" ".join(spec.recommends)}"')
    if spec.compat is not None:
        lines.append(f'LAYERSERIES_COMPAT_{c} = "{" ".join(spec.compat)}"')
    if spec.dynamic:
        lines.append('BBFILES_DYNAMIC += " \\')
        for coll in spec.dynamic:
            lines.append(f"    {coll}:${{LAYERDIR}}/dynamic-layers/{coll}/*/*/*.bb \\")
            lines.append(f"    {coll}:${{LAYERDIR}}/dynamic-layers/{coll}/*/*/*.bbappend \\")
        lines.append('"')
    text = "\n".join(lines) + "\n"
    if spec.extra_conf:
        text += spec.extra_conf if spec.extra_conf.endswith("\n") else spec.extra_conf + "\n"
    return text


def machine_conf_text(name: str, extra: str = "") -> str:
    text = (
        "#@TYPE: Machine\n"
        f"#@NAME: {name} (fixture)\n"
        'MACHINE_FEATURES = "serial usbhost"\n'
        'KERNEL_IMAGETYPE ?= "zImage"\n'
    )
    return text + (extra if extra.endswith("\n") or not extra else extra + "\n")


def distro_conf_text(name: str, extra: str = "") -> str:
    text = f'DISTRO = "{name}"\nDISTRO_NAME = "{name} (fixture)"\nDISTRO_VERSION = "1.0"\n'
    return text + (extra if extra.endswith("\n") or not extra else extra + "\n")


def recipe_path(name: str, ext: str) -> str:
    """`hello_1.0.bb` -> recipes-hello/hello/hello_1.0.bb; paths with `/` are kept."""
    if "/" in name:
        return name
    pn = name.split("_")[0].removesuffix(ext)
    return f"recipes-{pn}/{pn}/{name}"


def layer_files(spec: LayerSpec) -> dict[str, str]:
    """Every file of the layer, paths relative to the layer directory."""
    files = {"conf/layer.conf": layer_conf_text(spec)}
    machines = spec.machines if isinstance(spec.machines, dict) else {m: "" for m in spec.machines}
    for m, extra in machines.items():
        files[f"conf/machine/{m}.conf"] = machine_conf_text(m, extra)
    distros = spec.distros if isinstance(spec.distros, dict) else {d: "" for d in spec.distros}
    for d, extra in distros.items():
        files[f"conf/distro/{d}.conf"] = distro_conf_text(d, extra)
    for r in spec.recipes:
        files[recipe_path(r, ".bb")] = f'SUMMARY = "fixture recipe {r}"\nLICENSE = "MIT"\n'
    for a in spec.bbappends:
        files[recipe_path(a, ".bbappend")] = 'FILESEXTRAPATHS:prepend := "${THISDIR}/files:"\n'
    for coll, names in spec.dynamic.items():
        for n in names:
            ext = ".bbappend" if n.endswith(".bbappend") else ".bb"
            files[f"dynamic-layers/{coll}/{recipe_path(n, ext)}"] = 'SUMMARY = "dynamic fixture"\n'
    files.update(spec.files)
    return files


def git(repo: Path | str, *args: str, date: str | None = None) -> str:
    """git in repo with a fixed identity (and commit date, when given)."""
    env = {**os.environ, **GIT_ENV}
    if date:
        env.update(GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
    out = subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env)
    return out.stdout.strip()


def commit_files(repo: Path | str, files: dict[str, str | None], message: str = "fixture change") -> str:
    """Write (or with None delete) files in the repository's work tree, commit, return the id."""
    repo = Path(repo)
    for rel, content in files.items():
        p = repo / rel
        if content is None:
            if p.exists():
                p.unlink()
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def make_layer_repo(
    tmp_path: Path | str,
    name: str,
    layers: dict[str, LayerSpec] | None = None,
    *,
    branch: str = "scarthgap",
    files: dict[str, str] | None = None,
    bare: bool = False,
) -> tuple[Path, str]:
    """Create git repository `tmp_path/name` holding the given layers; return (path, commit).

    Without `layers`, one layer at the root whose collection is the name minus `meta-`.
    With bare=True the returned path is a bare clone (what a reference mirror looks like).
    """
    tmp_path = Path(tmp_path)
    repo = tmp_path / name
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", branch)
    if layers is None:
        layers = {"": LayerSpec(collection=name.removeprefix("meta-"))}
    all_files: dict[str, str] = {}
    for layer_dir, spec in layers.items():
        for rel, content in layer_files(spec).items():
            all_files["/".join(x for x in (layer_dir.strip("/"), rel) if x)] = content
    all_files.update(files or {})
    commit = commit_files(repo, all_files, f"{name}: fixture layers")
    if bare:
        bare_path = tmp_path / f"{name}.git"
        subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(bare_path)], check=True,
                       env={**os.environ, **GIT_ENV}, capture_output=True)
        return bare_path, commit
    return repo, commit


def core_layer(
    series: str = "scarthgap",
    *,
    corenames: list[str] | None = None,
    version: str = "15",
    machines: list[str] | dict[str, str] | None = None,
    recipes: list[str] | None = None,
) -> LayerSpec:
    """An OE-core-like layer: collection `core`, LAYERSERIES_CORENAMES, the usual BSP recipes."""
    return LayerSpec(
        collection="core",
        priority=5,
        version=version,
        corenames=corenames if corenames is not None else [series],
        compat=[series],
        machines=machines if machines is not None else {
            "qemux86-64": 'MACHINE_FEATURES = "acpi alsa efi pci screen usbhost x86"\n',
            "qemuarm64": 'MACHINE_FEATURES = "alsa screen usbhost"\n',
        },
        distros=[],
        recipes=recipes if recipes is not None else [
            "u-boot_2024.01.bb",
            "u-boot-tools_2024.01.bb",
            "busybox_1.36.1.bb",
            "grub-efi_2.12.bb",
            "linux-yocto_6.6.bb",
            "base-files_3.0.14.bb",
            "formfactor_0.0.bb",
        ],
    )


def make_core_repo(tmp_path: Path | str, series: str = "scarthgap", **core_kwargs) -> tuple[Path, str]:
    """An openembedded-core-like repository with the core layer in `meta/`."""
    return make_layer_repo(tmp_path, "openembedded-core", {"meta": core_layer(series, **core_kwargs)}, branch=series)


@dataclass(frozen=True)
class RepoFixture:
    """A generated repository: where it is, its commit, branch and the layer dirs in it."""

    name: str
    path: Path
    commit: str
    branch: str
    layers: tuple[str, ...]  # layer directories inside the repository ("" = root)


def make_standard_stack(
    tmp_path: Path | str,
    series: str = "scarthgap",
    *,
    machine: str = "acme-board",
    bsp_compat: list[str] | None = None,
    with_meta_oe: bool = True,
) -> dict[str, RepoFixture]:
    """A small but complete product stack, like poky + meta-openembedded + meta-mender + a BSP:

    openembedded-core (meta: core, qemu machines, u-boot/busybox/grub-efi recipes),
    meta-openembedded (meta-oe: openembedded-layer; meta-python: depends core (>= 12) + oe),
    meta-mender (meta-mender-core: collection mender, distro 'mender-demo'),
    meta-acme (root layer: collection acme, MACHINE `machine`, u-boot_%.bbappend).
    Returns {repo name: RepoFixture}; bsp_compat/with_meta_oe make broken variants quickly.
    """
    base = Path(tmp_path)
    out: dict[str, RepoFixture] = {}

    def add(name: str, layers: dict[str, LayerSpec]) -> None:
        path, commit = make_layer_repo(base, name, layers, branch=series)
        out[name] = RepoFixture(name, path, commit, series, tuple(layers))

    add("openembedded-core", {"meta": core_layer(series)})
    if with_meta_oe:
        add("meta-openembedded", {
            "meta-oe": LayerSpec(collection="openembedded-layer", priority=5, version="1", depends=["core"],
                                 compat=[series], recipes=["lmdb_0.9.31.bb", "libsodium_1.0.19.bb"]),
            "meta-python": LayerSpec(collection="meta-python", priority=5, version="1",
                                     depends=["core (>= 12)", "openembedded-layer"], compat=[series],
                                     recipes=["python3-pyyaml_6.0.1.bb"]),
        })
    add("meta-mender", {
        "meta-mender-core": LayerSpec(collection="mender", depends=["core"], compat=[series], distros=["mender-demo"],
                                      recipes=["mender-client_4.0.bb", "mender-artifact_3.11.bb"],
                                      bbappends=["u-boot_%.bbappend", "grub-efi_%.bbappend"]),
    })
    add("meta-acme", {
        "": LayerSpec(collection="acme", priority=9, depends=["core"], compat=bsp_compat or [series],
                      machines={machine: 'MACHINE_FEATURES += "usbhost"\nPREFERRED_PROVIDER_virtual/bootloader = "u-boot"\n'},
                      recipes=["acme-firmware_1.0.bb"], bbappends=["u-boot_%.bbappend", "linux-yocto_6.6.bbappend"]),
    })
    return out
