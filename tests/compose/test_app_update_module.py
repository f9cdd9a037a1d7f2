"""Images built from the shipped product carry what `release apps` artifacts need: the image's
package manager (package-management), ipk packages, and buildctl's package update module under
the name the artifacts use as their type. Checked on the composed configuration of
products/demo.yml, read by BitBake's own datastore with the real poky.conf and OE-core includes
at the product's pins (from ../shared/yocto-kit)."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from buildctl.compose import compose_board
from buildctl.manifest import load_product
from buildctl.release.apps import FORMATS
from tests.helpers import bb_oracle, skips
from tests.release.helpers import make_key

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers" / "meta-buildctl"
RECIPE = LAYER / "recipes-mender" / "mender-buildctl-pkg-module" / "mender-buildctl-pkg-module_1.0.bb"


def _extract(repo: Path, commit: str, subdir: str, dest: Path) -> None:
    blob = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", commit, subdir],
                          check=True, capture_output=True).stdout
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=blob, check=True)


@pytest.fixture(scope="module")
def composed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("appmod")
    data = yaml.safe_load((ROOT / "products" / "demo.yml").read_text())
    key, _ = make_key(tmp / "keys" / "signing.pem")
    data["mender"]["signing_key"] = f"file:{key}"
    data["repos"]["buildctl"]["path"] = str(ROOT)
    data["boards_dir"] = str(ROOT / "machines")
    prod = tmp / "products" / "demo.yml"
    prod.parent.mkdir(parents=True)
    prod.write_text(yaml.safe_dump(data, sort_keys=False))
    product = load_product(prod)
    kas = yaml.safe_load(compose_board(product, "qemux86-64", "release", tmp / "kas").kas_file
                         .read_text())
    return product, kas, tmp


def test_composed_build_uses_the_buildctl_distro_from_our_layer(composed):
    _, kas, _ = composed
    assert kas["distro"] == "buildctl"
    repo = kas["repos"]["buildctl"]
    assert Path(repo["path"]).resolve() == ROOT
    assert "layers/meta-buildctl" in repo["layers"]


def test_bitbake_reads_ipk_package_management_and_the_module_into_the_image(composed):
    skips.require(bb_oracle.available(), "BitBake's bb library cannot be imported here",
                  "pip install bitbake-setup")
    product, kas, tmp = composed
    pins = {n: r.ref(product.series).commit for n, r in product.repos.items() if r.url}
    conf = tmp / "bbpath"
    _extract(skips.kit_repo("git.openembedded.org.openembedded-core"),
             pins["openembedded-core"], "meta/conf", conf / "oecore")
    _extract(skips.kit_repo("git.yoctoproject.org.meta-yocto"), pins["meta-yocto"],
             "meta-poky/conf", conf / "yocto")
    bbpath = ":".join([str(LAYER), str(conf / "yocto" / "meta-poky"),
                       str(conf / "oecore" / "meta")])
    # what kas writes to local.conf, then the distro BitBake reads after it
    text = "".join(kas["local_conf_header"].values()) + "\nrequire conf/distro/buildctl.conf\n"
    got = bb_oracle.evaluate(text, ["PACKAGE_CLASSES", "EXTRA_IMAGE_FEATURES", "IMAGE_INSTALL",
                                    "DISTRO"], initial={"BBPATH": bbpath})
    assert got["DISTRO"] == "buildctl"
    first = got["PACKAGE_CLASSES"].split()[0]
    assert first == "package_ipk"  # poky.conf alone would say package_rpm
    assert "package-management" in got["EXTRA_IMAGE_FEATURES"].split()
    assert "mender-buildctl-pkg-module" in got["IMAGE_INSTALL"].split()
    assert "hello-buildctl" in got["IMAGE_INSTALL"].split()
    # the module is installed under IMAGE_PKGTYPE, which OE's package class sets to the
    # format release apps writes as the artifact type for that feed
    fmt = {cls: f for f, (cls, _) in FORMATS.items()}[first]
    oecore = skips.kit_repo("git.openembedded.org.openembedded-core")
    cls = subprocess.run(["git", "-C", str(oecore), "show",
                          f"{pins['openembedded-core']}:meta/classes-global/{first}.bbclass"],
                         check=True, capture_output=True, text=True).stdout
    assert re.search(rf'^IMAGE_PKGTYPE \?= "{fmt}"$', cls, re.MULTILINE)
    recipe = RECIPE.read_text()
    assert 'MODULE_NAME = "${IMAGE_PKGTYPE}"' in recipe
    assert "${datadir}/mender/modules/v3/${MODULE_NAME}" in recipe
    module = RECIPE.parent / "files" / "mender-buildctl-pkg-module-1.0" / "package-module"
    assert module.stat().st_mode & 0o111
