"""Our BitBake layers declare what BitBake checks: collection, dependencies, series."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from ._helpers import LAYERS, directives, read_assignments, values

OUR_LAYERS = {"meta-buildctl": "buildctl", "meta-buildctl-app": "buildctl-app"}
RECIPE = LAYERS / "meta-buildctl-app" / "recipes-example" / "hello-buildctl" / "hello-buildctl_1.0.bb"
DISTRO = LAYERS / "meta-buildctl" / "conf" / "distro" / "buildctl.conf"


@pytest.mark.parametrize("layer,collection", sorted(OUR_LAYERS.items()))
def test_layer_conf_declares_collection_and_series(layer: str, collection: str):
    conf = values(LAYERS / layer / "conf" / "layer.conf")
    collections = [a.value for a in read_assignments(LAYERS / layer / "conf" / "layer.conf")
                   if a.var == "BBFILE_COLLECTIONS"]
    assert collections == [collection]
    assert conf[f"BBFILE_PATTERN_{collection}"] == "^${LAYERDIR}/"
    assert conf[f"BBFILE_PRIORITY_{collection}"].isdigit()
    compat = conf[f"LAYERSERIES_COMPAT_{collection}"].split()
    assert "scarthgap" in compat
    assert "wrynose" in compat
    assert "core" in conf[f"LAYERDEPENDS_{collection}"].split()


def test_distro_layer_depends_on_what_the_distro_uses():
    deps = values(LAYERS / "meta-buildctl" / "conf" / "layer.conf")["LAYERDEPENDS_buildctl"].split()
    assert "mender" in deps   # INHERIT mender-full
    assert "yocto" in deps    # require conf/distro/poky.conf (meta-poky's collection)


def test_distro_conf_is_poky_based_systemd_mender_and_spdx():
    conf = values(DISTRO)
    assert directives(DISTRO, "require") == ["conf/distro/poky.conf"]
    assert conf["DISTRO"] == DISTRO.stem
    assert conf["INIT_MANAGER"] == "systemd"
    inherits = " ".join(a.value for a in read_assignments(DISTRO) if a.var == "INHERIT").split()
    assert "mender-full" in inherits
    assert "create-spdx" in inherits


def test_distro_conf_sets_no_obsolete_reproducibility_switch():
    names = {a.var.split(":")[0] for a in read_assignments(DISTRO)}
    assert "BUILD_REPRODUCIBLE_BINARIES" not in names   # unused since kirkstone
    # Mender's per-release values belong to the product, never to the distro.
    for var in ("MENDER_ARTIFACT_NAME", "MENDER_TENANT_TOKEN", "MENDER_SERVER_URL",
                "MENDER_ARTIFACT_SIGNING_KEY"):
        assert var not in names


def _recipe_source_dir() -> Path:
    """The directory SRC_URI names: file://${BP} with BP = <name>-<version>."""
    name, version = RECIPE.stem.split("_")
    uri = values(RECIPE)["SRC_URI"]
    assert uri == "file://${BP}"
    return RECIPE.parent / "files" / f"{name}-{version}"


def test_recipe_license_checksum_matches_the_shipped_license():
    conf = values(RECIPE)
    assert conf["LICENSE"] == "MIT"
    m = re.fullmatch(r"file://(?P<file>[^;]+);md5=(?P<md5>[0-9a-f]{32})", conf["LIC_FILES_CHKSUM"])
    assert m, conf["LIC_FILES_CHKSUM"]
    license_file = _recipe_source_dir() / m["file"]
    assert hashlib.md5(license_file.read_bytes()).hexdigest() == m["md5"]


def test_recipe_installs_the_systemd_unit_it_names():
    conf = values(RECIPE)
    assert "systemd" in directives(RECIPE, "inherit")
    unit = conf["SYSTEMD_SERVICE:${PN}"]
    assert (_recipe_source_dir() / unit).is_file()
    assert f"${{D}}${{systemd_system_unitdir}}/{unit}" in RECIPE.read_text()
    assert conf.get("SYSTEMD_AUTO_ENABLE:${PN}", "enable") == "enable"


def test_recipe_sources_are_all_present():
    src = _recipe_source_dir()
    for name in ("LICENSE", "Makefile", "hello-buildctl.c", "hello-buildctl.service"):
        assert (src / name).is_file(), name
