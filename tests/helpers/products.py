"""Generate fixture products: real git repositories on the local file system + manifests.

Used by the compose, lock, validate and import tests. Layers are minimal but real
(conf/layer.conf with the keys BitBake reads).
"""
from __future__ import annotations

from pathlib import Path

import yaml

from tests.helpers.fixture_layers import LayerSpec, commit_files, git, layer_conf_text


def layer_conf(collection: str, *, depends=(), compat=("scarthgap",), priority=6,
               corenames=None) -> str:
    return layer_conf_text(LayerSpec(collection=collection, priority=priority, depends=list(depends),
                                     compat=list(compat), version="1",
                                     corenames=list(corenames) if corenames else None))


def make_repo(path: Path, files: dict[str, str], branch: str = "scarthgap") -> str:
    """A git repo with files committed on branch; returns the commit id."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", branch)
    return commit_files(path, files, "fixture")


commit_more = commit_files  # another commit on top: commit_more(path, files[, message])


def core_repo(path: Path, machines=("qemux86-64", "qemuarm64"), distros=("poky",),
              corenames=("scarthgap",)) -> str:
    files = {"meta/conf/layer.conf": layer_conf("core", compat=corenames, corenames=corenames,
                                                priority=5),
             "meta/recipes-core/busybox/busybox_1.36.1.bb": 'SUMMARY = "busybox"\n',
             "meta/recipes-bsp/u-boot/u-boot_2024.01.bb": 'SUMMARY = "u-boot"\n',
             "meta/recipes-bsp/grub/grub-efi_2.12.bb": 'SUMMARY = "grub-efi"\n',
             "meta/recipes-core/images/core-image-minimal.bb": 'SUMMARY = "image"\n',
             "meta-poky/conf/layer.conf": layer_conf("yocto", depends=["core"], compat=corenames)}
    for m in machines:
        files[f"meta/conf/machine/{m}.conf"] = f'# machine {m}\nMACHINE_FEATURES = "efi"\n'
    for d in distros:
        files[f"meta-poky/conf/distro/{d}.conf"] = f'DISTRO = "{d}"\n'
    return make_repo(path, files)


def write_yaml(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def board_data(machine: str, repos: dict | None = None, series=("scarthgap",), **mender) -> dict:
    m = {"device_types": [machine], "bootloader": "grub-efi", "image_types": ["uefiimg", "mender"],
         "storage": {"device": "/dev/sda", "total_mb": 4096, "boot_mb": 64, "data_mb": 512}}
    m.update(mender)
    return {"machine": machine, "series": list(series), "repos": repos or {}, "mender": m}


def simple_product(root: Path, boards=("qemux86-64", "qemuarm64")) -> Path:
    """A product with a local 'poky' (core + meta-poky) and one board file per machine."""
    poky = root / "repos" / "poky"
    commit = core_repo(poky, machines=boards)
    for b in boards:
        write_yaml(root / "machines" / f"{b}.yml", board_data(b))
    return write_yaml(root / "products" / "demo.yml", {
        "name": "demo", "series": "scarthgap", "distro": "poky", "target": "core-image-minimal",
        "repos": {"poky": {"url": poky.as_uri(),
                           "refs": {"scarthgap": {"branch": "scarthgap", "commit": commit}},
                           "layers": ["meta", "meta-poky"]}},
        "boards": list(boards), "release": {"version": "1.0"},
        "variants": {"release": {}, "debug": {"image_features": ["debug-tweaks"]}},
    })
